//! Card sessions: what the agent does with a card inside one exclusive transaction.
//!
//! - [`read_social_security`]: EF05 (identity) and EF06 (holder) by tag, in the fewest APDUs the
//!   files allow: SELECT SSSE, SELECT EF05, 7 READ RECORD, [3.00: INTERNAL AUTHENTICATE,
//!   GET CHALLENGE, EXTERNAL AUTHENTICATE], SELECT EF06, 7 READ RECORD (3 on a 1.00 card).
//!   SSSE is selected once: card-core's `read_card` selects it again before EF06, which costs
//!   an APDU and is not needed because EF05 and EF06 sit in the same DF (ssc-card.md §2).
//! - [`read_bank`]: the PBOC application (PAN masked unless revealed).
//! - [`verify_pin`]: VERIFY, with the tries left on each failure (ssc-card.md §4: `63CX`,
//!   `6983` blocked).
//!
//! Every exchange goes through `card_core::Session` (61XX/6CXX in one place) over a counting
//! transport, so each result says how many APDUs it cost.

use card_core::auth::{self, Pin};
use card_core::dol::TerminalData;
use card_core::pboc::{self, PbocApplication};
use card_core::ssc::{
    self, CardGeneration, CardIdentity, EF05_FID, EF05_TAGS, EF06_FID, EF06_TAGS, Holder, RecordSet,
};
use card_core::tlv::Tag;
use card_core::transport::CardError;
use card_core::{CardTransport, Session, StatusWord, TransportError};

use crate::authority::Authority;
use crate::error::AgentError;
use crate::reader::CardLink;

/// A [`CardTransport`] that counts the APDUs sent (GET RESPONSE and 6CXX resends included).
pub struct CountingTransport<'a> {
    inner: &'a mut dyn CardTransport,
    apdus: u32,
}

impl<'a> CountingTransport<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn CardTransport) -> Self {
        Self { inner, apdus: 0 }
    }

    /// APDUs sent so far.
    pub fn apdus(&self) -> u32 {
        self.apdus
    }
}

impl CardTransport for CountingTransport<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.apdus = self.apdus.saturating_add(1);
        self.inner.transmit(command)
    }
}

/// EF05 and EF06 as read from a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialSecurityReading {
    /// EF05: the card.
    pub identity: CardIdentity,
    /// EF06: the holder (masked in `Debug`).
    pub holder: Holder,
    /// The answer to reset.
    pub atr: Vec<u8>,
    /// True if the card proved itself genuine to the HSM (INTERNAL AUTHENTICATE).
    pub card_authenticated: bool,
    /// APDUs sent.
    pub apdus: u32,
}

/// Reads the card's identity (EF05) and holder (EF06). On a 3.00 card, first checks the card
/// with INTERNAL AUTHENTICATE when the authority has the internal-authentication key (过程因子 =
/// the last 8 bytes of the 卡识别码, our model's choice), then authenticates the terminal with
/// the HSM's cryptogram (GET CHALLENGE, EXTERNAL AUTHENTICATE with key `0A`).
///
/// Errors: [`AgentError`] — `NotSocialSecurityCard`, `CardNotGenuine`, `HsmUnavailable`,
/// `TerminalRejected`, card removal/reset/timeouts, malformed records.
pub fn read_social_security(
    link: &mut CardLink<'_>,
    authority: &Authority,
) -> Result<SocialSecurityReading, AgentError> {
    let mut counting = CountingTransport::new(link.transport.as_mut());
    let (identity, holder, card_authenticated) = {
        let mut session = Session::new(&mut counting);
        ssc::select_ssse(&mut session)?;
        session.exchange_ok(&ssc::select_ef_command(EF05_FID))?;
        let identity = CardIdentity::from_records(&read_records(&mut session, &EF05_TAGS, &[])?)?;
        let mut card_authenticated = false;
        if identity.generation.needs_external_authentication() {
            if authority.checks_internal_auth() {
                authenticate_card(&mut session, &identity, authority)?;
                card_authenticated = true;
            }
            let mut authenticator = authority.clone();
            auth::authenticate_terminal(
                &mut session,
                identity.card_id.as_bytes(),
                &mut authenticator,
            )?;
        }
        session.exchange_ok(&ssc::select_ef_command(EF06_FID))?;
        let records = match identity.generation {
            CardGeneration::First => read_records(&mut session, &[0x08, 0x09, 0x0A], &[])?,
            _ => read_records(&mut session, &EF06_TAGS, &[0x4E, 0x0B, 0x0C, 0x0D])?,
        };
        (
            identity,
            Holder::from_records(&records)?,
            card_authenticated,
        )
    };
    Ok(SocialSecurityReading {
        identity,
        holder,
        atr: link.atr.clone(),
        card_authenticated,
        apdus: counting.apdus(),
    })
}

/// INTERNAL AUTHENTICATE with a fresh terminal random, checked by the HSM.
fn authenticate_card<T: CardTransport>(
    session: &mut Session<T>,
    identity: &CardIdentity,
    authority: &Authority,
) -> Result<(), AgentError> {
    let factor = identity.card_id.diversification_factor();
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| AgentError::Internal("no system randomness".into()))?;
    let answer = auth::internal_authenticate(session, &factor, &random)?;
    let mut auth_data = [0u8; 16];
    auth_data[..8].copy_from_slice(&factor);
    auth_data[8..].copy_from_slice(&random);
    authority.verify_internal_auth(identity.card_id.as_bytes(), &auth_data, &answer)
}

/// READ RECORD by tag for each of `tags` in the selected EF; `6A83` is "absent" for the tags in
/// `optional`, and `6982` means the card wants EXTERNAL AUTHENTICATE first.
fn read_records<T: CardTransport>(
    session: &mut Session<T>,
    tags: &[u8],
    optional: &[u8],
) -> Result<RecordSet, AgentError> {
    let mut records = RecordSet::new();
    for &tag in tags {
        let command = ssc::read_record_command(tag)
            .ok_or_else(|| AgentError::Internal(format!("no READ RECORD for tag {tag:02X}")))?;
        match session.exchange_ok(&command) {
            Ok(data) => records.insert(tag, data),
            Err(CardError::Status { sw, .. })
                if sw == StatusWord::RECORD_NOT_FOUND && optional.contains(&tag) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(records)
}

/// The bank application, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankReading {
    /// The application.
    pub application: PbocApplication,
    /// APDUs sent.
    pub apdus: u32,
}

/// Selects and reads the PBOC debit application (PPSE, then PSE, then the AID list).
///
/// Errors: [`AgentError::NoBankApplication`], card faults, malformed data.
pub fn read_bank(link: &mut CardLink<'_>) -> Result<BankReading, AgentError> {
    let mut counting = CountingTransport::new(link.transport.as_mut());
    let application = {
        let mut session = Session::new(&mut counting);
        // The terminal's PDOL data: transaction currency and country CNY/China (ISO 4217 and
        // ISO 3166 numeric 156); everything else zero-filled by the DOL rules.
        let tag = |t| Tag::from_u32(t).map_err(|e| AgentError::Internal(e.to_string()));
        let terminal = TerminalData::new()
            .with(tag(0x5F2A)?, vec![0x01, 0x56])
            .with(tag(0x9F1A)?, vec![0x01, 0x56]);
        pboc::read_application(&mut session, &terminal)?
    };
    Ok(BankReading {
        application,
        apdus: counting.apdus(),
    })
}

/// Presents `pin` to the social security application (SELECT SSSE, VERIFY).
///
/// Errors: [`AgentError::PinWrong`] with the tries left (1 or more), [`AgentError::PinBlocked`]
/// on `6983` and on `63C0` (the last try failed), card faults.
pub fn verify_pin(link: &mut CardLink<'_>, pin: &Pin) -> Result<(), AgentError> {
    let mut session = Session::new(link.transport.as_mut());
    ssc::select_ssse(&mut session)?;
    match auth::verify_pin(&mut session, pin) {
        // `63C0`: wrong, and no try left: the PIN is now blocked (the next VERIFY answers 6983).
        Err(auth::AuthError::PinWrong { tries_left: 0 }) => Err(AgentError::PinBlocked),
        other => Ok(other?),
    }
}
