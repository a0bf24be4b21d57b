//! The vpcd protocol (vsmartcard's virtual PCD driver for pcscd), as pure functions: what a
//! frame means and what the card answers. The socket loop itself lives in the `ssc-vcard` binary,
//! because card-core's library does no I/O.
//!
//! Protocol (card-hsm-anchors.md §2, vsmartcard `doc/api.txt` at a85862856ef0): TCP, the card
//! connects to vpcd on 127.0.0.1:35963. Every frame, both ways, is a 2-byte big-endian length and
//! that many bytes. A 1-byte payload is a control message: `00` power off, `01` power on, `02`
//! reset (no reply to these three), `04` get ATR (reply: the framed ATR). Any other length is a
//! command APDU; the reply is one framed response APDU.

use super::VirtualCard;

/// The TCP port of vpcd's first slot ("Virtual PCD 00 00").
pub const VPCD_PORT: u16 = 35_963;
/// Length of the frame header (big-endian payload length).
pub const VPCD_HEADER_LEN: usize = 2;
/// Largest payload a frame can carry.
pub const VPCD_PAYLOAD_LEN_MAX: usize = 0xFFFF;

/// What one frame from vpcd asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcdRequest<'a> {
    /// `00`: power the card off.
    PowerOff,
    /// `01`: power the card on.
    PowerOn,
    /// `02`: reset the card.
    Reset,
    /// `04`: send the ATR.
    GetAtr,
    /// A 1-byte control code this protocol version does not define (ignored, no reply).
    UnknownControl(u8),
    /// A command APDU (any payload whose length is not 1; may be empty or malformed).
    Apdu(&'a [u8]),
}

impl<'a> VpcdRequest<'a> {
    /// Classifies a frame's payload.
    pub fn from_payload(payload: &'a [u8]) -> Self {
        match payload {
            [0x00] => Self::PowerOff,
            [0x01] => Self::PowerOn,
            [0x02] => Self::Reset,
            [0x04] => Self::GetAtr,
            [other] => Self::UnknownControl(*other),
            apdu => Self::Apdu(apdu),
        }
    }
}

/// Why a payload cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VpcdError {
    /// The payload is longer than [`VPCD_PAYLOAD_LEN_MAX`].
    #[error("payload of {len_bytes} bytes does not fit a vpcd frame")]
    PayloadTooLong {
        /// Payload size.
        len_bytes: usize,
    },
}

/// `len (2 bytes, big-endian) || payload`.
///
/// Errors: [`VpcdError::PayloadTooLong`] past 65 535 bytes.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, VpcdError> {
    let len = u16::try_from(payload.len()).map_err(|_| VpcdError::PayloadTooLong {
        len_bytes: payload.len(),
    })?;
    let mut out = Vec::with_capacity(VPCD_HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Payload length announced by a frame header.
pub fn payload_len(header: [u8; VPCD_HEADER_LEN]) -> usize {
    usize::from(u16::from_be_bytes(header))
}

/// Applies one request to the card and returns the payload to send back, if any (power
/// on/off/reset reset the card's volatile state and get no reply).
pub fn handle(card: &mut VirtualCard, request: VpcdRequest<'_>) -> Option<Vec<u8>> {
    match request {
        VpcdRequest::PowerOff | VpcdRequest::PowerOn | VpcdRequest::Reset => {
            card.reset();
            None
        }
        VpcdRequest::GetAtr => Some(card.atr().to_vec()),
        VpcdRequest::UnknownControl(_) => None,
        VpcdRequest::Apdu(apdu) => Some(card.process(apdu)),
    }
}
