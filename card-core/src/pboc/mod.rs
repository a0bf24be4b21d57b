//! The PBOC/EMV debit application on the same chip (AID `A000000333010101`): selection, GET
//! PROCESSING OPTIONS, READ RECORD over the AFL, GENERATE AC and issuer authentication framing
//! (EMV 4.4 Books 1 and 3; JR/T 0025 PBOC 3.0; `../shared/reference/card-hsm-anchors.md` §3).
//!
//! Flow: [`read_application`] selects the application (PPSE → PSE → AID list), runs GPO and
//! reads the records; [`generate_ac_with_dol`] frames the first GENERATE AC with CDOL1 data,
//! [`issuer_authenticate`] sends ARPC‖ARC, and a second GENERATE AC uses CDOL2. card-core never
//! computes a cryptogram.

mod app;
mod gac;
mod select;
pub mod tags;

pub use app::{
    AFL_RECORDS_MAX, CARD_DATA_OBJECTS_MAX, CardData, Pan, PbocApplication, Sensitive, gpo_command,
    parse_gpo_response, read_selected,
};
pub use gac::{
    AcType, CryptogramType, GenerateAcResponse, IAD_LEN_MAX, generate_ac, generate_ac_command,
    generate_ac_with_dol, issuer_authenticate, issuer_authenticate_command,
    parse_generate_ac_response,
};
pub use select::{
    CANDIDATES_MAX, Candidate, PPSE_NAME, PSE_NAME, PSE_RECORDS_MAX, UNIONPAY_AIDS, choose,
    find_candidates, ppse_candidates, pse_record_candidates, pse_sfi, select_by_name,
    select_by_name_command,
};

use crate::dol::{DolError, DolSource};
use crate::tlv::{Tag, TlvError};
use crate::transport::{CardError, CardTransport, Session};

/// Why the PBOC read flow failed. Messages never carry card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PbocError {
    /// No supported application on the card.
    #[error("the card offers no supported payment application")]
    NoApplication,
    /// A response is not well-formed BER-TLV.
    #[error("{context}: {source}")]
    Tlv {
        /// Which response.
        context: &'static str,
        /// The TLV fault, with its offset.
        source: TlvError,
    },
    /// A DOL or the AFL is malformed.
    #[error(transparent)]
    Dol(#[from] DolError),
    /// A required data object is absent.
    #[error("data object {tag} is missing")]
    MissingData {
        /// The tag.
        tag: Tag,
    },
    /// A response has the wrong structure or a field the wrong size.
    #[error("malformed card data: {what}")]
    Format {
        /// What is wrong.
        what: &'static str,
    },
    /// The PAN is not 12..=19 BCD digits with `F` padding.
    #[error("the PAN is malformed")]
    PanFormat,
    /// A GBK field does not decode.
    #[error("data object {tag} is not valid GBK")]
    Gbk {
        /// The tag.
        tag: Tag,
    },
    /// Command data past the 255 bytes of a short Lc.
    #[error("command data of {len_bytes} bytes exceeds 255")]
    DataTooLong {
        /// Bytes of command data.
        len_bytes: usize,
    },
    /// EXTERNAL AUTHENTICATE answered `6300`: the ARPC did not verify.
    #[error("issuer authentication failed")]
    IssuerAuthenticationFailed,
    /// Transport failure or an unexpected status word.
    #[error(transparent)]
    Card(#[from] CardError),
}

impl PbocError {
    pub(crate) fn tlv(context: &'static str, source: TlvError) -> Self {
        Self::Tlv { context, source }
    }
}

/// Selects the best UnionPay application ([`UNIONPAY_AIDS`]) and reads it.
///
/// Errors: [`PbocError::NoApplication`] and those of [`read_application_with`].
pub fn read_application<T: CardTransport>(
    session: &mut Session<T>,
    terminal: &dyn DolSource,
) -> Result<PbocApplication, PbocError> {
    read_application_with(session, terminal, &UNIONPAY_AIDS)
}

/// Application selection over `terminal_aids` ([`find_candidates`], [`choose`]), final SELECT
/// of the chosen AID, then [`read_selected`].
///
/// Errors: [`PbocError`].
pub fn read_application_with<T: CardTransport>(
    session: &mut Session<T>,
    terminal: &dyn DolSource,
    terminal_aids: &[&[u8]],
) -> Result<PbocApplication, PbocError> {
    let candidates = find_candidates(session, terminal_aids)?;
    let chosen = choose(&candidates).ok_or(PbocError::NoApplication)?;
    let fci = select_by_name(session, &chosen.aid)?.ok_or(PbocError::NoApplication)?;
    let mut application = read_selected(session, &chosen.aid, &fci, terminal)?;
    if application.label.is_none() {
        application.label.clone_from(&chosen.label);
    }
    Ok(application)
}
