//! JSON bodies of the partner API (the wire edge): requests are parsed strictly (unknown fields
//! refused) and checked into domain values by the handlers; replies are built from domain
//! outcomes. Money is yuan as a decimal string with two places (never a float).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::super::model::{Application, Scope};
use super::super::ops::{CardVerification, SettlementStatus};
use super::super::store::AuditRecord;
use super::super::webhook::utc;

/// One scope: an operation on a directory use.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeIo {
    /// The directory use's number (e.g. `P023`).
    #[serde(rename = "use")]
    pub use_number: String,
    /// `card.verify`, `card.identity`, `settlement.status`, `webhook.settlement` or
    /// `webhook.card`.
    pub operation: String,
}

impl From<&Scope> for ScopeIo {
    fn from(scope: &Scope) -> ScopeIo {
        ScopeIo {
            use_number: scope.use_number.as_str().to_owned(),
            operation: scope.operation.code().to_owned(),
        }
    }
}

/// The partner (organisation) of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartnerIn {
    /// Stable code, 1-32 of `[A-Za-z0-9_-]`.
    pub code: String,
    /// The organisation's name, 1-100 characters.
    pub name: String,
    /// `department`, `bank` or `third_party`.
    pub kind: String,
}

/// The credential of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    /// `SM2` or `ECDSA_P256`.
    pub algorithm: String,
    /// Uncompressed public point, hex: `04‖X‖Y` (130 digits) or `X‖Y` (128 digits).
    pub public_key: String,
    /// SM2 distinguishing ID (default `1234567812345678`); not allowed for ECDSA.
    #[serde(default)]
    pub sm2_id: Option<String>,
}

/// `POST /api/partner/v1/applications`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    /// Who registers.
    pub partner: PartnerIn,
    /// The application's name, 1-100 characters.
    pub name: String,
    /// Scopes asked for: 1-64, no repeats, each on a use in the directory.
    pub scopes: Vec<ScopeIo>,
    /// The public key requests will be signed with.
    pub key: KeyIn,
    /// Where webhooks go (http or https), if anywhere.
    #[serde(default)]
    pub webhook_url: Option<String>,
}

/// A registration's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredOut {
    /// The application's id.
    pub app_id: String,
    /// The key id to send as `X-SSC-Key-Id`.
    pub key_id: String,
    /// `pending` until an operator decides.
    pub state: String,
}

/// An application.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppOut {
    /// Its id.
    pub app_id: String,
    /// The partner's code.
    pub partner_code: String,
    /// The partner's name.
    pub partner_name: String,
    /// `department`, `bank`, `third_party`.
    pub partner_kind: String,
    /// The application's name.
    pub name: String,
    /// `pending`, `approved`, `rejected`, `suspended`.
    pub state: String,
    /// Where webhooks go.
    pub webhook_url: Option<String>,
    /// Scopes asked for.
    pub requested: Vec<ScopeIo>,
    /// Scopes granted.
    pub granted: Vec<ScopeIo>,
    /// The partner's rate limit, calls per minute.
    pub rate_per_minute: u32,
    /// The partner's burst.
    pub burst: u32,
    /// Registration time, UTC.
    pub created_at: String,
}

impl From<&Application> for AppOut {
    fn from(app: &Application) -> AppOut {
        AppOut {
            app_id: app.app_id.as_str().to_owned(),
            partner_code: app.partner_code.as_str().to_owned(),
            partner_name: app.partner_name.clone(),
            partner_kind: app.partner_kind.code().to_owned(),
            name: app.name.clone(),
            state: app.state.code().to_owned(),
            webhook_url: app.webhook_url.clone(),
            requested: app.requested.iter().map(ScopeIo::from).collect(),
            granted: app.granted.iter().map(ScopeIo::from).collect(),
            rate_per_minute: app.rate_per_minute,
            burst: app.burst,
            created_at: utc(app.created_at_ms),
        }
    }
}

/// Applications.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppsOut {
    /// Oldest first.
    pub items: Vec<AppOut>,
}

/// `POST /api/partner/v1/admin/applications/{app_id}/decision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionIn {
    /// `approve`, `reject` or `suspend`.
    pub action: String,
    /// Approve: the scopes granted (default: all requested); each must have been requested.
    #[serde(default)]
    pub scopes: Option<Vec<ScopeIo>>,
    /// Approve: the partner's calls per minute (1-1,000,000).
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// Approve: the partner's burst (1-100,000).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// `POST /api/partner/v1/consents` (a terminal agent, kiosk or the e-card service).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    /// The card's 卡号 (read from EF05, or the e-card's).
    pub card_no: String,
    /// The application the holder consents to.
    pub app_id: String,
    /// The directory use.
    #[serde(rename = "use")]
    pub use_number: String,
    /// The operation consented to: `card.verify` (the default and the only one today).
    #[serde(default)]
    pub operation: Option<String>,
    /// `agent`, `kiosk` or `e-card`.
    pub channel: String,
    /// True: the PIN (or e-card password) was verified just now. Required.
    pub pin_verified: bool,
    /// Life in seconds, 1-300 (default 120).
    #[serde(default)]
    pub ttl_s: Option<u32>,
}

/// An issued consent token (shown once: give it to the partner, e.g. as a QR code).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentOut {
    /// 64 hex digits; single use.
    pub consent_token: String,
    /// Expiry, UTC.
    pub expires_at: String,
    /// The application it is bound to.
    pub app_id: String,
    /// The scope it is bound to.
    pub scope: ScopeIo,
}

/// `POST /api/partner/v1/cards/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyIn {
    /// The directory use the partner acts for.
    #[serde(rename = "use")]
    pub use_number: String,
    /// The holder's consent token.
    pub consent_token: String,
    /// The ID number the partner was given, to check (optional).
    #[serde(default)]
    pub certno: Option<String>,
    /// The name the partner was given, to check (optional).
    #[serde(default)]
    pub name: Option<String>,
}

/// A verification's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyOut {
    /// This application's reference of the card (also in `card.lost` webhooks): 32 hex
    /// digits, stable for the application, different for each application, meaningless
    /// outside this deployment.
    pub card_ref: String,
    /// The card number, masked.
    pub card_no_masked: String,
    /// `normal` or `lost`.
    pub card_status: String,
    /// 参保地.
    pub insuplc_admdvs: String,
    /// Whether the given ID number matched; absent if none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certno_match: Option<bool>,
    /// Whether the given name matched; absent if none was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_match: Option<bool>,
    /// The ID number: in clear only under `card.identity`, else masked.
    pub certno: String,
    /// The name: in clear only under `card.identity`, else masked.
    pub name: String,
    /// Whether `certno` and `name` are in clear.
    pub identity_disclosed: bool,
}

impl From<CardVerification> for VerifyOut {
    fn from(v: CardVerification) -> VerifyOut {
        VerifyOut {
            card_ref: v.card_ref,
            card_no_masked: v.card_no_masked,
            card_status: v.card_status.to_owned(),
            insuplc_admdvs: v.insuplc_admdvs,
            certno_match: v.certno_match,
            name_match: v.name_match,
            certno: v.certno,
            name: v.name,
            identity_disclosed: v.identity_disclosed,
        }
    }
}

/// A settlement's status.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettlementOut {
    /// 结算ID.
    pub setl_id: String,
    /// `settled`, `cancelled` or `reversed`.
    pub status: String,
    /// 定点医药机构编号.
    pub fixmedins_code: String,
    /// 参保地.
    pub insuplc_admdvs: String,
    /// 结算日期.
    pub setl_date: String,
    /// 医疗费总额, yuan (decimal string).
    pub medfee_sumamt: String,
    /// 基金支付总额, yuan.
    pub fund_pay_sumamt: String,
    /// 个人账户支出, yuan.
    pub acct_pay: String,
    /// 个人现金支出, yuan.
    pub psn_cash_pay: String,
}

impl From<SettlementStatus> for SettlementOut {
    fn from(s: SettlementStatus) -> SettlementOut {
        SettlementOut {
            setl_id: s.setl_id,
            status: s.status.to_owned(),
            fixmedins_code: s.fixmedins_code,
            insuplc_admdvs: s.insuplc_admdvs,
            setl_date: s.setl_date,
            medfee_sumamt: s.medfee_sumamt.to_string(),
            fund_pay_sumamt: s.fund_pay_sumamt.to_string(),
            acct_pay: s.acct_pay.to_string(),
            psn_cash_pay: s.psn_cash_pay.to_string(),
        }
    }
}

/// The platform's webhook signing key.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookKeyOut {
    /// The `X-SSC-Key-Id` of deliveries.
    pub key_id: String,
    /// `SM2`.
    pub algorithm: String,
    /// The distinguishing ID.
    pub sm2_id: String,
    /// `04‖X‖Y`, 130 hex digits.
    pub public_key: String,
    /// What the signature covers.
    pub signed_text: String,
}

/// `POST /api/partner/v1/admin/cards/status`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardStatusIn {
    /// The card's 卡号.
    pub card_no: String,
    /// `lost` (挂失) or `normal` (解挂).
    pub status: String,
}

/// A card status change's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CardStatusOut {
    /// The new status.
    pub status: String,
    /// `card.lost` webhooks queued.
    pub notices_queued: usize,
}

/// One audit row.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRowOut {
    /// Order of writing.
    pub seq: i64,
    /// When, UTC.
    pub at: String,
    /// Who called.
    pub caller: String,
    /// The application.
    pub app_id: Option<String>,
    /// The partner.
    pub partner_code: Option<String>,
    /// The operation.
    pub operation: String,
    /// The use.
    #[serde(rename = "use")]
    pub use_number: Option<String>,
    /// The scope.
    pub scope: Option<String>,
    /// The person concerned as SHA-256("ssc-partner-subject-v1\0" ‖ psn_no), hex; never in clear.
    pub subject_ref: Option<String>,
    /// `ok` or the error code.
    pub result: String,
    /// The HTTP status.
    pub http_status: u16,
}

impl From<&AuditRecord> for AuditRowOut {
    fn from(r: &AuditRecord) -> AuditRowOut {
        AuditRowOut {
            seq: r.seq,
            at: utc(r.at_ms),
            caller: r.caller.clone(),
            app_id: r.app_id.clone(),
            partner_code: r.partner_code.clone(),
            operation: r.operation.clone(),
            use_number: r.use_number.clone(),
            scope: r.scope.clone(),
            subject_ref: r.subject_sha256.as_ref().map(hex::encode),
            result: r.result.clone(),
            http_status: r.http_status,
        }
    }
}

/// Audit rows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    /// The rows.
    pub items: Vec<AuditRowOut>,
    /// Pass as `before` for the next page; absent at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// One webhook row (operators).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookRowOut {
    /// The event id.
    pub event_id: String,
    /// `settlement.done` or `card.lost`.
    pub event_type: String,
    /// `pending`, `delivered`, `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// The body delivered.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// Webhook rows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksOut {
    /// The rows.
    pub items: Vec<WebhookRowOut>,
}

/// A revoked credential.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyRevokedOut {
    /// The key id.
    pub key_id: String,
    /// Its application.
    pub app_id: String,
    /// `revoked`.
    pub state: String,
}
