//! The national platform's request and response envelopes (medical-settlement.md §1.1, grade A):
//! `{infno, msgid, mdtrtarea_admvs, insuplc_admdvs, fixmedins_code, opter, inf_time, sign_no,
//! input, ...}` answered by `{infcode, inf_refmsgid, refmsg_time, respond_time, err_msg,
//! warn_msg, output}`.
//!
//! `input` is kept as raw JSON and parsed per `infno` (`nhsa::input`), so each transaction's
//! money fields are read from their literal text. The request hash used for msgid idempotency is
//! SHA-256 over the fields that decide the outcome, in a fixed order (not over the body's bytes,
//! which differ by whitespace and by `inf_time` on a resend).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::ids::Admdvs;

/// Largest request body accepted, bytes (`input` ≤ 40 000 per §1.1, plus the envelope).
pub const ENVELOPE_BYTES_MAX: usize = 64 * 1024;

/// Longest `msgid`, characters (§1.1: 30).
pub const MSGID_LEN_MAX: usize = 30;

/// Longest `fixmedins_code`, `opter`, `sign_no` and similar short fields, bytes.
pub const SHORT_FIELD_LEN_MAX: usize = 30;

/// The request envelope as sent. Unknown fields (`dev_no`, `cainfo`, `signtype`, ...) are accepted
/// and ignored.
#[derive(Debug, Deserialize)]
pub struct RequestEnvelope {
    /// Transaction code, 4 digits (e.g. `2207`).
    pub infno: String,
    /// Sender message id (≤ 30; fixmedins_code + yyyyMMddHHmmss + 4-digit sequence).
    pub msgid: String,
    /// 就医地医保区划, 6 digits.
    pub mdtrtarea_admvs: String,
    /// 参保地医保区划, 6 digits; required when `input` carries `psn_no`.
    #[serde(default)]
    pub insuplc_admdvs: Option<String>,
    /// Receiver system code.
    #[serde(default)]
    pub recer_sys_code: Option<String>,
    /// Interface version.
    #[serde(default)]
    pub infver: Option<String>,
    /// 1 operator, 2 self-service terminal, 3 mobile.
    #[serde(default)]
    pub opter_type: Option<String>,
    /// Operator id.
    pub opter: String,
    /// Operator name.
    #[serde(default)]
    pub opter_name: Option<String>,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub inf_time: String,
    /// Designated institution code (12 chars, e.g. `H41130200746`).
    pub fixmedins_code: String,
    /// Institution name.
    #[serde(default)]
    pub fixmedins_name: Option<String>,
    /// Sign-in serial from 9001.
    #[serde(default)]
    pub sign_no: Option<String>,
    /// Business payload, parsed per `infno`.
    pub input: Box<RawValue>,
}

/// A checked envelope: the fields the core uses, in domain types.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Transaction code.
    pub infno: String,
    /// Sender message id.
    pub msgid: String,
    /// 就医地.
    pub mdtrtarea_admvs: Admdvs,
    /// 参保地, if sent.
    pub insuplc_admdvs: Option<Admdvs>,
    /// Institution code.
    pub fixmedins_code: String,
    /// Operator id.
    pub opter: String,
    /// Sign-in serial, if sent.
    pub sign_no: Option<String>,
    /// The raw `input` JSON text.
    pub input: String,
}

/// `msgid` as §1.1 lays it out: `fixmedins_code` + `yyyyMMddHHmmss` + a sequence, so 1..=30
/// ASCII letters and digits. The ledger derives each settlement's posting id from its msgid
/// (`medical::ids::posting_id_of`), and the ids it derives for its own postings from keys that
/// hold `:` or `#` (`acct-open:<psn_no>`, `clearing#...`, `<msgid>#<origin>#S`), so no msgid can
/// name another path's posting.
fn msgid_field(value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty()
        && value.len() <= MSGID_LEN_MAX
        && value.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadField {
            field: "msgid",
            reason: format!(
                "must be 1-{MSGID_LEN_MAX} ASCII letters or digits (fixmedins_code + yyyyMMddHHmmss + sequence)"
            ),
        })
    }
}

fn short_field(name: &'static str, value: &str, len_max: usize) -> Result<(), ApiError> {
    let ok =
        !value.is_empty() && value.len() <= len_max && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadField {
            field: name,
            reason: format!("must be 1..={len_max} printable ASCII characters"),
        })
    }
}

impl Envelope {
    /// Parses and checks a request body. Errors: `MalformedEnvelope` (not JSON, missing field,
    /// body too large), `BadField` (msgid shape, division codes, institution code).
    pub fn parse(body: &[u8]) -> Result<Envelope, ApiError> {
        if body.len() > ENVELOPE_BYTES_MAX {
            return Err(ApiError::MalformedEnvelope(format!(
                "body is larger than {ENVELOPE_BYTES_MAX} bytes"
            )));
        }
        let wire: RequestEnvelope = serde_json::from_slice(body)
            .map_err(|error| ApiError::MalformedEnvelope(describe_json_error(&error)))?;
        if wire.infno.len() != 4 || !wire.infno.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::BadField {
                field: "infno",
                reason: "must be 4 digits".to_owned(),
            });
        }
        msgid_field(&wire.msgid)?;
        short_field("fixmedins_code", &wire.fixmedins_code, SHORT_FIELD_LEN_MAX)?;
        short_field("opter", &wire.opter, SHORT_FIELD_LEN_MAX)?;
        let admdvs = |field: &'static str, text: &str| {
            Admdvs::parse(text).map_err(|_| ApiError::BadField {
                field,
                reason: "must be 6 digits".to_owned(),
            })
        };
        let mdtrtarea_admvs = admdvs("mdtrtarea_admvs", &wire.mdtrtarea_admvs)?;
        let insuplc_admdvs = match wire.insuplc_admdvs.as_deref() {
            None | Some("") => None,
            Some(text) => Some(admdvs("insuplc_admdvs", text)?),
        };
        if let Some(sign_no) = wire.sign_no.as_deref().filter(|s| !s.is_empty()) {
            short_field("sign_no", sign_no, SHORT_FIELD_LEN_MAX)?;
        }
        Ok(Envelope {
            infno: wire.infno,
            msgid: wire.msgid,
            mdtrtarea_admvs,
            insuplc_admdvs,
            fixmedins_code: wire.fixmedins_code,
            opter: wire.opter,
            sign_no: wire.sign_no.filter(|s| !s.is_empty()),
            input: wire.input.get().to_owned(),
        })
    }

    /// SHA-256 over (infno, mdtrtarea_admvs, insuplc_admdvs, fixmedins_code, input): what decides
    /// the outcome (`inf_time`, `opter` and the other envelope fields may differ on a resend). The
    /// input is hashed as sent minus the whitespace between tokens, so a resend that is only
    /// re-indented matches while any changed value, even `12.30` for `12.3`, does not (no float
    /// ever touches it).
    pub fn request_sha256(&self) -> [u8; 32] {
        let compact = strip_json_whitespace(&self.input);
        let mut hash = Sha256::new();
        hash.update(b"nhsa-request-v2\0");
        for part in [
            self.infno.as_str(),
            &self.mdtrtarea_admvs.to_string(),
            &self
                .insuplc_admdvs
                .map(|a| a.to_string())
                .unwrap_or_default(),
            self.fixmedins_code.as_str(),
            compact.as_str(),
        ] {
            hash.update(u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

/// `json` without the whitespace outside string literals (input already parsed as valid JSON).
fn strip_json_whitespace(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// A JSON error described without echoing input values (which may hold personal data): field
/// names of missing/unknown/duplicate fields are kept, values never.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let head = text.split(" at line").next().unwrap_or("");
    let position = format!("line {} column {}", error.line(), error.column());
    let names_a_field = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|prefix| head.starts_with(prefix));
    if names_a_field {
        format!("{head} ({position})")
    } else {
        let kind = match error.classify() {
            serde_json::error::Category::Io => "unreadable body",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "a field has the wrong type or value",
            serde_json::error::Category::Eof => "body ends early",
        };
        format!("{kind} ({position})")
    }
}

/// The response envelope. `infcode` 0 on success, -1 on failure; on failure `err_msg` says what a
/// cashier can act on and `err_code` (an extension field) is the stable code of `ApiError`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResponseEnvelope {
    /// 0 success, -1 failure.
    pub infcode: i32,
    /// Receiver message id: receiver division (6) + yyyyMMddHHmmss (14) + serial (10).
    pub inf_refmsgid: String,
    /// `yyyyMMddHHmmssSSS` when the request was received.
    pub refmsg_time: String,
    /// `yyyyMMddHHmmssSSS` when the reply was sent.
    pub respond_time: String,
    /// Error text on failure.
    pub err_msg: Option<String>,
    /// Stable error code on failure (see `ApiError::code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_code: Option<String>,
    /// Warnings.
    pub warn_msg: Option<String>,
    /// Business payload (null on failure).
    #[schema(value_type = Object)]
    pub output: Box<RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(input: &str) -> Envelope {
        let body = format!(
            r#"{{"infno":"2207","msgid":"M1","mdtrtarea_admvs":"110000","opter":"o","inf_time":"t","fixmedins_code":"H1","input":{input}}}"#
        );
        Envelope::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn request_hash_ignores_layout_but_not_values() {
        let a = env(r#"{"data": {"x": "a b", "amt": 12.30}}"#).request_sha256();
        let b = env("{\"data\":{\"x\":\"a b\",\n \"amt\":12.30}}").request_sha256();
        let c = env(r#"{"data": {"x": "a b", "amt": 12.3}}"#).request_sha256();
        let d = env(r#"{"data": {"x": "ab", "amt": 12.30}}"#).request_sha256();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn malformed_envelopes_are_refused_without_echoing_values() {
        let err = Envelope::parse(br#"{"infno":"2207"}"#).unwrap_err();
        assert_eq!(err.code(), "E1001");
        let err = Envelope::parse(br#"{"infno":"2207","msgid":7,"mdtrtarea_admvs":"110000","opter":"o","inf_time":"t","fixmedins_code":"H1","input":{}}"#).unwrap_err();
        assert!(!err.to_string().contains('7'), "{err}");
        let err = Envelope::parse(br#"{"infno":"22x7","msgid":"m","mdtrtarea_admvs":"110000","opter":"o","inf_time":"t","fixmedins_code":"H1","input":{}}"#).unwrap_err();
        assert_eq!(err.code(), "E1002");
    }

    #[test]
    fn msgids_are_letters_and_digits_of_at_most_30() {
        let parse = |msgid: &str| {
            Envelope::parse(format!(
                r#"{{"infno":"2207","msgid":"{msgid}","mdtrtarea_admvs":"110000","opter":"o","inf_time":"t","fixmedins_code":"H1","input":{{}}}}"#
            ).as_bytes())
        };
        // §1.1's example: H41130200746 + 20240611153851 + 9749.
        assert!(parse("H41130200746202406111538519749").is_ok());
        for bad in [
            "",
            "H411302007462024061115385197490",
            "acct-open:P1",
            "clearing#110000#2026",
            "M1#120000#S",
            "M 1",
            "M-1",
            "M_1",
            "M\u{ff11}",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.code(), "E1002", "{bad:?}");
            assert!(err.to_string().contains("msgid"), "{err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = Envelope::parse(&body);
        }
    }
}
