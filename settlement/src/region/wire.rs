//! Inter-node message shapes (JSON over HTTP, paths under `/region/v1/`). Money is integer fen.
//!
//! - `POST /region/v1/person`: treating → insured, the person's record for 1101/2201 (identity
//!   only: balances and accumulators never leave the insured node).
//! - `POST /region/v1/split`: treating → insured, apply 参保地政策 to lines classified with the
//!   就医地目录; with `commit` the insured node posts and remembers the decision under `xfer_id`.
//! - `POST /region/v1/resolve`: "query or void": the decision if there is one, else a void that
//!   makes a late `split` of that `xfer_id` refused.
//! - `POST /region/v1/reverse`: the durable reversal (outbox), applied once.
//! - `POST /region/v1/report`: this node's clearing figures for an origin's window.
//!
//! Source: medical-settlement.md §3.1 (who computes what), anchors-switch.md §2.1 (Mojaloop
//! duplicate analysis: same id + same hash = resend, other hash = refused).

use serde::{Deserialize, Serialize};

/// One stored fee line as classified by the treating node (mirrors `fee_lines`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLine {
    /// Line number.
    pub feedetl_sn: String,
    /// Signed `det_item_fee_sumamt`, fen.
    pub det_fen: i64,
    /// Signed 全自费, fen.
    pub fulamt_fen: i64,
    /// Signed 超限价, fen.
    pub overlmt_fen: i64,
    /// Signed 先行自付, fen.
    pub preselfpay_fen: i64,
    /// Signed 符合范围, fen.
    pub inscp_fen: i64,
    /// The classification JSON as the treating node stored it.
    pub line: String,
}

/// `POST /region/v1/split`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitRequest {
    /// `{treating}-{msgid}`: the idempotency key on both sides.
    pub xfer_id: String,
    /// The HIS msgid at the treating node.
    pub msgid: String,
    /// Treating division (就医地).
    pub origin: u32,
    /// The origin's clearing window.
    pub window_id: i64,
    /// Post (2207/2304) or only compute (2206/2303).
    pub commit: bool,
    /// Person number.
    pub psn_no: String,
    /// 310 / 390.
    pub insutype: String,
    /// Inpatient (2304) or outpatient (2207).
    pub inpatient: bool,
    /// 医疗类别 (13 = emergency, 视同备案).
    pub med_type: String,
    /// Filed for cross-region care (备案); 京津冀 persons count as filed anyway.
    pub filed: bool,
    /// The treating institution's level name (`HospLv::name`).
    pub hosp_lv: String,
    /// Visit id at the treating node.
    pub mdtrt_id: String,
    /// `acct_used_flag`.
    pub acct_used_flag: bool,
    /// The bill.
    pub lines: Vec<WireLine>,
}

/// An amount per fund (310200 stands for the personal account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundAmount {
    /// `fund_pay_type`.
    pub fund_pay_type: u32,
    /// Fen, > 0.
    pub fen: i64,
}

/// The insured node's split.
#[derive(Debug, Serialize, Deserialize)]
pub struct SplitFigures {
    /// The 2207/2304 `output` as the insured node computed it (JSON text: kept as text so the
    /// money literals stay exactly as formatted).
    pub output: String,
    /// What the insured region owes the treating region, per fund (account pay as 310200).
    pub owed: Vec<FundAmount>,
    /// 个人现金支付, fen (the patient pays it at the treating hospital).
    pub psn_cash_pay_fen: i64,
    /// 医疗费总额, fen.
    pub medfee_fen: i64,
    /// 基金支付总额, fen.
    pub fund_pay_fen: i64,
    /// 个人账户支出, fen.
    pub acct_pay_fen: i64,
}

/// A decision about one `xfer_id` on the insured node.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Decision {
    /// Posted at the insured node (or computed only, when `commit` was false).
    Settled(SplitFigures),
    /// Voided: never posted, and a late request is refused.
    Voided,
    /// Reversed after being posted.
    Reversed,
}

/// A refusal with the catalogued code and message (HTTP 422).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    /// `ApiError::code()`.
    pub err_code: String,
    /// `ApiError` text.
    pub err_msg: String,
}

/// `POST /region/v1/resolve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolveRequest {
    /// The transfer.
    pub xfer_id: String,
}

/// `POST /region/v1/reverse` (outbox body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReverseRequest {
    /// The transfer.
    pub xfer_id: String,
    /// The HIS msgid of the original settlement.
    pub msgid: String,
    /// Treating division.
    pub origin: u32,
    /// The origin's clearing window the reversal counts in.
    pub window_id: i64,
}

/// `POST /region/v1/person`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonRequest {
    /// Person number.
    pub psn_no: String,
}

/// `POST /region/v1/report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportRequest {
    /// Origin (treating) division whose window is asked for.
    pub origin: u32,
    /// Window id.
    pub window_id: i64,
}

/// One clearing figure: this node's signed position toward `counter` in `fund`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figure {
    /// The reporting node.
    pub node: u32,
    /// Counter-region node.
    pub counter: u32,
    /// `fund_pay_type`.
    pub fund_pay_type: u32,
    /// + receivable, − payable, fen.
    pub fen: i64,
}

/// Reply to `report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// Figures.
    pub figures: Vec<Figure>,
    /// At the origin: the window is closed and every message of it was acknowledged.
    pub final_at_origin: bool,
}
