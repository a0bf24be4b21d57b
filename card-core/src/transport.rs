//! The card seam: one trait that moves APDU bytes to a card and back, and the one place where the
//! T=0 transport rules (61XX → GET RESPONSE, 6CXX → resend with the exact Le) are applied.
//!
//! PC/SC readers (in `terminal-agent`) and the in-process virtual card both implement
//! [`CardTransport`]; everything above it (the SSSE and PBOC flows) talks to [`Session`].
//! Following 61XX/6CXX is bounded by [`TRANSPORT_FOLLOW_MAX`] so that a card that keeps answering
//! 61XX cannot hang a kiosk (anchors §1.2: "endless loop risk").

use zeroize::Zeroizing;

use crate::apdu::{ApduError, CommandApdu, ResponseApdu};
use crate::sw::StatusWord;

/// Most GET RESPONSE / resend steps followed for one command before giving up.
pub const TRANSPORT_FOLLOW_MAX: usize = 16;
/// Most response bytes gathered through chained GET RESPONSE for one command.
pub const TRANSPORT_RESPONSE_LEN_MAX: usize = 65_536 + 2;

/// Why an exchange with the card failed below the level of status words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No card in the reader, or it was removed mid-exchange.
    #[error("no card present, or the card was removed")]
    CardAbsent,
    /// The card was reset by another party; the session must start again.
    #[error("the card was reset; start the session again")]
    CardReset,
    /// The reader did not answer within its timeout. The command's effect is unknown.
    #[error("the reader did not answer within {timeout_ms} ms")]
    Timeout {
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// The reader or its driver failed; the message comes from the reader stack, never card data.
    #[error("reader failure: {0}")]
    Reader(String),
    /// The card's answer is not a response APDU.
    #[error(transparent)]
    Apdu(#[from] ApduError),
    /// The card kept asking for GET RESPONSE or a resend past [`TRANSPORT_FOLLOW_MAX`] steps, or
    /// returned more than [`TRANSPORT_RESPONSE_LEN_MAX`] bytes.
    #[error("the card kept chaining responses past the limit of {TRANSPORT_FOLLOW_MAX} steps")]
    ChainTooLong,
}

/// Moves one encoded command APDU to the card and returns the raw response (`data || SW1 SW2`).
///
/// Implementations: the PC/SC reader in `terminal-agent`, and
/// the in-process virtual card. An implementation does no APDU-level retry; that
/// belongs to [`Session`].
pub trait CardTransport {
    /// Sends `command` and returns the card's raw answer.
    ///
    /// Errors: [`TransportError`] for absent/reset cards, timeouts and reader failures.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

impl<T: CardTransport + ?Sized> CardTransport for Box<T> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

/// A [`CardTransport`] with the T=0 rules applied: it follows `61XX` with GET RESPONSE
/// (`00 C0 00 00 XX`) and concatenates the pieces, and on `6CXX` resends the same command with
/// `Le = XX`. Both are bounded by [`TRANSPORT_FOLLOW_MAX`].
#[derive(Debug)]
pub struct Session<T> {
    transport: T,
}

impl<T: CardTransport> Session<T> {
    /// Wraps a transport.
    pub fn new(transport: T) -> Self {
        Self { transport }
    }

    /// The wrapped transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// Sends `command` and returns the complete response, after GET RESPONSE chaining and 6CXX
    /// resends. The status word returned is the card's final one; a non-9000 status is not an
    /// error here (the caller decides what it means).
    ///
    /// Errors: [`TransportError`], including [`TransportError::ChainTooLong`].
    pub fn exchange(&mut self, command: &CommandApdu) -> Result<ResponseApdu, TransportError> {
        let mut data = Vec::new();
        // The encoded command may carry a PIN (VERIFY): zeroize every copy we make.
        let mut next = Zeroizing::new(command.to_bytes());
        let mut resent_for_le = false;
        for _ in 0..=TRANSPORT_FOLLOW_MAX {
            let raw = self.transport.transmit(&next)?;
            let response = ResponseApdu::parse(&raw)?;
            let sw = response.sw();
            if data.len() + response.data().len() > TRANSPORT_RESPONSE_LEN_MAX {
                return Err(TransportError::ChainTooLong);
            }
            data.extend_from_slice(response.data());
            if let Some(remaining) = sw.remaining_bytes() {
                next = Zeroizing::new(
                    CommandApdu::new(command.cla() & 0x03, 0xC0, 0, 0)
                        .with_ne(remaining)?
                        .to_bytes(),
                );
                continue;
            }
            if let Some(exact) = sw.exact_le() {
                // Resend the original command once with the exact Le; a second 6CXX for the same
                // command means the card is confused, and we hand that status to the caller.
                if !resent_for_le {
                    resent_for_le = true;
                    data.clear();
                    next = Zeroizing::new(command.clone().with_ne(exact)?.to_bytes());
                    continue;
                }
            }
            return Ok(ResponseApdu::new(data, sw));
        }
        Err(TransportError::ChainTooLong)
    }

    /// Like [`Self::exchange`] but a status other than `9000` becomes [`CardError::Status`].
    pub fn exchange_ok(&mut self, command: &CommandApdu) -> Result<Vec<u8>, CardError> {
        let response = self.exchange(command)?;
        if response.sw().is_success() {
            Ok(response.into_data())
        } else {
            Err(CardError::Status {
                ins: command.ins(),
                sw: response.sw(),
            })
        }
    }
}

/// A failed command: either the transport failed or the card answered with a non-9000 status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The exchange itself failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The card answered with a status other than 9000.
    #[error("card answered {sw} ({meaning}) to INS {ins:02X}", meaning = sw.meaning())]
    Status {
        /// Instruction of the command that failed.
        ins: u8,
        /// The card's status word.
        sw: StatusWord,
    },
}
