//! The `input` of each implemented `infno`, with the interface's field names (medical-settlement.md
//! §1.2, §1.3, §1.4; shapes grade A from the HIS code cited there). Unknown fields are ignored;
//! money is `WireNumber` (exact literal, number or string).

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::money::WireNumber;

/// `{"data": {...}}`, the single-record shape.
#[derive(Debug, Deserialize)]
pub struct Data<T> {
    /// The record.
    pub data: T,
}

/// 9001 `{"signIn": {opter_no, mac, ip}}`.
#[derive(Debug, Deserialize)]
pub struct SignInInput {
    /// The sign-in record.
    #[serde(rename = "signIn")]
    pub sign_in: SignIn,
}

/// 9001 record.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    /// Operator number.
    pub opter_no: String,
    /// MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// IP address.
    #[serde(default)]
    pub ip: Option<String>,
}

/// 9002 `{"signOut": {sign_no, opter_no}}`.
#[derive(Debug, Deserialize)]
pub struct SignOutInput {
    /// The sign-out record.
    #[serde(rename = "signOut")]
    pub sign_out: SignOut,
}

/// 9002 record.
#[derive(Debug, Deserialize)]
pub struct SignOut {
    /// The serial from 9001.
    pub sign_no: String,
    /// Operator number.
    pub opter_no: String,
}

/// 1101 data: identify by `psn_no`-free certificate: `mdtrt_cert_type` 02 身份证 (`certno` /
/// `mdtrt_cert_no`), 03 社保卡 (`mdtrt_cert_no` = card number, `card_sn`).
#[derive(Debug, Deserialize)]
pub struct PersonQuery {
    /// 01 电子凭证, 02 身份证, 03 社保卡.
    pub mdtrt_cert_type: String,
    /// The certificate's number (ID number for 02, card number for 03).
    #[serde(default)]
    pub mdtrt_cert_no: Option<String>,
    /// Card serial (社保卡).
    #[serde(default)]
    pub card_sn: Option<String>,
    /// 证件号码.
    #[serde(default)]
    pub certno: Option<String>,
    /// 人员证件类型.
    #[serde(default)]
    pub psn_cert_type: Option<String>,
}

/// 2201 data.
#[derive(Debug, Deserialize)]
pub struct Registration {
    /// Person.
    pub psn_no: String,
    /// 310 / 390.
    pub insutype: String,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub begntime: String,
    /// Certificate type.
    #[serde(default)]
    pub mdtrt_cert_type: Option<String>,
    /// Certificate number.
    #[serde(default)]
    pub mdtrt_cert_no: Option<String>,
    /// HIS outpatient number.
    #[serde(default)]
    pub ipt_otp_no: Option<String>,
    /// Department code.
    #[serde(default)]
    pub dept_code: Option<String>,
}

/// 2202 / 2203-free cancellation of a registration: `{psn_no, mdtrt_id, ipt_otp_no}`.
#[derive(Debug, Deserialize)]
pub struct VisitRef {
    /// Person.
    pub psn_no: String,
    /// Visit.
    pub mdtrt_id: String,
}

/// 2203 `{"mdtrtinfo": {...}, "diseinfo": [...]}`.
#[derive(Debug, Deserialize)]
pub struct VisitInfoInput {
    /// The visit information.
    pub mdtrtinfo: VisitInfo,
    /// Diagnoses.
    #[serde(default)]
    pub diseinfo: Vec<serde_json::Value>,
}

/// 2203 `mdtrtinfo`.
#[derive(Debug, Deserialize)]
pub struct VisitInfo {
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
    /// 11 普通门诊, 13 急诊, 14 门诊慢特病 ...
    pub med_type: String,
    /// Diagnosis code.
    #[serde(default)]
    pub dise_codg: Option<String>,
}

/// 2401 `{"mdtrtinfo": {...}, "diseinfo": [...]}`.
#[derive(Debug, Deserialize)]
pub struct AdmissionInput {
    /// The admission.
    pub mdtrtinfo: Admission,
    /// Diagnoses.
    #[serde(default)]
    pub diseinfo: Vec<serde_json::Value>,
}

/// 2401 `mdtrtinfo`.
#[derive(Debug, Deserialize)]
pub struct Admission {
    /// Person.
    pub psn_no: String,
    /// 310 / 390.
    pub insutype: String,
    /// Admission time.
    pub begntime: String,
    /// 21 普通住院 ...
    pub med_type: String,
    /// HIS inpatient number.
    #[serde(default)]
    pub ipt_no: Option<String>,
}

/// 2402 `{"dscginfo": {...}}`.
#[derive(Debug, Deserialize)]
pub struct DischargeInput {
    /// The discharge.
    pub dscginfo: Discharge,
}

/// 2402 `dscginfo`.
#[derive(Debug, Deserialize)]
pub struct Discharge {
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
    /// Discharge time.
    pub endtime: String,
}

/// 2204 / 2301 `{"feedetail": [...]}`.
#[derive(Debug, Deserialize)]
pub struct FeeUpload {
    /// The lines (at most `FEE_LINES_MAX`).
    pub feedetail: Vec<FeeDetail>,
}

/// Most lines in one upload.
pub const FEE_LINES_MAX: usize = 1_000;

/// One `feedetail[]` line.
#[derive(Debug, Deserialize)]
pub struct FeeDetail {
    /// Line number (unique per visit).
    pub feedetl_sn: String,
    /// The original line of a refund (negative) line.
    #[serde(default)]
    pub init_feedetl_sn: Option<String>,
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
    /// Fee batch number.
    pub chrg_bchno: String,
    /// 医疗目录编码 (national code).
    pub med_list_codg: String,
    /// Institution's own code.
    #[serde(default)]
    pub medins_list_codg: Option<String>,
    /// Line total, yuan (negative on a refund line).
    pub det_item_fee_sumamt: WireNumber,
    /// Quantity (negative on a refund line).
    pub cnt: WireNumber,
    /// Unit price, yuan.
    pub pric: WireNumber,
    /// When the fee occurred.
    #[serde(default)]
    pub fee_ocur_time: Option<String>,
}

/// 2205 / 2302 data: cancel one line (`feedetl_sn`) or the whole batch (`feedetl_sn` "0000" or
/// absent).
#[derive(Debug, Deserialize)]
pub struct FeeCancel {
    /// Visit.
    pub mdtrt_id: String,
    /// Batch.
    pub chrg_bchno: String,
    /// Line, or "0000" for all lines of the batch.
    #[serde(default)]
    pub feedetl_sn: Option<String>,
    /// Person.
    pub psn_no: String,
}

/// 2206 / 2207 / 2303 / 2304 data (§1.3: OutptSettleReqUtil field list).
#[derive(Debug, Deserialize)]
pub struct SettleRequest {
    /// Person.
    pub psn_no: String,
    /// Certificate type.
    #[serde(default)]
    pub mdtrt_cert_type: Option<String>,
    /// Certificate number.
    #[serde(default)]
    pub mdtrt_cert_no: Option<String>,
    /// 11 普通门诊 ... (outpatient; inpatient takes it from 2401).
    #[serde(default)]
    pub med_type: Option<String>,
    /// Total of the bill, yuan: must equal the uploaded lines' total.
    pub medfee_sumamt: WireNumber,
    /// 01 按项目.
    #[serde(default)]
    pub psn_setlway: Option<String>,
    /// Visit.
    pub mdtrt_id: String,
    /// Fee batch (outpatient).
    #[serde(default)]
    pub chrg_bchno: Option<String>,
    /// 310 / 390.
    pub insutype: String,
    /// "1": the personal account pays what it can; "0": cash.
    pub acct_used_flag: String,
    /// Invoice number.
    #[serde(default)]
    pub invono: Option<String>,
    /// Mid-stay settlement flag (inpatient).
    #[serde(default)]
    pub mid_setl_flag: Option<String>,
    /// 全自费 sent by HIS (from the 2204 reply), checked against the uploaded lines if present.
    #[serde(default)]
    pub fulamt_ownpay_amt: Option<WireNumber>,
    /// 超限价.
    #[serde(default)]
    pub overlmt_selfpay: Option<WireNumber>,
    /// 先行自付.
    #[serde(default)]
    pub preselfpay_amt: Option<WireNumber>,
    /// 符合范围.
    #[serde(default)]
    pub inscp_scp_amt: Option<WireNumber>,
}

/// 2208 / 2305 data.
#[derive(Debug, Deserialize)]
pub struct SettleCancel {
    /// The settlement.
    pub setl_id: String,
    /// Visit.
    pub mdtrt_id: String,
    /// Person.
    pub psn_no: String,
}

/// 2601 data.
#[derive(Debug, Deserialize)]
pub struct Reversal {
    /// Person.
    pub psn_no: String,
    /// Original msgid.
    pub omsgid: String,
    /// Original infno (2207, 2304, ...).
    pub oinfno: String,
}

/// 3201 data.
#[derive(Debug, Deserialize)]
pub struct TotalsCheck {
    /// 310 / 390.
    pub insutype: String,
    /// Clearing category.
    #[serde(default)]
    pub clr_type: Option<String>,
    /// Clearing agency.
    #[serde(default)]
    pub setl_optins: Option<String>,
    /// `yyyy-MM-dd`.
    pub stmt_begndate: String,
    /// `yyyy-MM-dd`.
    pub stmt_enddate: String,
    /// Σ medfee_sumamt as HIS has it.
    pub medfee_sumamt: WireNumber,
    /// Σ fund_pay_sumamt.
    pub fund_pay_sumamt: WireNumber,
    /// Σ acct_pay.
    pub acct_pay: WireNumber,
    /// Count of settlements.
    pub fixmedins_setl_cnt: WireNumber,
}

/// 5206 data.
#[derive(Debug, Deserialize)]
pub struct AccumQuery {
    /// Person.
    pub psn_no: String,
    /// `yyyy` or `yyyyMM` (the year is used).
    #[serde(default)]
    pub cum_ym: Option<String>,
}

/// Parses `input` text as `T`. Errors: `BadInput` naming the infno and the failing field (never
/// its value).
pub fn parse<T: DeserializeOwned>(infno: &str, input: &str) -> Result<T, ApiError> {
    serde_json::from_str(input).map_err(|error| ApiError::BadInput {
        infno: infno.to_owned(),
        reason: super::envelope::describe_json_error(&error),
    })
}

/// A money field as fen, or `BadAmount` naming the field.
pub fn fen_field(field: &str, number: &WireNumber) -> Result<crate::Fen, ApiError> {
    number.to_fen().map_err(|error| ApiError::BadAmount {
        field: field.to_owned(),
        reason: error.to_string(),
    })
}
