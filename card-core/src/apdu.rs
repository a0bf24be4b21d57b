//! ISO/IEC 7816-4 command and response APDUs (§5.1 "Command-response pairs").
//!
//! A command APDU is one of four cases: no data and no response (case 1), response only (2),
//! data only (3), data and response (4). Each of 2-4 has a short form (Lc and Le in one byte) and
//! an extended form (Lc in three bytes `00 hi lo`, Le in two or three bytes). We encode the short
//! form whenever the values fit, because many readers and cards refuse extended APDUs.
//!
//! Parsing never panics: every malformed byte string is an [`ApduError`]. The virtual card parses
//! what the reader sends, so this is the first line of defence against bad input.

use std::fmt;

use zeroize::Zeroizing;

use crate::sw::StatusWord;

/// Most data bytes in one command APDU: the extended Lc field is 16 bits (ISO 7816-4 §5.1).
pub const APDU_DATA_LEN_MAX: usize = 65_535;
/// Largest Ne (expected response length): extended Le `0000` means 65 536 (ISO 7816-4 §5.1).
pub const APDU_NE_MAX: u32 = 65_536;
/// Largest Ne that fits the short Le byte (`00` means 256).
pub const APDU_SHORT_NE_MAX: u32 = 256;
/// Largest Nc that fits the short Lc byte.
pub const APDU_SHORT_NC_MAX: usize = 255;

/// Why a byte string is not a valid APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApduError {
    /// A command APDU needs at least the 4 header bytes CLA INS P1 P2.
    #[error("command APDU of {len_bytes} bytes is shorter than its 4-byte header")]
    HeaderTruncated {
        /// Bytes received.
        len_bytes: usize,
    },
    /// The Lc field announces more (or fewer) data bytes than follow it.
    #[error("Lc announces {lc} data bytes but the body holds {body_len_bytes} bytes after it")]
    LcMismatch {
        /// Nc as encoded in Lc.
        lc: usize,
        /// Bytes left after the Lc field.
        body_len_bytes: usize,
    },
    /// An extended length field is cut short or has a zero Lc (`00 00 00` is not a valid Lc).
    #[error("malformed extended length field")]
    ExtendedLengthMalformed,
    /// Data longer than [`APDU_DATA_LEN_MAX`].
    #[error("command data of {len_bytes} bytes exceeds the {APDU_DATA_LEN_MAX}-byte maximum")]
    DataTooLong {
        /// Bytes of command data.
        len_bytes: usize,
    },
    /// Ne outside 1..=65536.
    #[error("expected response length Ne={ne} is outside 1..=65536")]
    NeOutOfRange {
        /// The rejected Ne.
        ne: u32,
    },
    /// A response APDU must end with the two status bytes SW1 SW2.
    #[error("response APDU of {len_bytes} bytes has no room for SW1-SW2")]
    ResponseTruncated {
        /// Bytes received.
        len_bytes: usize,
    },
}

/// A command APDU: header, optional data (Nc bytes) and optional Ne.
///
/// Invariant (checked by every constructor): `data.len() <= APDU_DATA_LEN_MAX` and
/// `ne` is `None` or in `1..=APDU_NE_MAX`. The data is zeroized on drop: a VERIFY carries the PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandApdu {
    cla: u8,
    ins: u8,
    p1: u8,
    p2: u8,
    data: Zeroizing<Vec<u8>>,
    ne: Option<u32>,
}

impl CommandApdu {
    /// A case 1 command (header only). Add data with [`Self::with_data`] and Ne with
    /// [`Self::with_ne`].
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Self {
            cla,
            ins,
            p1,
            p2,
            data: Zeroizing::new(Vec::new()),
            ne: None,
        }
    }

    /// Sets the command data. Errors: [`ApduError::DataTooLong`] past 65 535 bytes.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>) -> Result<Self, ApduError> {
        let data = data.into();
        if data.len() > APDU_DATA_LEN_MAX {
            return Err(ApduError::DataTooLong {
                len_bytes: data.len(),
            });
        }
        self.data = Zeroizing::new(data);
        Ok(self)
    }

    /// Sets Ne, the most response bytes expected (1..=65536; 256 is the short `Le=00`).
    /// Errors: [`ApduError::NeOutOfRange`].
    pub fn with_ne(mut self, ne: u32) -> Result<Self, ApduError> {
        if ne == 0 || ne > APDU_NE_MAX {
            return Err(ApduError::NeOutOfRange { ne });
        }
        self.ne = Some(ne);
        Ok(self)
    }

    /// Removes Ne (turns case 2/4 into case 1/3).
    pub fn without_ne(mut self) -> Self {
        self.ne = None;
        self
    }

    /// Class byte.
    pub fn cla(&self) -> u8 {
        self.cla
    }
    /// Instruction byte.
    pub fn ins(&self) -> u8 {
        self.ins
    }
    /// Parameter 1.
    pub fn p1(&self) -> u8 {
        self.p1
    }
    /// Parameter 2.
    pub fn p2(&self) -> u8 {
        self.p2
    }
    /// Command data (Nc bytes, possibly empty).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Ne: the most response data bytes expected, if any.
    pub fn ne(&self) -> Option<u32> {
        self.ne
    }

    /// ISO 7816-4 case: 1 (no data, no Ne), 2 (Ne only), 3 (data only), 4 (both).
    pub fn case(&self) -> u8 {
        match (self.data.is_empty(), self.ne.is_some()) {
            (true, false) => 1,
            (true, true) => 2,
            (false, false) => 3,
            (false, true) => 4,
        }
    }

    /// True when the encoding needs extended length fields (Nc > 255 or Ne > 256).
    pub fn is_extended(&self) -> bool {
        self.data.len() > APDU_SHORT_NC_MAX || self.ne.is_some_and(|ne| ne > APDU_SHORT_NE_MAX)
    }

    /// Encodes the APDU: short form when both Nc and Ne fit, extended form otherwise.
    /// The caller owns the copy of the data; wrap it in [`Zeroizing`] where it may hold a PIN.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 3 + self.data.len() + 3);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let extended = self.is_extended();
        let nc = self.data.len();
        if nc > 0 {
            if extended {
                out.push(0);
                out.extend_from_slice(&be16(nc));
            } else {
                out.push(low_byte(nc));
            }
            out.extend_from_slice(&self.data);
        }
        if let Some(ne) = self.ne {
            // Ne = 256 (short) and 65536 (extended) encode as all-zero Le.
            let ne = usize::try_from(ne).unwrap_or(usize::MAX);
            if extended {
                if nc == 0 {
                    out.push(0);
                }
                out.extend_from_slice(&be16(ne % 65_536));
            } else {
                out.push(low_byte(ne % 256));
            }
        }
        out
    }

    /// Parses an encoded command APDU (ISO 7816-4 §5.1, all seven encodings).
    ///
    /// Errors: [`ApduError::HeaderTruncated`], [`ApduError::LcMismatch`],
    /// [`ApduError::ExtendedLengthMalformed`].
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(ApduError::HeaderTruncated {
                len_bytes: bytes.len(),
            });
        };
        let header = Self::new(*cla, *ins, *p1, *p2);
        let (data, ne): (&[u8], Option<u32>) = match body {
            // Case 1.
            [] => (&[], None),
            // Case 2S: one Le byte, 00 means 256.
            [le] => (&[], Some(short_ne(*le))),
            // Extended: first body byte 00 and at least two more.
            [0, b1, b2, rest @ ..] => {
                let n = u16::from_be_bytes([*b1, *b2]);
                if rest.is_empty() {
                    // Case 2E: Le = b1 b2, 0000 means 65536.
                    (&[], Some(extended_ne(n)))
                } else {
                    // Case 3E/4E: Lc = b1 b2 (non-zero).
                    let nc = usize::from(n);
                    if nc == 0 {
                        return Err(ApduError::ExtendedLengthMalformed);
                    }
                    match rest.len().checked_sub(nc) {
                        Some(0) => (rest, None),
                        Some(2) => {
                            let (data, le) = rest.split_at(nc);
                            (data, Some(extended_ne(u16::from_be_bytes([le[0], le[1]]))))
                        }
                        _ => {
                            return Err(ApduError::LcMismatch {
                                lc: nc,
                                body_len_bytes: rest.len(),
                            });
                        }
                    }
                }
            }
            // Short Lc: 01..=FF (a zero here with fewer than 3 more bytes is malformed).
            [0, ..] => return Err(ApduError::ExtendedLengthMalformed),
            [lc, rest @ ..] => {
                let nc = usize::from(*lc);
                match rest.len().checked_sub(nc) {
                    Some(0) => (rest, None),
                    Some(1) => (&rest[..nc], Some(short_ne(rest[nc]))),
                    _ => {
                        return Err(ApduError::LcMismatch {
                            lc: nc,
                            body_len_bytes: rest.len(),
                        });
                    }
                }
            }
        };
        Ok(Self {
            data: Zeroizing::new(data.to_vec()),
            ne,
            ..header
        })
    }
}

fn short_ne(le: u8) -> u32 {
    if le == 0 { 256 } else { u32::from(le) }
}

fn extended_ne(le: u16) -> u32 {
    if le == 0 { 65_536 } else { u32::from(le) }
}

/// Big-endian two bytes of a value known to be below 65 536.
fn be16(n: usize) -> [u8; 2] {
    u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes()
}

fn low_byte(n: usize) -> u8 {
    u8::try_from(n & 0xFF).unwrap_or(0)
}

impl fmt::Debug for CommandApdu {
    /// Shows the header, Nc and Ne but never the data: it may hold a PIN or a key cryptogram.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CommandApdu({:02X} {:02X} {:02X} {:02X}, nc={}, ne={:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.ne
        )
    }
}

/// A response APDU: data followed by the status word SW1-SW2. The data is personal data more often
/// than not (names, ID numbers, PANs); callers that keep it decide how to protect it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseApdu {
    data: Vec<u8>,
    sw: StatusWord,
}

impl ResponseApdu {
    /// A response with the given data and status.
    pub fn new(data: impl Into<Vec<u8>>, sw: StatusWord) -> Self {
        Self {
            data: data.into(),
            sw,
        }
    }

    /// A response with no data.
    pub fn status(sw: StatusWord) -> Self {
        Self::new(Vec::new(), sw)
    }

    /// Splits `data || SW1 SW2`. The status word is always the last two bytes, even when the data
    /// begins with `61` (a frequent bug in readers: anchors §0.2).
    ///
    /// Errors: [`ApduError::ResponseTruncated`] below 2 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [data @ .., sw1, sw2] = bytes else {
            return Err(ApduError::ResponseTruncated {
                len_bytes: bytes.len(),
            });
        };
        Ok(Self {
            data: data.to_vec(),
            sw: StatusWord::from_bytes(*sw1, *sw2),
        })
    }

    /// Encodes `data || SW1 SW2`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }

    /// Response data (without SW1-SW2).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Takes the response data out.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The status word.
    pub fn sw(&self) -> StatusWord {
        self.sw
    }
}

impl fmt::Debug for ResponseApdu {
    /// Shows the length and status but never the data: it may hold personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResponseApdu(len={}, sw={})", self.data.len(), self.sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn select_ssse_is_case_3_short() {
        // The APDU every unified-API reader sends first (ssc-card.md §4).
        let bytes = h("00A404000F7378312E73682EC9E7BBE1B1A3D5CF");
        let apdu = CommandApdu::parse(&bytes).unwrap();
        assert_eq!(
            (apdu.cla(), apdu.ins(), apdu.p1(), apdu.p2()),
            (0, 0xA4, 4, 0)
        );
        assert_eq!(apdu.case(), 3);
        let (gbk, _, unmappable) = encoding_rs::GBK.encode("sx1.sh.社会保障");
        assert!(!unmappable);
        assert_eq!(apdu.data(), &gbk[..]);
        assert_eq!(apdu.to_bytes(), bytes);
    }

    #[test]
    fn read_record_is_case_2_short() {
        let apdu = CommandApdu::parse(&h("00B2080014")).unwrap();
        assert_eq!(apdu.case(), 2);
        assert_eq!(apdu.ne(), Some(0x14));
        let le00 = CommandApdu::parse(&h("00B2013400")).unwrap();
        assert_eq!(le00.ne(), Some(256));
        assert_eq!(le00.to_bytes(), h("00B2013400"));
    }

    #[test]
    fn extended_forms_follow_iso_7816_4() {
        // Case 2E, Le = 0000 means 65536.
        let c2e = CommandApdu::parse(&h("00B00000 000000")).unwrap();
        assert_eq!((c2e.case(), c2e.ne()), (2, Some(65_536)));
        assert_eq!(c2e.to_bytes(), h("00B00000000000"));
        // Case 4E: Lc 000101 (257 bytes) then Le 0000.
        let mut bytes = h("00DA0000 000101");
        bytes.extend(std::iter::repeat_n(0xAB, 257));
        bytes.extend(h("0000"));
        let c4e = CommandApdu::parse(&bytes).unwrap();
        assert_eq!(
            (c4e.case(), c4e.data().len(), c4e.ne()),
            (4, 257, Some(65_536))
        );
        assert_eq!(c4e.to_bytes(), bytes);
    }

    #[test]
    fn truncated_and_inconsistent_apdus_are_errors() {
        assert_eq!(
            CommandApdu::parse(&h("00A404")),
            Err(ApduError::HeaderTruncated { len_bytes: 3 })
        );
        assert!(matches!(
            CommandApdu::parse(&h("00A404000F7378")),
            Err(ApduError::LcMismatch { lc: 15, .. })
        ));
        assert_eq!(
            CommandApdu::parse(&h("00A40400 0000")),
            Err(ApduError::ExtendedLengthMalformed)
        );
        assert_eq!(
            ResponseApdu::parse(&h("90")),
            Err(ApduError::ResponseTruncated { len_bytes: 1 })
        );
    }

    #[test]
    fn response_status_is_the_last_two_bytes_even_if_data_starts_with_61() {
        let r = ResponseApdu::parse(&h("6110 9000")).unwrap();
        assert_eq!(r.data(), &[0x61, 0x10]);
        assert_eq!(r.sw(), StatusWord::SUCCESS);
    }

    #[test]
    fn debug_never_shows_data() {
        let verify = CommandApdu::new(0, 0x20, 0, 0)
            .with_data(h("123456"))
            .unwrap();
        assert!(!format!("{verify:?}").contains("123456"));
    }
}
