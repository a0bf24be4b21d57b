//! The public error catalogue of the envelope endpoint: every refusal has a stable code
//! (`err_code`), a message a cashier or integrator can act on (`err_msg`), and `infcode` -1.
//! Internal causes (database errors) are logged in the request span, never put in the reply.
//!
//! Style: STYLE.md 8 (a stable public error catalogue).

use crate::catalogue::CatalogueError;

/// A refusal of a request, as answered in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The body is not a well-formed envelope (not JSON, a required field missing, too large).
    #[error("报文格式错误 malformed envelope: {0}")]
    MalformedEnvelope(String),
    /// An envelope or input field has the wrong shape.
    #[error("字段错误 field {field}: {reason}")]
    BadField {
        /// The field name as on the wire.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The `input` of this `infno` is not the expected shape.
    #[error("入参错误 input of {infno}: {reason}")]
    BadInput {
        /// The transaction.
        infno: String,
        /// What is wrong (field names, never values).
        reason: String,
    },
    /// An amount is negative, not a number, finer than a fen or too large.
    #[error("金额错误 amount {field}: {reason}")]
    BadAmount {
        /// The field name.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The `infno` is not one this service implements.
    #[error("不支持的交易 unknown infno {0}")]
    UnknownInfno(String),
    /// The msgid was used before for a different request.
    #[error("报文ID重复 msgid was already used for a different request")]
    MsgidReused,
    /// The msgid was voided by a 2601 reversal that arrived first.
    #[error("报文已冲正 msgid was voided by a 2601 reversal; send a new msgid")]
    MsgidVoided,
    /// A fee line failed classification (unknown code, bad amount, sum mismatch).
    #[error("费用明细错误 {0}")]
    FeeLine(CatalogueError),
    /// No insured person matches.
    #[error("人员不存在 no insured person matches the given psn_no / certificate / card")]
    PersonNotFound,
    /// The person has no insurance of the requested `insutype`.
    #[error("险种不存在 the person has no insurance of type {0}")]
    InsutypeNotFound(String),
    /// The visit (`mdtrt_id`) does not exist or belongs to another person.
    #[error("就诊不存在 visit mdtrt_id not found for this person")]
    VisitNotFound,
    /// The visit was cancelled (2202/2404) or the wrong setting (outpatient vs inpatient).
    #[error("就诊状态错误 {0}")]
    VisitState(&'static str),
    /// A fee line number was uploaded twice for one visit.
    #[error("费用明细重复 feedetl_sn {0} was already uploaded for this visit")]
    DuplicateFeeLine(String),
    /// The settlement amounts sent by HIS differ from the uploaded, classified fee lines.
    #[error("结算金额不符 {field}: sent {sent}, uploaded fee details give {expected}")]
    AmountMismatch {
        /// The field.
        field: &'static str,
        /// Sent, yuan.
        sent: String,
        /// Computed, yuan.
        expected: String,
    },
    /// No fee lines to settle.
    #[error("无可结算费用 the visit has no uploaded fee details to settle")]
    NothingToSettle,
    /// The visit already has a settlement that is not cancelled.
    #[error("重复结算 the visit is already settled (setl_id {0}); cancel it first")]
    AlreadySettled(String),
    /// The settlement (`setl_id`) does not exist for this person.
    #[error("结算不存在 setl_id not found for this person")]
    SettlementNotFound,
    /// The settlement was already cancelled or reversed.
    #[error("结算已撤销 the settlement was already cancelled or reversed")]
    AlreadyCancelled,
    /// The personal account would go below zero.
    #[error("个人账户余额不足 personal account balance is insufficient")]
    InsufficientBalance,
    /// The region has no policy, catalogue or institution entry.
    #[error("参数缺失 {0}")]
    MissingReferenceData(String),
    /// The policy engine refused the bill.
    #[error("待遇计算失败 {0}")]
    Policy(String),
    /// The gateway headers are missing, stale, reused or the signature is wrong.
    #[error("网关认证失败 {0}")]
    Gateway(&'static str),
    /// Cross-region settlement failed (insured region's node unreachable, outcome unknown and
    /// reversed, or voided); the message says what the cashier does next.
    #[error("异地结算失败 {0}")]
    CrossRegion(String),
    /// The service is shutting down; retry with the same msgid.
    #[error("服务停止中 service is shutting down; retry with the same msgid")]
    ShuttingDown,
    /// An internal fault (logged); the outcome is unknown: retry with the same msgid.
    #[error("系统错误 internal error; retry with the same msgid")]
    Internal,
}

impl ApiError {
    /// The stable code (never renumbered).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedEnvelope(_) => "E1001",
            ApiError::BadField { .. } => "E1002",
            ApiError::BadInput { .. } => "E1003",
            ApiError::BadAmount { .. } => "E1004",
            ApiError::UnknownInfno(_) => "E1005",
            ApiError::MsgidReused => "E1006",
            ApiError::MsgidVoided => "E1007",
            ApiError::Gateway(_) => "E1008",
            ApiError::FeeLine(CatalogueError::UnknownCode { .. }) => "E2001",
            ApiError::FeeLine(_) => "E2002",
            ApiError::PersonNotFound => "E2101",
            ApiError::InsutypeNotFound(_) => "E2102",
            ApiError::VisitNotFound => "E2201",
            ApiError::VisitState(_) => "E2202",
            ApiError::DuplicateFeeLine(_) => "E2203",
            ApiError::AmountMismatch { .. } => "E2301",
            ApiError::NothingToSettle => "E2302",
            ApiError::AlreadySettled(_) => "E2303",
            ApiError::SettlementNotFound => "E2304",
            ApiError::AlreadyCancelled => "E2305",
            ApiError::InsufficientBalance => "E2306",
            ApiError::MissingReferenceData(_) => "E2401",
            ApiError::Policy(_) => "E2402",
            ApiError::CrossRegion(_) => "E2501",
            ApiError::ShuttingDown => "E9001",
            ApiError::Internal => "E9999",
        }
    }

    /// True if the outcome is unknown or the refusal transient (internal fault, shutting down):
    /// the caller should resend the SAME msgid, which is answered exactly once.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::ShuttingDown | ApiError::Internal)
    }
}
