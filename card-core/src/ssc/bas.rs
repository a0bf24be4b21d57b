//! The unified reader interface's `iReadCardBas` output string (ssc-card.md §6):
//! `发卡地区行政区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|`
//! — every field followed by `|`, the last one included.

use std::fmt;

use super::SscError;
use super::records::{CardIdentity, Holder};

/// Most characters accepted for the terminal numbers (终端机编号, 终端设备号).
pub const TERMINAL_NUMBER_LEN_MAX: usize = 64;

/// An `iReadCardBas` output string. It holds the 社会保障号码 and the name in clear, as the
/// interface requires; `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct CardBasOutput(String);

impl CardBasOutput {
    /// The string, for the HIS caller. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Takes the string out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for CardBasOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardBasOutput(len={})", self.0.chars().count())
    }
}

/// Builds the `iReadCardBas` output. `atr_historical_hex` is the ATR's historical bytes in hex
/// (卡复位信息, written upper-case); `terminal_no` and `device_no` come from the PSAM or the
/// terminal's configuration. A card without expiry gives an empty 卡有效期 field.
///
/// Errors: [`SscError::BasField`] if the ATR text is not hex, or a terminal number is longer
/// than [`TERMINAL_NUMBER_LEN_MAX`] or holds `|` or a control character.
pub fn card_bas_output(
    identity: &CardIdentity,
    holder: &Holder,
    atr_historical_hex: &str,
    terminal_no: &str,
    device_no: &str,
) -> Result<CardBasOutput, SscError> {
    if !atr_historical_hex.len().is_multiple_of(2)
        || !atr_historical_hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(SscError::BasField {
            field: "卡复位信息",
        });
    }
    check_plain(terminal_no, "终端机编号")?;
    check_plain(device_no, "终端设备号")?;
    let expiry = identity.expiry.map(|d| d.to_string()).unwrap_or_default();
    let fields = [
        identity.card_id.region_code(),
        holder.ssn.expose().to_owned(),
        identity.card_number.clone(),
        identity.card_id.to_hex(),
        holder.name.expose().to_owned(),
        atr_historical_hex.to_ascii_uppercase(),
        identity.spec_version.clone(),
        identity.issue_date.to_string(),
        expiry,
        terminal_no.to_owned(),
        device_no.to_owned(),
    ];
    // Card-sourced text could hold `|` too (a hostile card): every field is checked.
    const NAMES: [&str; 11] = [
        "发卡地区行政区划代码",
        "社会保障号码",
        "卡号",
        "卡识别码",
        "姓名",
        "卡复位信息",
        "规范版本",
        "发卡日期",
        "卡有效期",
        "终端机编号",
        "终端设备号",
    ];
    let mut out = String::new();
    for (field, name) in fields.iter().zip(NAMES) {
        if field.chars().any(|c| c == '|' || c.is_control()) {
            return Err(SscError::BasField { field: name });
        }
        out.push_str(field);
        out.push('|');
    }
    Ok(CardBasOutput(out))
}

fn check_plain(value: &str, field: &'static str) -> Result<(), SscError> {
    if value.chars().count() > TERMINAL_NUMBER_LEN_MAX
        || value.chars().any(|c| c == '|' || c.is_control())
    {
        return Err(SscError::BasField { field });
    }
    Ok(())
}
