//! Errors of the partner platform: the library's [`PartnerError`] and the public catalogue of the
//! partner API, [`ApiError`]: each refusal has a stable `code`, an HTTP status and a message an
//! integrator can act on (Chinese, then English). Internal causes are logged in the request span,
//! never put in the body. The catalogue is also in the OpenAPI document's description.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error of the partner library (storage and configuration; API refusals are [`ApiError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartnerError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not parse (the named column): the database was changed outside.
    #[error("corrupt partner row: {0}")]
    Corrupt(&'static str),
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
    /// The webhook signer (the hsm) failed.
    #[error("hsm: {0}")]
    Hsm(String),
}

impl From<crate::LedgerError> for PartnerError {
    /// The persons table's reads go through the ledger's store.
    fn from(error: crate::LedgerError) -> PartnerError {
        match error {
            crate::LedgerError::Storage(e) => PartnerError::Database(e),
            _ => PartnerError::Corrupt("persons"),
        }
    }
}

impl From<getrandom::Error> for PartnerError {
    fn from(_: getrandom::Error) -> PartnerError {
        PartnerError::Random
    }
}

/// Result of the partner library.
pub type Result<T, E = PartnerError> = std::result::Result<T, E>;

/// The body of every error reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What to do about it.
    pub message: &'static str,
}

/// A refusal of the partner API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 401 `missing_signature`: one of `X-SSC-Key-Id`, `X-SSC-Timestamp`, `X-SSC-Nonce`,
    /// `X-SSC-Signature` is missing or not ASCII.
    MissingSignature,
    /// 401 `bad_key_id`: `X-SSC-Key-Id` is not a key id (`key-` + 20 hex).
    BadKeyId,
    /// 401 `unknown_key`: no credential has this key id.
    UnknownKey,
    /// 401 `key_revoked`: the credential was revoked.
    KeyRevoked,
    /// 401 `bad_timestamp`: `X-SSC-Timestamp` is not Unix milliseconds.
    BadTimestamp,
    /// 401 `timestamp_expired`: the timestamp is more than the allowed skew from the server's
    /// clock (stale or from the future).
    TimestampExpired,
    /// 401 `bad_nonce`: `X-SSC-Nonce` is not 16-64 of `[A-Za-z0-9_-]`.
    BadNonce,
    /// 401 `bad_signature_format`: `X-SSC-Signature` is not 128 hex digits (r‖s).
    BadSignatureFormat,
    /// 401 `signature_invalid`: the signature does not verify over the canonical request.
    SignatureInvalid,
    /// 401 `nonce_replayed`: this key already used this nonce within the window.
    NonceReplayed,
    /// 403 `app_not_approved`: the application is pending, rejected or suspended.
    AppNotApproved,
    /// 403 `scope_denied`: the application holds no grant for this operation on this use.
    ScopeDenied,
    /// 429 `rate_limited`: the partner's rate limit is exhausted; retry after `Retry-After`.
    RateLimited(u64),
    /// 413 `body_too_large`: the body is over the limit.
    BodyTooLarge,
    /// 400 `bad_body`: the body is not the JSON the operation takes.
    BadBody,
    /// 400 `bad_query`: the query string is malformed, or has unknown or repeated parameters.
    BadQuery,
    /// 400 `bad_use`: the use number is malformed or not in the directory.
    BadUse,
    /// 400 `bad_scope`: an operation code is unknown, or too many scopes.
    BadScope,
    /// 400 `bad_partner`: the partner code, name or kind is malformed.
    BadPartner,
    /// 400 `bad_public_key`: the key is not an uncompressed point on the algorithm's curve, or
    /// the algorithm is unknown.
    BadPublicKey,
    /// 400 `bad_webhook_url`: not an http(s) URL of at most 512 bytes.
    BadWebhookUrl,
    /// 409 `partner_mismatch`: the partner code is registered with another name or kind.
    PartnerMismatch,
    /// 400 `bad_setl_id`: not 1-30 ASCII letters and digits.
    BadSetlId,
    /// 404 `settlement_not_found`: no settlement has this `setl_id`.
    SettlementNotFound,
    /// 403 `consent_invalid`: the consent token is unknown or was issued for another
    /// application, use or operation.
    ConsentInvalid,
    /// 403 `consent_expired`: the consent token has expired.
    ConsentExpired,
    /// 403 `consent_used`: the consent token was already used (single use).
    ConsentUsed,
    /// 400 `bad_card_no`: the card number is malformed.
    BadCardNo,
    /// 404 `card_not_found`: no insured person holds this card.
    CardNotFound,
    /// 409 `card_lost`: the card is reported lost: no consent can be issued from it.
    CardLost,
    /// 400 `bad_consent_request`: channel, PIN assertion or lifetime are not acceptable.
    BadConsentRequest,
    /// 404 `app_not_found`: no application has this id.
    AppNotFound,
    /// 404 `key_not_found`: no credential has this key id (operator routes).
    KeyNotFound,
    /// 409 `bad_transition`: the application cannot go to that state from its current one.
    BadTransition,
    /// 401 `issuer_unauthenticated`: the consent issuer's `x-tif-*` headers did not check.
    IssuerUnauthenticated,
    /// 401 `operator_unauthenticated`: no or a wrong operator bearer token.
    OperatorUnauthenticated,
    /// 503 `webhooks_unavailable`: no webhook signing key is configured.
    WebhooksUnavailable,
    /// 500 `internal`: the server failed; retry later.
    Internal,
}

impl ApiError {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            ApiError::MissingSignature => "missing_signature",
            ApiError::BadKeyId => "bad_key_id",
            ApiError::UnknownKey => "unknown_key",
            ApiError::KeyRevoked => "key_revoked",
            ApiError::BadTimestamp => "bad_timestamp",
            ApiError::TimestampExpired => "timestamp_expired",
            ApiError::BadNonce => "bad_nonce",
            ApiError::BadSignatureFormat => "bad_signature_format",
            ApiError::SignatureInvalid => "signature_invalid",
            ApiError::NonceReplayed => "nonce_replayed",
            ApiError::AppNotApproved => "app_not_approved",
            ApiError::ScopeDenied => "scope_denied",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::BadBody => "bad_body",
            ApiError::BadQuery => "bad_query",
            ApiError::BadUse => "bad_use",
            ApiError::BadScope => "bad_scope",
            ApiError::BadPartner => "bad_partner",
            ApiError::BadPublicKey => "bad_public_key",
            ApiError::BadWebhookUrl => "bad_webhook_url",
            ApiError::PartnerMismatch => "partner_mismatch",
            ApiError::BadSetlId => "bad_setl_id",
            ApiError::SettlementNotFound => "settlement_not_found",
            ApiError::ConsentInvalid => "consent_invalid",
            ApiError::ConsentExpired => "consent_expired",
            ApiError::ConsentUsed => "consent_used",
            ApiError::BadCardNo => "bad_card_no",
            ApiError::CardNotFound => "card_not_found",
            ApiError::CardLost => "card_lost",
            ApiError::BadConsentRequest => "bad_consent_request",
            ApiError::AppNotFound => "app_not_found",
            ApiError::KeyNotFound => "key_not_found",
            ApiError::BadTransition => "bad_transition",
            ApiError::IssuerUnauthenticated => "issuer_unauthenticated",
            ApiError::OperatorUnauthenticated => "operator_unauthenticated",
            ApiError::WebhooksUnavailable => "webhooks_unavailable",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ApiError::MissingSignature
            | ApiError::BadKeyId
            | ApiError::UnknownKey
            | ApiError::KeyRevoked
            | ApiError::BadTimestamp
            | ApiError::TimestampExpired
            | ApiError::BadNonce
            | ApiError::BadSignatureFormat
            | ApiError::SignatureInvalid
            | ApiError::NonceReplayed
            | ApiError::IssuerUnauthenticated
            | ApiError::OperatorUnauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::AppNotApproved
            | ApiError::ScopeDenied
            | ApiError::ConsentInvalid
            | ApiError::ConsentExpired
            | ApiError::ConsentUsed => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::SettlementNotFound
            | ApiError::CardNotFound
            | ApiError::AppNotFound
            | ApiError::KeyNotFound => StatusCode::NOT_FOUND,
            ApiError::PartnerMismatch | ApiError::CardLost | ApiError::BadTransition => {
                StatusCode::CONFLICT
            }
            ApiError::WebhooksUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The message.
    pub fn message(self) -> &'static str {
        match self {
            ApiError::MissingSignature => {
                "缺少签名头 / X-SSC-Key-Id, X-SSC-Timestamp, X-SSC-Nonce and X-SSC-Signature are required"
            }
            ApiError::BadKeyId => "密钥标识格式错误 / X-SSC-Key-Id: key- and 20 hex digits",
            ApiError::UnknownKey => "密钥未注册 / no credential has this key id",
            ApiError::KeyRevoked => "密钥已吊销 / this credential was revoked",
            ApiError::BadTimestamp => "时间戳格式错误 / X-SSC-Timestamp: Unix milliseconds",
            ApiError::TimestampExpired => {
                "时间戳超出允许范围，请校准时钟后重新签名 / X-SSC-Timestamp is outside the allowed skew (300 s)"
            }
            ApiError::BadNonce => "随机数格式错误 / X-SSC-Nonce: 16-64 of A-Z a-z 0-9 _ -",
            ApiError::BadSignatureFormat => {
                "签名格式错误 / X-SSC-Signature: r||s as 128 hex digits"
            }
            ApiError::SignatureInvalid => {
                "验签失败 / the signature does not verify over the canonical request"
            }
            ApiError::NonceReplayed => "重放请求 / this nonce was already used with this key",
            ApiError::AppNotApproved => "应用未获批准或已暂停 / the application is not approved",
            ApiError::ScopeDenied => {
                "无此应用事项的授权 / the application holds no grant for this operation on this use"
            }
            ApiError::RateLimited(_) => {
                "调用过于频繁 / rate limit exceeded, retry after Retry-After"
            }
            ApiError::BodyTooLarge => "请求体过大 / request body too large",
            ApiError::BadBody => {
                "请求体不是该操作接受的 JSON / body is not the JSON this operation takes"
            }
            ApiError::BadQuery => "查询参数错误 / malformed, unknown or repeated query parameter",
            ApiError::BadUse => "应用事项编号无效或不在目录中 / use number not in the directory",
            ApiError::BadScope => "授权操作未知或过多 / unknown operation or too many scopes",
            ApiError::BadPartner => "合作方编码、名称或类型错误 / bad partner code, name or kind",
            ApiError::BadPublicKey => {
                "公钥无效：须为曲线上的非压缩点 04||X||Y / public key: an uncompressed point on the curve"
            }
            ApiError::BadWebhookUrl => "回调地址须为 http(s) URL / webhook_url: an http(s) URL",
            ApiError::PartnerMismatch => {
                "合作方编码已以其他名称或类型注册 / partner code registered with another name or kind"
            }
            ApiError::BadSetlId => "结算ID格式错误 / setl_id: 1-30 ASCII letters and digits",
            ApiError::SettlementNotFound => "无此结算 / no settlement has this setl_id",
            ApiError::ConsentInvalid => {
                "授权码无效或不属于本应用、事项 / consent token unknown or issued for another application or scope"
            }
            ApiError::ConsentExpired => "授权码已过期 / consent token expired",
            ApiError::ConsentUsed => "授权码已使用 / consent token already used",
            ApiError::BadCardNo => "卡号格式错误 / card_no: 1-20 ASCII letters and digits",
            ApiError::CardNotFound => "无此卡 / no insured person holds this card",
            ApiError::CardLost => "该卡已挂失 / the card is reported lost",
            ApiError::BadConsentRequest => {
                "授权请求无效：渠道、密码校验或有效期不符 / channel, pin_verified or ttl_s not acceptable"
            }
            ApiError::AppNotFound => "无此应用 / no application has this id",
            ApiError::KeyNotFound => "无此密钥 / no credential has this key id",
            ApiError::BadTransition => {
                "应用当前状态不允许此操作 / the application cannot go to that state"
            }
            ApiError::IssuerUnauthenticated => {
                "授权码签发方认证失败 / consent issuer: x-tif-* headers did not check"
            }
            ApiError::OperatorUnauthenticated => {
                "操作员认证失败 / operator: Authorization: Bearer token required"
            }
            ApiError::WebhooksUnavailable => {
                "未配置回调签名密钥 / no webhook signing key is configured"
            }
            ApiError::Internal => "服务暂时不可用，请稍后重试 / internal error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code(),
            message: self.message(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        let challenge = match self {
            ApiError::OperatorUnauthenticated => Some("Bearer"),
            ApiError::IssuerUnauthenticated => None,
            _ if self.status() == StatusCode::UNAUTHORIZED => Some("SSC-PARTNER-SIG-V1"),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Logs an internal failure in the request span; the client sees only `internal`.
pub(crate) fn internal(error: &PartnerError) -> ApiError {
    tracing::error!(%error, "partner platform failed");
    ApiError::Internal
}
