//! [`CardBackend`] over the `pcsc` crate (pcsc-lite's `pcscd`).
//!
//! - Connects in **shared** mode offering **T=0 or T=1** (an exclusive connect fails with
//!   SCARD_E_SHARING_VIOLATION when another program holds the reader); every job runs inside an
//!   exclusive `Transaction`, ended with `LeaveCard`.
//! - The card handle is disconnected with `LeaveCard`, never the crate's default `ResetCard` on
//!   drop (pcsc-rust #62), so other programs sharing the card are not disturbed.
//! - The receive buffer is `MAX_BUFFER_SIZE_EXTENDED` (pcsc-rust #24: `transmit` cannot say how
//!   much it needed).
//! - An answer without SW1-SW2 (vpcd's answer when the card vanished mid-command) →
//!   [`TransportError::CardAbsent`].
//! - SCARD_W_RESET_CARD → reconnect once (`LeaveCard`); SCARD_W_REMOVED_CARD and
//!   SCARD_E_NO_SMARTCARD → [`TransportError::CardAbsent`]; SCARD_E_NO_SERVICE, an invalid
//!   context or a communication error with pcscd (it restarted) → a new context, and the connect
//!   is tried once more (card-hsm-anchors.md §1.1).
//! - APDUs are traced at `trace` level as header, Lc/Le lengths and SW only: the data (PIN
//!   blocks, names, ID numbers) never reaches a log.

use std::ffi::CString;

use card_core::{CardTransport, TransportError};
use pcsc::{Card, Context, Disposition, Protocols, Scope, ShareMode};

use super::ReaderError;
use super::backend::{CardBackend, CardLink};
use super::watcher::service_lost;

/// Connects to pcscd lazily on the worker thread that owns it.
#[derive(Default)]
pub struct PcscBackend {
    context: Option<Context>,
    card: Option<Connected>,
    /// Set when a transaction could not begin: the handle is dropped before the next job.
    stale: bool,
}

/// A card handle that disconnects with `LeaveCard` when dropped (pcsc-rust #62).
struct Connected {
    reader: String,
    card: Option<Card>,
}

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some(card) = self.card.take()
            && let Err((_card, e)) = card.disconnect(Disposition::LeaveCard)
        {
            tracing::debug!(error = %e, reader = %self.reader, "disconnect failed");
        }
    }
}

impl PcscBackend {
    /// A backend that will establish its PC/SC context on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn context(&mut self) -> Result<&Context, ReaderError> {
        if self.context.is_none() {
            let context = Context::establish(Scope::User).map_err(service_error)?;
            self.context = Some(context);
        }
        self.context
            .as_ref()
            .ok_or_else(|| ReaderError::Service("no context".into()))
    }

    /// Connects to the card in `reader` through the current context (established if needed).
    fn connect(&mut self, reader: &std::ffi::CStr) -> Result<Card, pcsc::Error> {
        if self.context.is_none() {
            self.context = Some(Context::establish(Scope::User)?);
        }
        match self.context.as_ref() {
            Some(context) => {
                context.connect(reader, ShareMode::Shared, Protocols::T0 | Protocols::T1)
            }
            None => Err(pcsc::Error::NoService),
        }
    }

    /// Makes sure `self.card` is a live handle to the card in `reader`: reconnects after a reset
    /// and connects afresh after a removal (one retry).
    fn ensure_connected(&mut self, reader: &str) -> Result<(), ReaderError> {
        if self.stale || self.card.as_ref().is_some_and(|c| c.reader != reader) {
            self.card = None;
            self.stale = false;
        }
        for _ in 0..2 {
            if self.card.is_none() {
                let name = CString::new(reader)
                    .map_err(|_| ReaderError::UnknownReader(reader.to_owned()))?;
                let card = match self.connect(&name) {
                    Ok(card) => card,
                    // A context from a pcscd that has since restarted: a new one, once.
                    Err(e) if service_lost(e) => {
                        tracing::info!(reader, error = %e, "PC/SC context lost: establishing a new one");
                        self.context = None;
                        self.connect(&name).map_err(|e| {
                            if service_lost(e) {
                                self.context = None;
                            }
                            connect_error(reader, e)
                        })?
                    }
                    Err(e) => return Err(connect_error(reader, e)),
                };
                self.card = Some(Connected {
                    reader: reader.to_owned(),
                    card: Some(card),
                });
                return Ok(());
            }
            let Some(card) = self.card.as_mut().and_then(|c| c.card.as_mut()) else {
                self.card = None;
                continue;
            };
            match card.status2_owned() {
                Ok(_) => return Ok(()),
                Err(pcsc::Error::ResetCard) => {
                    tracing::info!(reader, "card reset by another program: reconnecting");
                    card.reconnect(
                        ShareMode::Shared,
                        Protocols::T0 | Protocols::T1,
                        Disposition::LeaveCard,
                    )
                    .map_err(|e| connect_error(reader, e))?;
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(reader, error = %e, "stale card handle: connecting again");
                    self.card = None;
                }
            }
        }
        Err(ReaderError::NoCard)
    }
}

impl CardBackend for PcscBackend {
    fn readers(&mut self) -> Result<Vec<String>, ReaderError> {
        let context = self.context()?;
        match context.list_readers_owned() {
            Ok(names) => Ok(names
                .iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => {
                self.context = None;
                Err(service_error(e))
            }
        }
    }

    fn begin(&mut self, reader: &str) -> Result<CardLink<'_>, ReaderError> {
        self.ensure_connected(reader)?;
        let Some(card) = self.card.as_mut().and_then(|c| c.card.as_mut()) else {
            return Err(ReaderError::NoCard);
        };
        let atr = card
            .status2_owned()
            .map(|s| s.atr().to_vec())
            .map_err(|e| ReaderError::Transport(map_error(e)));
        let atr = match atr {
            Ok(atr) => atr,
            Err(e) => {
                self.stale = true;
                return Err(e);
            }
        };
        match card.transaction() {
            Ok(transaction) => Ok(CardLink {
                transport: Box::new(PcscTransport {
                    transaction,
                    buffer: vec![0; pcsc::MAX_BUFFER_SIZE_EXTENDED],
                }),
                atr,
            }),
            Err(e) => {
                self.stale = true;
                Err(ReaderError::Transport(map_error(e)))
            }
        }
    }
}

/// Lists the readers with their card state, asking pcscd once (`SCardGetStatusChange` with
/// `UNAWARE` states answers at once).
///
/// Errors: [`ReaderError::Service`].
pub fn list_with_state() -> Result<Vec<super::ReaderInfo>, ReaderError> {
    let context = Context::establish(Scope::User).map_err(service_error)?;
    let names = match context.list_readers_owned() {
        Ok(names) => names,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(e) => return Err(service_error(e)),
    };
    let mut states: Vec<pcsc::ReaderState> = names
        .into_iter()
        .map(|n| pcsc::ReaderState::new(n, pcsc::State::UNAWARE))
        .collect();
    match context.get_status_change(std::time::Duration::from_millis(1_000), &mut states) {
        Ok(()) | Err(pcsc::Error::Timeout) => {}
        Err(e) => return Err(service_error(e)),
    }
    Ok(states
        .iter()
        .map(|s| {
            let present = s.event_state().contains(pcsc::State::PRESENT);
            super::ReaderInfo {
                name: s.name().to_string_lossy().into_owned(),
                card_present: present,
                atr: present.then(|| hex::encode_upper(s.atr())),
            }
        })
        .collect())
}

/// [`CardTransport`] over a PC/SC card inside an exclusive transaction.
pub struct PcscTransport<'tx> {
    transaction: pcsc::Transaction<'tx>,
    buffer: Vec<u8>,
}

impl CardTransport for PcscTransport<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        trace_command(command);
        let answer = match self.transaction.transmit(command, &mut self.buffer) {
            // No SW1-SW2 at all: the card went away during the command (vpcd answers an empty
            // R-APDU when the card's connection drops; pcscd notices the removal only at its
            // next poll).
            Ok(bytes) if bytes.len() < 2 => Err(TransportError::CardAbsent),
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(e) => Err(map_error(e)),
        };
        match &answer {
            Ok(bytes) => trace_response(bytes),
            Err(e) => tracing::debug!(error = %e, "transmit failed"),
        }
        // The receive buffer may hold personal data: clear what the card wrote.
        self.buffer.iter_mut().for_each(|b| *b = 0);
        answer
    }
}

/// Traces a command as `CLA INS P1 P2` and the body length: never the data.
pub(crate) fn trace_command(command: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        let header = hex::encode_upper(command.get(..4).unwrap_or(command));
        let body_len = command.len().saturating_sub(4);
        tracing::trace!(header = %header, body_len, "C-APDU");
    }
}

/// Traces a response as its data length and SW only.
pub(crate) fn trace_response(response: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        let split = response.len().saturating_sub(2);
        let sw = hex::encode_upper(response.get(split..).unwrap_or_default());
        tracing::trace!(data_len = split, sw = %sw, "R-APDU");
    }
}

/// Maps a pcsc error to the card seam's terms.
pub fn map_error(e: pcsc::Error) -> TransportError {
    match e {
        pcsc::Error::ResetCard => TransportError::CardReset,
        pcsc::Error::RemovedCard
        | pcsc::Error::NoSmartcard
        | pcsc::Error::UnpoweredCard
        | pcsc::Error::UnresponsiveCard => TransportError::CardAbsent,
        pcsc::Error::Timeout => TransportError::Timeout { timeout_ms: 0 },
        other => TransportError::Reader(other.to_string()),
    }
}

fn connect_error(reader: &str, e: pcsc::Error) -> ReaderError {
    match e {
        pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
            ReaderError::UnknownReader(reader.to_owned())
        }
        pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard => ReaderError::NoCard,
        pcsc::Error::NoService | pcsc::Error::ServiceStopped | pcsc::Error::NoReadersAvailable => {
            service_error(e)
        }
        other => ReaderError::Transport(map_error(other)),
    }
}

fn service_error(e: pcsc::Error) -> ReaderError {
    ReaderError::Service(format!("{e}; is pcscd running? (scripts/ensure-pcsc)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcsc_faults_map_to_the_card_seam() {
        // card-hsm-anchors.md §1.1: SCARD_W_RESET_CARD, SCARD_W_REMOVED_CARD, SCARD_E_NO_SMARTCARD.
        assert_eq!(map_error(pcsc::Error::ResetCard), TransportError::CardReset);
        assert_eq!(
            map_error(pcsc::Error::RemovedCard),
            TransportError::CardAbsent
        );
        assert_eq!(
            map_error(pcsc::Error::NoSmartcard),
            TransportError::CardAbsent
        );
        assert!(matches!(
            map_error(pcsc::Error::Timeout),
            TransportError::Timeout { .. }
        ));
        assert_eq!(
            connect_error("r", pcsc::Error::UnknownReader),
            ReaderError::UnknownReader("r".into())
        );
        assert_eq!(
            connect_error("r", pcsc::Error::NoSmartcard),
            ReaderError::NoCard
        );
    }
}
