//! `POST /v1/readers/{name}/settle`: an outpatient settlement for the card in a reader, on behalf
//! of a kiosk (issue 4 and issue 5; medical-settlement.md §1.2-§1.6). The agent reads the card's
//! 卡号 (EF05, ssc-card.md §2), then sends through the journal ([`crate::journal`]), each
//! envelope on disk before it leaves:
//!
//! 1. 1101 by card (`mdtrt_cert_type` 03, `mdtrt_cert_no` = 卡号) → `psn_no`, `insutype`,
//!    `insuplc_admdvs`;
//! 2. 2201 outpatient registration → `mdtrt_id`;
//! 3. 2204 the bill's fee lines;
//! 4. 2207 the settlement, `medfee_sumamt` = the sum of the lines.
//!
//! A refusal at any step ends the flow (`outcome` `refused`, the step and the switch's
//! `err_msg`). No usable reply to 2207 makes the outcome `unknown`: the journal holds a 2601
//! reversal naming the 2207's msgid, which the forwarder retries until the switch
//! acknowledges it (across restarts). The kiosk must not tell the holder "paid".
//!
//! Settings ([`SettleContext`]): given with [`configure`] (`terminal-agent serve` does so when
//! `[switch] url` is set). Without them the route answers 400.

use std::sync::{Arc, RwLock};

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::card;
use crate::error::AgentError;
use crate::journal::{EnvelopeHeader, Journal, SendOutcome, SwitchClient, envelope, send_message};

/// Most fee lines in one kiosk bill.
pub const FEE_LINES_MAX: usize = 100;
/// Largest amount of one line or of the bill, fen (10 000 000.00 yuan).
pub const AMOUNT_FEN_MAX: i64 = 1_000_000_000;
/// Longest code or text field of a fee line, bytes.
pub const FIELD_LEN_MAX: usize = 64;

/// What the route needs: the journal, the switch and the terminal's envelope header.
#[derive(Debug, Clone)]
pub struct SettleContext {
    /// The journal every envelope is written to before it is sent.
    pub journal: Journal,
    /// The switch (with the gateway credentials).
    pub client: SwitchClient,
    /// The terminal's envelope fields (fixmedins_code, 就医地 mdtrtarea_admvs, operator).
    pub header: EnvelopeHeader,
}

static CONTEXT: RwLock<Option<Arc<SettleContext>>> = RwLock::new(None);

/// Sets (or replaces, after the journal was reopened) the route's settings.
pub fn configure(context: SettleContext) {
    let mut slot = CONTEXT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *slot = Some(Arc::new(context));
}

fn context() -> Option<Arc<SettleContext>> {
    CONTEXT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// One fee line of the bill (the 2204 `feedetail` fields the kiosk knows).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeLineBody {
    /// 费用明细流水号, unique in the bill.
    pub feedetl_sn: String,
    /// 医疗目录编码 (the national catalogue code).
    pub med_list_codg: String,
    /// 医药机构目录编码.
    pub medins_list_codg: String,
    /// 明细项目费用总额, yuan with at most 2 decimals (`"30.00"`).
    pub det_item_fee_sumamt: String,
    /// 数量 (decimal text).
    pub cnt: String,
    /// 单价, yuan (decimal text).
    pub pric: String,
}

/// The request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleBody {
    /// 收费批次号.
    pub chrg_bchno: String,
    /// 医疗类别; `"11"` (普通门诊) when absent.
    #[serde(default)]
    pub med_type: Option<String>,
    /// Whether the personal account pays its part (`acct_used_flag`).
    pub use_personal_account: bool,
    /// The bill, 1..=[`FEE_LINES_MAX`] lines.
    pub feedetail: Vec<FeeLineBody>,
}

/// How the settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettleOutcome {
    /// 2207 answered `infcode` 0: settled.
    Settled,
    /// The switch refused a step (`step`, `err_msg`); nothing to reverse.
    Refused,
    /// The switch could not be reached at `step`; nothing was settled.
    NotDelivered,
    /// A step before 2207 got no usable reply; nothing was settled (repeat at the counter).
    Unanswered,
    /// 2207 got no usable reply: a 2601 reversal is journaled and retried until acknowledged.
    Unknown,
}

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SettleView {
    /// How it ended.
    pub outcome: SettleOutcome,
    /// The transaction code of the last step sent (`1101`, `2201`, `2204`, `2207`).
    pub step: String,
    /// The last step's msgid (for `unknown`: the 2207 the reversal names).
    pub msgid: String,
    /// The journaled 2601's msgid (`unknown` only).
    pub reversal_msgid: Option<String>,
    /// The switch's `err_msg` (`refused` only).
    pub err_msg: Option<String>,
    /// The bill total sent as `medfee_sumamt`, yuan (2 decimals).
    pub medfee_sumamt: String,
    /// 2207 `output.setlinfo` as the switch answered it (`settled` only).
    #[schema(value_type = Object)]
    pub setlinfo: Value,
    /// 2207 `output.setldetail` (`settled` only).
    #[schema(value_type = Object)]
    pub setldetail: Value,
}

/// Parses yuan text (`"30"`, `"30.5"`, `"30.00"`; no sign, no exponent) to fen, at most
/// [`AMOUNT_FEN_MAX`]. `None` for anything else.
pub fn yuan_to_fen(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 10 || frac.len() > 2 || !digits(whole) || !digits(frac) {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let yuan: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{frac:0<2}").parse().ok()?;
    let fen = yuan.checked_mul(100)?.checked_add(cents)?;
    (fen <= AMOUNT_FEN_MAX).then_some(fen)
}

/// Fen as yuan text with exactly 2 decimals (`3150` → `"31.50"`); `fen` ≥ 0.
pub fn fen_to_yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// Checks the bill and returns its total, fen. Errors: [`AgentError::BadRequest`].
fn bill_total_fen(body: &SettleBody) -> Result<i64, AgentError> {
    let bad = |what: &str| AgentError::BadRequest(what.to_owned());
    if body.feedetail.is_empty() || body.feedetail.len() > FEE_LINES_MAX {
        return Err(bad("feedetail must hold 1..=100 lines"));
    }
    let short = |s: &str| !s.is_empty() && s.len() <= FIELD_LEN_MAX;
    if !short(&body.chrg_bchno) || body.med_type.as_deref().is_some_and(|m| !short(m)) {
        return Err(bad("chrg_bchno and med_type must be 1..=64 bytes"));
    }
    let mut total: i64 = 0;
    for line in &body.feedetail {
        let fields = [
            &line.feedetl_sn,
            &line.med_list_codg,
            &line.medins_list_codg,
            &line.cnt,
            &line.pric,
        ];
        if !fields.iter().all(|f| short(f)) {
            return Err(bad("fee line fields must be 1..=64 bytes"));
        }
        let fen = yuan_to_fen(&line.det_item_fee_sumamt)
            .ok_or_else(|| bad("det_item_fee_sumamt must be yuan with at most 2 decimals"))?;
        total = total
            .checked_add(fen)
            .filter(|t| *t <= AMOUNT_FEN_MAX)
            .ok_or_else(|| bad("the bill total is too large"))?;
    }
    Ok(total)
}

/// Where one step left the flow.
enum Step {
    /// `infcode` 0: the msgid and the reply's `output`.
    Answered(String, Value),
    /// The flow ends with this view.
    Ended(SettleView),
}

struct Flow<'a> {
    context: &'a SettleContext,
    medfee_sumamt: String,
}

impl Flow<'_> {
    fn ended(&self, outcome: SettleOutcome, step: &str, msgid: String) -> SettleView {
        SettleView {
            outcome,
            step: step.to_owned(),
            msgid,
            reversal_msgid: None,
            err_msg: None,
            medfee_sumamt: self.medfee_sumamt.clone(),
            setlinfo: Value::Null,
            setldetail: Value::Null,
        }
    }

    async fn step(
        &self,
        infno: &str,
        psn_no: &str,
        insuplc_admdvs: &str,
        input: Value,
    ) -> Result<Step, AgentError> {
        let c = self.context;
        let outcome = send_message(
            &c.journal,
            &c.client,
            &c.header,
            infno,
            psn_no,
            insuplc_admdvs,
            input,
        )
        .await
        .map_err(|e| AgentError::Internal(format!("journal: {e}")))?;
        Ok(match outcome {
            SendOutcome::Acknowledged { msgid, reply } => Step::Answered(msgid, reply.output),
            SendOutcome::Refused { msgid, reply } => {
                tracing::info!(infno, msgid, infcode = reply.infcode, "switch refused");
                let mut view = self.ended(SettleOutcome::Refused, infno, msgid);
                view.err_msg = reply.err_msg;
                Step::Ended(view)
            }
            SendOutcome::NotDelivered { msgid } => {
                Step::Ended(self.ended(SettleOutcome::NotDelivered, infno, msgid))
            }
            SendOutcome::Unanswered { msgid } => {
                Step::Ended(self.ended(SettleOutcome::Unanswered, infno, msgid))
            }
            SendOutcome::Unknown {
                msgid,
                reversal_msgid,
            } => {
                let mut view = self.ended(SettleOutcome::Unknown, infno, msgid);
                view.reversal_msgid = Some(reversal_msgid);
                Step::Ended(view)
            }
        })
    }
}

fn text_at<'a>(value: &'a Value, pointer: &str) -> Result<&'a str, AgentError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= FIELD_LEN_MAX)
        .ok_or_else(|| AgentError::Internal(format!("the switch's reply lacks {pointer}")))
}

macro_rules! answered {
    ($step:expr) => {
        match $step {
            Step::Answered(msgid, output) => (msgid, output),
            Step::Ended(view) => return Ok(Json(view)),
        }
    };
}

/// Settles the bill for the card in reader `name`.
///
/// Errors: 400 without settings or with a malformed bill; card and reader errors; 500 when the
/// journal cannot be written (then nothing was sent) or a reply lacks a field the flow needs.
#[utoipa::path(post, path = "/v1/readers/{name}/settle",
    params(("name" = String, Path, description = "PC/SC reader name")),
    request_body = SettleBody,
    responses(
        (status = 200, body = SettleView, description = "settled, refused, not delivered, unanswered or unknown (see outcome)"),
        (status = 400, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
        (status = 422, body = super::ErrorBody), (status = 500, body = super::ErrorBody),
    ))]
pub async fn settle(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Json(body): Json<SettleBody>,
) -> Result<Json<SettleView>, ApiError> {
    let context = context().ok_or_else(|| {
        AgentError::BadRequest("settlement is not configured ([switch] url)".into())
    })?;
    let total_fen = bill_total_fen(&body)?;
    let authority = state.authority.clone();
    let reading = state
        .readers
        .run(&name, state.settings.card_timeout_ms, move |link| {
            card::read_social_security(link, &authority)
        })
        .await?;
    let card_no = reading.identity.card_number;
    let flow = Flow {
        context: &context,
        medfee_sumamt: fen_to_yuan(total_fen),
    };
    let area = context.header.mdtrtarea_admvs.clone();

    let (_, person) = answered!(
        flow.step(
            "1101",
            "",
            &area,
            json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_no, "card_sn": "",
                "psn_cert_type": "", "certno": "", "psn_name": ""}}),
        )
        .await?
    );
    let psn_no = text_at(&person, "/baseinfo/psn_no")?.to_owned();
    let insutype = text_at(&person, "/insuinfo/0/insutype")?.to_owned();
    let insuplc = text_at(&person, "/insuinfo/0/insuplc_admdvs")?.to_owned();

    let now = envelope::inf_time(envelope::beijing_now());
    let (_, visit) = answered!(
        flow.step(
            "2201",
            &psn_no,
            &insuplc,
            json!({"data": {"psn_no": psn_no, "insutype": insutype, "begntime": now,
                "mdtrt_cert_type": "03", "mdtrt_cert_no": card_no}}),
        )
        .await?
    );
    let mdtrt_id = text_at(&visit, "/data/mdtrt_id")?.to_owned();

    let lines: Vec<Value> = body
        .feedetail
        .iter()
        .map(|l| {
            json!({"feedetl_sn": l.feedetl_sn, "mdtrt_id": mdtrt_id, "psn_no": psn_no,
                "chrg_bchno": body.chrg_bchno, "med_list_codg": l.med_list_codg,
                "medins_list_codg": l.medins_list_codg,
                "det_item_fee_sumamt": l.det_item_fee_sumamt, "cnt": l.cnt, "pric": l.pric,
                "fee_ocur_time": now})
        })
        .collect();
    answered!(
        flow.step("2204", &psn_no, &insuplc, json!({"feedetail": lines}))
            .await?
    );

    let settled = flow
        .step(
            "2207",
            &psn_no,
            &insuplc,
            json!({"data": {"psn_no": psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": card_no,
                "med_type": body.med_type.as_deref().unwrap_or("11"),
                "medfee_sumamt": flow.medfee_sumamt, "psn_setlway": "01", "mdtrt_id": mdtrt_id,
                "chrg_bchno": body.chrg_bchno, "insutype": insutype,
                "acct_used_flag": if body.use_personal_account { "1" } else { "0" }}}),
        )
        .await?;
    let (msgid, output) = answered!(settled);
    tracing::info!(reader = %name, "outpatient settlement acknowledged");
    Ok(Json(SettleView {
        outcome: SettleOutcome::Settled,
        step: "2207".into(),
        msgid,
        reversal_msgid: None,
        err_msg: None,
        medfee_sumamt: flow.medfee_sumamt.clone(),
        setlinfo: output.get("setlinfo").cloned().unwrap_or(Value::Null),
        setldetail: output.get("setldetail").cloned().unwrap_or(Value::Null),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn yuan_text_to_fen() {
        assert_eq!(yuan_to_fen("30.00"), Some(3_000));
        assert_eq!(yuan_to_fen("30.5"), Some(3_050));
        assert_eq!(yuan_to_fen("0.07"), Some(7));
        assert_eq!(yuan_to_fen("3150"), Some(315_000));
        for bad in [
            "",
            ".5",
            "1.",
            "1.234",
            "-1",
            "+1",
            "1e3",
            "1,00",
            " 1",
            "99999999999",
        ] {
            assert_eq!(yuan_to_fen(bad), None, "{bad}");
        }
        assert_eq!(fen_to_yuan(315_000), "3150.00");
        assert_eq!(fen_to_yuan(7), "0.07");
    }

    proptest! {
        #[test]
        fn yuan_round_trips(fen in 0i64..=AMOUNT_FEN_MAX) {
            prop_assert_eq!(yuan_to_fen(&fen_to_yuan(fen)), Some(fen));
        }

        #[test]
        fn yuan_parser_never_panics(text in ".{0,24}") {
            let _ = yuan_to_fen(&text);
        }
    }
}
