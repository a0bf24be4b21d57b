//! The public error catalogue of the directory API: a stable `code`, an HTTP status and a message
//! an integrator can act on. Internal causes are logged in the request span, never put in the
//! body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::directory::search::QUERY_CHARS_MAX;

/// The body of every error reply.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (see the API description for the list).
    pub code: &'static str,
    /// What to do about it (Chinese, then English).
    pub message: String,
    /// The query parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

/// An error of the directory API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// 400 `bad_query_string`: the query string does not decode, or has too many parameters.
    BadQueryString,
    /// 400 `unknown_param`: a query parameter the route does not take.
    UnknownParam(String),
    /// 400 `repeated_param`: a single-valued parameter given twice.
    RepeatedParam(String),
    /// 400 `bad_category`: not one of the seven categories.
    BadCategory,
    /// 400 `bad_mode`: not one of the seven usage modes.
    BadMode,
    /// 400 `bad_channel`: not window, kiosk, web, app or e-card.
    BadChannel,
    /// 400 `bad_region`: not `national` or a 6-digit division code.
    BadRegion,
    /// 400 `bad_status`: not `sourced` or `illustrative`.
    BadStatus,
    /// 400 `bad_limit`: not an integer from 1 to the route's maximum.
    BadLimit(u32),
    /// 400 `bad_cursor`: not a cursor this API issued.
    BadCursor,
    /// 409 `cursor_stale`: the directory changed since the cursor was issued; list again.
    CursorStale,
    /// 400 `query_too_long`: `q` has more than `QUERY_CHARS_MAX` characters.
    QueryTooLong,
    /// 400 `bad_number`: not a use number (1-16 ASCII letters, digits, `-`).
    BadNumber,
    /// 404 `use_not_found`: no use has this number in the current version.
    UseNotFound,
    /// 400 `bad_version`: not a positive integer.
    BadVersion,
    /// 404 `version_not_found`: no such version.
    VersionNotFound,
    /// 500 `internal`: the server failed; retry later.
    Internal,
}

impl ApiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadQueryString => "bad_query_string",
            ApiError::UnknownParam(_) => "unknown_param",
            ApiError::RepeatedParam(_) => "repeated_param",
            ApiError::BadCategory => "bad_category",
            ApiError::BadMode => "bad_mode",
            ApiError::BadChannel => "bad_channel",
            ApiError::BadRegion => "bad_region",
            ApiError::BadStatus => "bad_status",
            ApiError::BadLimit(_) => "bad_limit",
            ApiError::BadCursor => "bad_cursor",
            ApiError::CursorStale => "cursor_stale",
            ApiError::QueryTooLong => "query_too_long",
            ApiError::BadNumber => "bad_number",
            ApiError::UseNotFound => "use_not_found",
            ApiError::BadVersion => "bad_version",
            ApiError::VersionNotFound => "version_not_found",
            ApiError::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UseNotFound | ApiError::VersionNotFound => StatusCode::NOT_FOUND,
            ApiError::CursorStale => StatusCode::CONFLICT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::BadQueryString => {
                "查询字符串无法解析或参数过多 / malformed query string".to_owned()
            }
            ApiError::UnknownParam(_) => "不支持的查询参数 / unknown query parameter".to_owned(),
            ApiError::RepeatedParam(_) => "该参数只能出现一次 / parameter given twice".to_owned(),
            ApiError::BadCategory => "类别应为 就业创业、社会保险、劳动关系、人事人才、医疗保障、\
                                      金融服务、公共服务 之一 / unknown category"
                .to_owned(),
            ApiError::BadMode => "用卡方式应为 身份凭证、信息记录、自助查询、就医结算、缴费、\
                                  待遇领取、金融支付 之一 / unknown usage mode"
                .to_owned(),
            ApiError::BadChannel => {
                "渠道应为 window、kiosk、web、app、e-card 之一 / unknown channel".to_owned()
            }
            ApiError::BadRegion => {
                "地区应为 national 或 6 位行政区划代码 / region: 'national' or 6 digits".to_owned()
            }
            ApiError::BadStatus => "status 应为 sourced 或 illustrative".to_owned(),
            ApiError::BadLimit(max) => format!("limit 应为 1 到 {max} 的整数"),
            ApiError::BadCursor => "cursor 无效，请从第一页重新查询 / invalid cursor".to_owned(),
            ApiError::CursorStale => {
                "目录已更新，请从第一页重新查询 / the directory changed, list again".to_owned()
            }
            ApiError::QueryTooLong => format!("q 最多 {QUERY_CHARS_MAX} 个字"),
            ApiError::BadNumber => "编号格式不正确 / bad use number".to_owned(),
            ApiError::UseNotFound => "没有该编号的应用 / no use with this number".to_owned(),
            ApiError::BadVersion => "版本号应为正整数 / version: a positive integer".to_owned(),
            ApiError::VersionNotFound => "没有该版本 / no such version".to_owned(),
            ApiError::Internal => "服务暂时不可用，请稍后重试 / internal error".to_owned(),
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            ApiError::UnknownParam(name) | ApiError::RepeatedParam(name) => Some(name.clone()),
            ApiError::BadCategory => Some("category".to_owned()),
            ApiError::BadMode => Some("mode".to_owned()),
            ApiError::BadChannel => Some("channel".to_owned()),
            ApiError::BadRegion => Some("region".to_owned()),
            ApiError::BadStatus => Some("status".to_owned()),
            ApiError::BadLimit(_) => Some("limit".to_owned()),
            ApiError::BadCursor | ApiError::CursorStale => Some("cursor".to_owned()),
            ApiError::QueryTooLong => Some("q".to_owned()),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: self.code(),
            message: self.message(),
            // Only a bounded, known parameter name is echoed (unknown names are cut to 32 chars).
            param: self.param().map(|p| p.chars().take(32).collect()),
        };
        (self.status(), Json(body)).into_response()
    }
}
