//! Cardholder and terminal authentication commands: PIN VERIFY, and the 3rd-generation SSC
//! GET CHALLENGE / INTERNAL AUTHENTICATE / EXTERNAL AUTHENTICATE framing.
//!
//! Sources: `../shared/reference/ssc-card.md` §4 (the APDUs and status words), and
//! `docs/ssc-auth-model.md` "3rd-generation SSC authentication model" (**model, not verified
//! against the MOHRSS spec**): the card's INTERNAL AUTHENTICATE answer and the terminal's
//! EXTERNAL AUTHENTICATE cryptogram are SM4 computations with keys diversified from the
//! 卡识别码. card-core only frames the commands: cryptograms come from an
//! [`ExternalAuthenticator`] (backed by the HSM in the terminal agent).
//!
//! The PIN never appears in `Debug`, `Display` or an error, and its buffers are zeroized.

use std::fmt;

use zeroize::Zeroizing;

use crate::apdu::CommandApdu;
use crate::sw::StatusWord;
use crate::transport::{CardError, CardTransport, Session};

/// Fewest PIN digits accepted.
pub const PIN_DIGITS_MIN: usize = 4;
/// Most PIN digits accepted.
pub const PIN_DIGITS_MAX: usize = 12;
/// Bytes of a GET CHALLENGE answer (ssc-card.md §4: `00 84 00 00 08`).
pub const CHALLENGE_LEN: usize = 8;
/// Bytes of the INTERNAL/EXTERNAL AUTHENTICATE data on a 3.0 card (one SM4 block).
pub const AUTH_BLOCK_LEN: usize = 16;
/// Key id of RKSSSE, the external-authentication key checked before EF06 is read (ssc-card.md §4).
pub const RKSSSE_KEY_ID: u8 = 0x0A;

/// Why an authentication command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The PIN is not 4..=12 decimal digits (the PIN itself is never reported).
    #[error("a PIN must be {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} decimal digits")]
    PinFormat,
    /// `63CX`: wrong PIN, X tries left.
    #[error("wrong PIN, {tries_left} tries left")]
    PinWrong {
        /// Tries left before the PIN blocks.
        tries_left: u8,
    },
    /// `6983`: the PIN is blocked.
    #[error("the PIN is blocked")]
    PinBlocked,
    /// `63CX` to EXTERNAL AUTHENTICATE: the cryptogram was wrong, X tries left.
    #[error("external authentication cryptogram rejected, {tries_left} tries left")]
    CryptogramWrong {
        /// Tries left before the key blocks.
        tries_left: u8,
    },
    /// `6983` to EXTERNAL AUTHENTICATE: the key is blocked.
    #[error("the external authentication key is blocked")]
    KeyBlocked,
    /// `6985` to EXTERNAL AUTHENTICATE: no fresh GET CHALLENGE preceded it.
    #[error("external authentication without a preceding challenge")]
    NoChallenge,
    /// The card's answer has the wrong length.
    #[error("INS {ins:02X} answered {actual_len} bytes, expected {expected_len}")]
    ResponseLength {
        /// Instruction of the command.
        ins: u8,
        /// Bytes expected.
        expected_len: usize,
        /// Bytes received.
        actual_len: usize,
    },
    /// The authenticator (HSM or PSAM) could not produce a cryptogram.
    #[error(transparent)]
    Authenticator(#[from] AuthenticatorError),
    /// Transport failure or another status word.
    #[error(transparent)]
    Card(#[from] CardError),
}

/// Why an [`ExternalAuthenticator`] could not produce a cryptogram. Messages must not carry key
/// material or card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticatorError {
    /// No authenticator is configured (no PSAM and no HSM): a 3.0 card's EF06 cannot be read
    /// (the unified interface's −2201 case).
    #[error("no PSAM or HSM is available for external authentication")]
    Unavailable,
    /// The PSAM/HSM failed; the message is for operators.
    #[error("external authenticator failed: {0}")]
    Failed(String),
}

/// Computes the EXTERNAL AUTHENTICATE cryptogram for a card's challenge. The terminal agent
/// backs it with the HSM (`SM4_ECB(K_EXT, R || 00*8)`, K_EXT diversified from the last 8 bytes
/// of the 卡识别码: docs/ssc-auth-model.md, model).
pub trait ExternalAuthenticator {
    /// The 16-byte cryptogram for the 8-byte `challenge` of the card whose 卡识别码 (EF05 tag 01)
    /// is `card_id`.
    ///
    /// Errors: [`AuthenticatorError`].
    fn external_auth_cryptogram(
        &mut self,
        card_id: &[u8; 16],
        challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<[u8; AUTH_BLOCK_LEN], AuthenticatorError>;
}

impl<F> ExternalAuthenticator for F
where
    F: FnMut(&[u8; 16], &[u8; CHALLENGE_LEN]) -> Result<[u8; AUTH_BLOCK_LEN], AuthenticatorError>,
{
    fn external_auth_cryptogram(
        &mut self,
        card_id: &[u8; 16],
        challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<[u8; AUTH_BLOCK_LEN], AuthenticatorError> {
        self(card_id, challenge)
    }
}

/// An authenticator for terminals without PSAM or HSM: always [`AuthenticatorError::Unavailable`].
/// Enough for 1.00 and 2.00 cards, which need no external authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoExternalAuthentication;

impl ExternalAuthenticator for NoExternalAuthentication {
    fn external_auth_cryptogram(
        &mut self,
        _card_id: &[u8; 16],
        _challenge: &[u8; CHALLENGE_LEN],
    ) -> Result<[u8; AUTH_BLOCK_LEN], AuthenticatorError> {
        Err(AuthenticatorError::Unavailable)
    }
}

/// A cardholder PIN of 4..=12 decimal digits. `Debug` shows `Pin(****)`; the digits are
/// zeroized on drop.
#[derive(Clone)]
pub struct Pin(Zeroizing<Vec<u8>>);

impl Pin {
    /// From its decimal digits. Errors: [`AuthError::PinFormat`] (without the PIN).
    pub fn new(digits: &str) -> Result<Self, AuthError> {
        let bytes = digits.as_bytes();
        if !(PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&bytes.len())
            || !bytes.iter().all(u8::is_ascii_digit)
        {
            return Err(AuthError::PinFormat);
        }
        Ok(Self(Zeroizing::new(
            bytes.iter().map(|d| d - b'0').collect(),
        )))
    }

    /// Number of digits.
    pub fn len_digits(&self) -> usize {
        self.0.len()
    }

    /// The digits packed two per byte, the last byte padded with `F` when the count is odd
    /// (`123456` → `12 34 56`, `12345` → `12 34 5F`; ssc-card.md §4 `0020000003123456`).
    pub fn to_bcd(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.0.len().div_ceil(2)));
        for pair in self.0.chunks(2) {
            let high = pair[0];
            let low = pair.get(1).copied().unwrap_or(0x0F);
            out.push((high << 4) | low);
        }
        out
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(****)")
    }
}

/// The VERIFY command `00 20 00 00 Lc <PIN BCD>` (ssc-card.md §4).
pub fn verify_pin_command(pin: &Pin) -> Result<CommandApdu, AuthError> {
    let bcd = pin.to_bcd();
    CommandApdu::new(0x00, 0x20, 0x00, 0x00)
        .with_data(bcd.to_vec())
        .map_err(|e| AuthError::Card(CardError::Transport(e.into())))
}

/// Presents the PIN with VERIFY.
///
/// Errors: [`AuthError::PinWrong`] on `63CX`, [`AuthError::PinBlocked`] on `6983`,
/// [`AuthError::Card`] otherwise.
pub fn verify_pin<T: CardTransport>(session: &mut Session<T>, pin: &Pin) -> Result<(), AuthError> {
    let command = verify_pin_command(pin)?;
    let response = session.exchange(&command).map_err(CardError::from)?;
    let sw = response.sw();
    if sw.is_success() {
        return Ok(());
    }
    if let Some(tries_left) = sw.tries_left() {
        return Err(AuthError::PinWrong { tries_left });
    }
    if sw == StatusWord::AUTH_METHOD_BLOCKED {
        return Err(AuthError::PinBlocked);
    }
    Err(CardError::Status { ins: 0x20, sw }.into())
}

/// GET CHALLENGE `00 84 00 00 08`: the card's 8-byte random, single use.
///
/// Errors: [`AuthError::ResponseLength`], [`AuthError::Card`].
pub fn get_challenge<T: CardTransport>(
    session: &mut Session<T>,
) -> Result<[u8; CHALLENGE_LEN], AuthError> {
    let command = with_ne(CommandApdu::new(0x00, 0x84, 0x00, 0x00), CHALLENGE_LEN)?;
    let data = session.exchange_ok(&command)?;
    fixed(0x84, &data)
}

/// INTERNAL AUTHENTICATE `00 88 00 00 10 <过程因子 (8) || terminal random (8)>`: the card's
/// 16-byte answer, which the terminal has the HSM recompute and compare (the card proves it is
/// genuine). Model: docs/ssc-auth-model.md.
///
/// Errors: [`AuthError::ResponseLength`], [`AuthError::Card`].
pub fn internal_authenticate<T: CardTransport>(
    session: &mut Session<T>,
    process_factor: &[u8; 8],
    terminal_random: &[u8; 8],
) -> Result<[u8; AUTH_BLOCK_LEN], AuthError> {
    let mut data = Vec::with_capacity(AUTH_BLOCK_LEN);
    data.extend_from_slice(process_factor);
    data.extend_from_slice(terminal_random);
    let command = CommandApdu::new(0x00, 0x88, 0x00, 0x00)
        .with_data(data)
        .map_err(|e| AuthError::Card(CardError::Transport(e.into())))?;
    let command = with_ne(command, AUTH_BLOCK_LEN)?;
    let answer = session.exchange_ok(&command)?;
    fixed(0x88, &answer)
}

/// EXTERNAL AUTHENTICATE `00 82 00 <key_id> 10 <cryptogram>` (3.0 card; key `0A` = RKSSSE).
///
/// Errors: [`AuthError::CryptogramWrong`] on `63CX`, [`AuthError::KeyBlocked`] on `6983`,
/// [`AuthError::NoChallenge`] on `6985`, [`AuthError::Card`] otherwise.
pub fn external_authenticate<T: CardTransport>(
    session: &mut Session<T>,
    key_id: u8,
    cryptogram: &[u8; AUTH_BLOCK_LEN],
) -> Result<(), AuthError> {
    let command = CommandApdu::new(0x00, 0x82, 0x00, key_id)
        .with_data(cryptogram.to_vec())
        .map_err(|e| AuthError::Card(CardError::Transport(e.into())))?;
    let sw = session.exchange(&command).map_err(CardError::from)?.sw();
    match sw {
        sw if sw.is_success() => Ok(()),
        sw if sw.tries_left().is_some() => Err(AuthError::CryptogramWrong {
            tries_left: sw.tries_left().unwrap_or(0),
        }),
        StatusWord::AUTH_METHOD_BLOCKED => Err(AuthError::KeyBlocked),
        StatusWord::CONDITIONS_NOT_SATISFIED => Err(AuthError::NoChallenge),
        sw => Err(CardError::Status { ins: 0x82, sw }.into()),
    }
}

/// Authenticates the terminal to a 3.0 card: GET CHALLENGE, the cryptogram from
/// `authenticator`, then EXTERNAL AUTHENTICATE with RKSSSE (`0A`). SSSE must be selected.
///
/// Errors: as [`get_challenge`] and [`external_authenticate`], and
/// [`AuthError::Authenticator`].
pub fn authenticate_terminal<T: CardTransport>(
    session: &mut Session<T>,
    card_id: &[u8; 16],
    authenticator: &mut dyn ExternalAuthenticator,
) -> Result<(), AuthError> {
    let challenge = get_challenge(session)?;
    let cryptogram = Zeroizing::new(authenticator.external_auth_cryptogram(card_id, &challenge)?);
    external_authenticate(session, RKSSSE_KEY_ID, &cryptogram)
}

fn with_ne(command: CommandApdu, ne: usize) -> Result<CommandApdu, AuthError> {
    let ne = u32::try_from(ne).unwrap_or(u32::MAX);
    command
        .with_ne(ne)
        .map_err(|e| AuthError::Card(CardError::Transport(e.into())))
}

fn fixed<const N: usize>(ins: u8, data: &[u8]) -> Result<[u8; N], AuthError> {
    <[u8; N]>::try_from(data).map_err(|_| AuthError::ResponseLength {
        ins,
        expected_len: N,
        actual_len: data.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_packs_as_bcd_with_f_padding() {
        // ssc-card.md §4: PIN 123456 → VERIFY 0020000003123456.
        let pin = Pin::new("123456").unwrap();
        assert_eq!(
            verify_pin_command(&pin).unwrap().to_bytes(),
            hex::decode("0020000003123456").unwrap()
        );
        assert_eq!(
            Pin::new("12345").unwrap().to_bcd().as_slice(),
            &[0x12, 0x34, 0x5F]
        );
    }

    #[test]
    fn pin_length_and_digits_are_checked_without_echoing_it() {
        for bad in ["123", "1234567890123", "12a4", "", "１２３４"] {
            let err = Pin::new(bad).unwrap_err();
            assert_eq!(err, AuthError::PinFormat);
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad));
            }
        }
        assert!(Pin::new("1234").is_ok());
        assert!(Pin::new("123456789012").is_ok());
        assert_eq!(format!("{:?}", Pin::new("987654").unwrap()), "Pin(****)");
    }
}
