//! The national medical insurance interface's request envelope (medical-settlement.md §1.1,
//! grade A): `infno`, `msgid`, `mdtrtarea_admvs`, `insuplc_admdvs`, `recer_sys_code`,
//! `infver`, `opter_type`, `opter`, `opter_name`, `inf_time`, `fixmedins_code`,
//! `fixmedins_name`, `sign_no`, `input`.
//!
//! msgid = fixmedins_code (12) + `yyyyMMddHHmmss` (14) + a 4-digit sequence = 30 characters
//! (§1.1, example `H41130200746202406111538519749`). Times are Beijing time (UTC+8).

use serde::Serialize;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset, macros::format_description};

/// Characters of a msgid.
pub const MSGID_LEN: usize = 30;
/// Characters of a fixmedins_code.
pub const FIXMEDINS_CODE_LEN: usize = 12;
/// The reversal transaction (冲正交易).
pub const INFNO_REVERSAL: &str = "2601";

/// Beijing time, the platform's clock (UTC+8, no daylight saving).
pub fn beijing_now() -> OffsetDateTime {
    let offset = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    OffsetDateTime::now_utc().to_offset(offset)
}

/// `yyyyMMddHHmmss` of `at`.
pub fn compact_time(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year][month][day][hour][minute][second]"
    ))
    .unwrap_or_default()
}

/// `yyyy-MM-dd HH:mm:ss` of `at` (`inf_time`).
pub fn inf_time(at: OffsetDateTime) -> String {
    at.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// The msgid for `fixmedins_code`, second `compact` (14 digits) and sequence `seq` (0..=9999).
/// `None` if the parts have the wrong lengths.
pub fn msgid(fixmedins_code: &str, compact: &str, seq: u16) -> Option<String> {
    (fixmedins_code.len() == FIXMEDINS_CODE_LEN && compact.len() == 14 && seq <= 9_999)
        .then(|| format!("{fixmedins_code}{compact}{seq:04}"))
}

/// The fields that are the same for every message of a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// 定点医药机构编号 (12 characters).
    pub fixmedins_code: String,
    /// 定点医药机构名称.
    pub fixmedins_name: String,
    /// 就医地医保区划 (6 digits).
    pub mdtrtarea_admvs: String,
    /// 接收方系统代码.
    pub recer_sys_code: String,
    /// 经办人类别: `2` self-service terminal.
    pub opter_type: String,
    /// Operator or terminal id.
    pub opter: String,
    /// Operator or terminal name.
    pub opter_name: String,
    /// 签到编号 from 9001.
    pub sign_no: String,
}

/// One request envelope, as sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    /// Transaction code.
    pub infno: String,
    /// Message id (30 characters).
    pub msgid: String,
    /// 就医地医保区划.
    pub mdtrtarea_admvs: String,
    /// 参保地医保区划 (required with `psn_no`).
    pub insuplc_admdvs: String,
    /// 接收方系统代码.
    pub recer_sys_code: String,
    /// Interface version.
    pub infver: String,
    /// 经办人类别.
    pub opter_type: String,
    /// 经办人.
    pub opter: String,
    /// 经办人姓名.
    pub opter_name: String,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub inf_time: String,
    /// 定点医药机构编号.
    pub fixmedins_code: String,
    /// 定点医药机构名称.
    pub fixmedins_name: String,
    /// 签到编号.
    pub sign_no: String,
    /// Business payload.
    pub input: Value,
}

impl Envelope {
    /// An envelope for `infno` with `msgid`, sent at `at`.
    pub fn new(
        header: &EnvelopeHeader,
        infno: &str,
        msgid: &str,
        insuplc_admdvs: &str,
        input: Value,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            infno: infno.to_owned(),
            msgid: msgid.to_owned(),
            mdtrtarea_admvs: header.mdtrtarea_admvs.clone(),
            insuplc_admdvs: insuplc_admdvs.to_owned(),
            recer_sys_code: header.recer_sys_code.clone(),
            infver: "V1.0".into(),
            opter_type: header.opter_type.clone(),
            opter: header.opter.clone(),
            opter_name: header.opter_name.clone(),
            inf_time: inf_time(at),
            fixmedins_code: header.fixmedins_code.clone(),
            fixmedins_name: header.fixmedins_name.clone(),
            sign_no: header.sign_no.clone(),
            input,
        }
    }

    /// The 2601 input reversing the message `omsgid` of transaction `oinfno` for `psn_no`
    /// (medical-settlement.md §1.6: keys psn_no, omsgid, oinfno).
    pub fn reversal_input(psn_no: &str, omsgid: &str, oinfno: &str) -> Value {
        serde_json::json!({"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": oinfno}})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgid_is_code_time_sequence() {
        // medical-settlement.md §5.3: H41130200746 + 20240611153851 + 9749.
        assert_eq!(
            msgid("H41130200746", "20240611153851", 9749).unwrap(),
            "H41130200746202406111538519749"
        );
        assert_eq!(
            msgid("H41130200746", "20240611153851", 7).unwrap().len(),
            MSGID_LEN
        );
        assert!(msgid("H4113", "20240611153851", 1).is_none());
        assert!(msgid("H41130200746", "20240611153851", 10_000).is_none());
    }

    #[test]
    fn times_are_formatted_as_the_platform_expects() {
        let at = time::macros::datetime!(2024-06-11 15:38:51 +8);
        assert_eq!(compact_time(at), "20240611153851");
        assert_eq!(inf_time(at), "2024-06-11 15:38:51");
    }
}
