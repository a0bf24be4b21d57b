//! The social security application (SSSE, 社会保障系统环境): selecting it, reading the basic
//! files EF05 (card) and EF06 (holder) by tag, and the unified reader interface's
//! `iReadCardBas` output (`../shared/reference/ssc-card.md` §2-§4, §6).
//!
//! The read sequence, as real readers send it (ssc-card.md §4):
//! 1. SELECT SSSE by name `00 A4 04 00 0F 7378312E73682EC9E7BBE1B1A3D5CF` (`sx1.sh.社会保障` in GBK);
//! 2. SELECT the EF `00 A4 02 00 02 EF05` (or `EF06`);
//! 3. READ RECORD by tag `00 B2 <tag> 00 <len + 2>` for each item.
//!
//! On a 3.00 card EF06 answers `6982` until the terminal has passed EXTERNAL AUTHENTICATE with
//! RKSSSE (key `0A`) since SSSE was selected; [`read_holder`] does that through a caller-supplied
//! [`ExternalAuthenticator`] (the docs/ssc-auth-model.md model, **not verified against the MOHRSS
//! spec**). card-core itself holds no keys.

mod bas;
mod records;
mod types;

pub use bas::{CardBasOutput, TERMINAL_NUMBER_LEN_MAX, card_bas_output};
pub use records::{
    CARD_NUMBER_LEN, CardIdentity, EF05_TAGS, EF06_TAGS, Holder, RecordSet, decode_an, decode_cn,
    decode_date, decode_gbk, read_record_command, record_value, spec_len,
};
pub(crate) use types::mask_middle;
pub use types::{CardDate, CardGeneration, CardId, PersonName, Sex, SocialSecurityNumber};

use crate::apdu::CommandApdu;
use crate::auth::{self, AuthError, ExternalAuthenticator};
use crate::sw::StatusWord;
use crate::transport::{CardError, CardTransport, Session};

/// The SSSE DF name `sx1.sh.社会保障` in GBK (ssc-card.md §0, re-encoded with Python `gbk`).
pub const SSSE_NAME: [u8; 15] = *b"sx1.sh.\xC9\xE7\xBB\xE1\xB1\xA3\xD5\xCF";
/// File id of EF05, 发卡机构数据文件.
pub const EF05_FID: [u8; 2] = [0xEF, 0x05];
/// File id of EF06, 持卡人基本信息文件.
pub const EF06_FID: [u8; 2] = [0xEF, 0x06];

/// Why reading the social security application failed. Messages never carry card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SscError {
    /// SELECT SSSE answered `6A82`: not a social security card (or SSSE is missing).
    #[error("the card has no social security application (SSSE)")]
    NoSsse,
    /// EF06 answered `6982`: a 3.0 card needs EXTERNAL AUTHENTICATE first.
    #[error("the card requires external authentication before EF06 can be read")]
    AuthenticationRequired,
    /// A required record is absent (`6A83`, or not in a [`RecordSet`]).
    #[error("record {tag:02X} is missing")]
    RecordMissing {
        /// The record tag.
        tag: u8,
    },
    /// The record answered for another tag.
    #[error("asked for record {expected:02X}, the card answered record {found:02X}")]
    RecordTag {
        /// Tag asked for.
        expected: u8,
        /// Tag in the answer.
        found: u8,
    },
    /// The record's length byte disagrees with the bytes that follow it.
    #[error("record {tag:02X} declares {declared} bytes but holds {actual}")]
    RecordLength {
        /// The record tag.
        tag: u8,
        /// The length byte.
        declared: usize,
        /// Value bytes present.
        actual: usize,
    },
    /// The value length differs from the spec table (ssc-card.md §3).
    #[error("record {tag:02X} has {actual} value bytes, the spec says {expected}")]
    FieldLength {
        /// The record tag.
        tag: u8,
        /// Length in the spec table.
        expected: usize,
        /// Length read.
        actual: usize,
    },
    /// A `cn` value has a nibble other than a digit or trailing `F`.
    #[error("record {tag:02X} is not valid BCD")]
    Bcd {
        /// The record tag.
        tag: u8,
    },
    /// A date that is not a calendar date.
    #[error("record {tag:02X} is not a valid YYYYMMDD date")]
    Date {
        /// The record tag.
        tag: u8,
    },
    /// An `an` ASCII value with a non-printable byte.
    #[error("record {tag:02X} is not printable ASCII")]
    Ascii {
        /// The record tag.
        tag: u8,
    },
    /// A GBK value that does not decode.
    #[error("record {tag:02X} is not valid GBK")]
    Gbk {
        /// The record tag.
        tag: u8,
    },
    /// A `00` inside an `an` value (padding is only allowed at the end).
    #[error("record {tag:02X} has 00 padding inside the text")]
    Padding {
        /// The record tag.
        tag: u8,
    },
    /// 社会保障号码 is not 18 characters (17 digits + check) or 15 digits.
    #[error("社会保障号码 has the wrong shape")]
    IdNumberFormat,
    /// A caller-supplied `iReadCardBas` field is unusable (contains `|` or a control character,
    /// or the ATR bytes are not hex).
    #[error("iReadCardBas field {field} is invalid")]
    BasField {
        /// Which field.
        field: &'static str,
    },
    /// EXTERNAL AUTHENTICATE (or its authenticator) failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Transport failure or an unexpected status word.
    #[error(transparent)]
    Card(#[from] CardError),
}

/// SELECT SSSE by name: `00 A4 04 00 0F 7378312E73682EC9E7BBE1B1A3D5CF` (case 3, as readers
/// send it).
pub fn select_ssse_command() -> CommandApdu {
    CommandApdu::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(SSSE_NAME.to_vec())
        .unwrap_or_else(|_| CommandApdu::new(0x00, 0xA4, 0x04, 0x00))
}

/// SELECT an EF under the current DF: `00 A4 02 00 02 <fid>`.
pub fn select_ef_command(fid: [u8; 2]) -> CommandApdu {
    CommandApdu::new(0x00, 0xA4, 0x02, 0x00)
        .with_data(fid.to_vec())
        .unwrap_or_else(|_| CommandApdu::new(0x00, 0xA4, 0x02, 0x00))
}

/// Selects SSSE and returns its FCI (possibly empty).
///
/// Errors: [`SscError::NoSsse`] on `6A82`, [`SscError::Card`] otherwise.
pub fn select_ssse<T: CardTransport>(session: &mut Session<T>) -> Result<Vec<u8>, SscError> {
    match session.exchange_ok(&select_ssse_command()) {
        Err(CardError::Status { sw, .. }) if sw == StatusWord::FILE_NOT_FOUND => {
            Err(SscError::NoSsse)
        }
        other => Ok(other?),
    }
}

/// Reads EF05 (selecting SSSE, then EF05) and decodes it.
///
/// Errors: [`SscError`]; a missing record is [`SscError::RecordMissing`].
pub fn read_identity<T: CardTransport>(session: &mut Session<T>) -> Result<CardIdentity, SscError> {
    select_ssse(session)?;
    session.exchange_ok(&select_ef_command(EF05_FID))?;
    let records = read_records(session, &EF05_TAGS, &[])?;
    CardIdentity::from_records(&records)
}

/// Reads EF06 and decodes it. Selects SSSE again (which resets any earlier authentication), runs
/// GET CHALLENGE + EXTERNAL AUTHENTICATE through `authenticator` if the card is 3rd generation,
/// selects EF06 and reads its records. A 1st-generation card is asked only for 08, 09 and 0A;
/// on later cards `6A83` for 4E (姓名扩展), 0B, 0C or 0D means "absent".
///
/// Errors: [`SscError::Auth`] if authentication fails, [`SscError::AuthenticationRequired`] if
/// the card still answers `6982`, and the decoding errors of [`Holder::from_records`].
pub fn read_holder<T: CardTransport>(
    session: &mut Session<T>,
    identity: &CardIdentity,
    authenticator: &mut dyn ExternalAuthenticator,
) -> Result<Holder, SscError> {
    select_ssse(session)?;
    if identity.generation.needs_external_authentication() {
        auth::authenticate_terminal(session, identity.card_id.as_bytes(), authenticator)?;
    }
    session.exchange_ok(&select_ef_command(EF06_FID))?;
    let records = match identity.generation {
        CardGeneration::First => read_records(session, &[0x08, 0x09, 0x0A], &[])?,
        _ => read_records(session, &EF06_TAGS, &[0x4E, 0x0B, 0x0C, 0x0D])?,
    };
    Holder::from_records(&records)
}

/// Reads EF05 then EF06: everything `iReadCardBas` needs from the card.
///
/// Errors: as [`read_identity`] and [`read_holder`].
pub fn read_card<T: CardTransport>(
    session: &mut Session<T>,
    authenticator: &mut dyn ExternalAuthenticator,
) -> Result<(CardIdentity, Holder), SscError> {
    let identity = read_identity(session)?;
    let holder = read_holder(session, &identity, authenticator)?;
    Ok((identity, holder))
}

/// READ RECORD by tag for each of `tags` in the selected EF; for tags in `optional`, `6A83`
/// means absent.
fn read_records<T: CardTransport>(
    session: &mut Session<T>,
    tags: &[u8],
    optional: &[u8],
) -> Result<RecordSet, SscError> {
    let mut records = RecordSet::new();
    for &tag in tags {
        let command = read_record_command(tag).ok_or(SscError::RecordMissing { tag })?;
        match session.exchange_ok(&command) {
            Ok(data) => records.insert(tag, data),
            Err(CardError::Status { sw, .. }) if sw == StatusWord::RECORD_NOT_FOUND => {
                if !optional.contains(&tag) {
                    return Err(SscError::RecordMissing { tag });
                }
            }
            Err(CardError::Status { sw, .. })
                if sw == StatusWord::SECURITY_STATUS_NOT_SATISFIED =>
            {
                return Err(SscError::AuthenticationRequired);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Ok(records)
}
