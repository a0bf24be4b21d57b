//! Status words SW1-SW2 (ISO/IEC 7816-4 §5.1.3, tables 5 and 6) as a type with their meaning.
//!
//! The unified reader interface returns a card's status word as a negative integer (−SW), e.g.
//! `6982` → −27010 (`../shared/reference/ssc-card.md` §4); [`StatusWord::reader_error_code`]
//! gives that number.

use std::fmt;

/// A status word. Unknown values are kept, never rejected: the card decides what it answers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(u16);

impl StatusWord {
    /// `9000` normal processing.
    pub const SUCCESS: Self = Self(0x9000);
    /// `6283` selected file invalidated (deactivated application).
    pub const FILE_INVALIDATED: Self = Self(0x6283);
    /// `6581` memory failure.
    pub const MEMORY_FAILURE: Self = Self(0x6581);
    /// `6700` wrong length (Lc or Le).
    pub const WRONG_LENGTH: Self = Self(0x6700);
    /// `6981` command incompatible with file structure.
    pub const INCOMPATIBLE_FILE_STRUCTURE: Self = Self(0x6981);
    /// `6982` security status not satisfied.
    pub const SECURITY_STATUS_NOT_SATISFIED: Self = Self(0x6982);
    /// `6983` authentication method blocked (PIN or key locked).
    pub const AUTH_METHOD_BLOCKED: Self = Self(0x6983);
    /// `6984` reference data not usable.
    pub const REFERENCE_DATA_NOT_USABLE: Self = Self(0x6984);
    /// `6985` conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: Self = Self(0x6985);
    /// `6986` command not allowed (no current EF).
    pub const COMMAND_NOT_ALLOWED: Self = Self(0x6986);
    /// `6988` incorrect secure-messaging data objects.
    pub const SM_DATA_INCORRECT: Self = Self(0x6988);
    /// `6A80` incorrect parameters in the data field.
    pub const WRONG_DATA: Self = Self(0x6A80);
    /// `6A81` function not supported.
    pub const FUNCTION_NOT_SUPPORTED: Self = Self(0x6A81);
    /// `6A82` file or application not found.
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    /// `6A83` record not found.
    pub const RECORD_NOT_FOUND: Self = Self(0x6A83);
    /// `6A86` incorrect parameters P1-P2.
    pub const INCORRECT_P1_P2: Self = Self(0x6A86);
    /// `6A88` referenced data (key) not found.
    pub const REFERENCED_DATA_NOT_FOUND: Self = Self(0x6A88);
    /// `6B00` wrong parameters P1-P2.
    pub const WRONG_P1_P2: Self = Self(0x6B00);
    /// `6D00` instruction code not supported.
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    /// `6E00` class not supported.
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);
    /// `6F00` no precise diagnosis.
    pub const NO_PRECISE_DIAGNOSIS: Self = Self(0x6F00);

    /// From the two status bytes.
    pub const fn from_bytes(sw1: u8, sw2: u8) -> Self {
        Self(u16::from_be_bytes([sw1, sw2]))
    }

    /// From the 16-bit value `SW1 << 8 | SW2`.
    pub const fn from_u16(sw: u16) -> Self {
        Self(sw)
    }

    /// `61XX`: XX more bytes are available with GET RESPONSE (`XX = 00` means 256).
    pub const fn bytes_available(sw2: u8) -> Self {
        Self::from_bytes(0x61, sw2)
    }

    /// `6CXX`: wrong Le; resend with Le = XX (`00` means 256).
    pub const fn wrong_le(sw2: u8) -> Self {
        Self::from_bytes(0x6C, sw2)
    }

    /// `63CX`: verification failed, X tries left (X in 0..=15).
    pub const fn verify_failed(tries_left: u8) -> Self {
        Self::from_bytes(0x63, 0xC0 | (tries_left & 0x0F))
    }

    /// The 16-bit value.
    pub const fn to_u16(self) -> u16 {
        self.0
    }

    /// `[SW1, SW2]`.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// SW1.
    pub const fn sw1(self) -> u8 {
        self.to_bytes()[0]
    }

    /// SW2.
    pub const fn sw2(self) -> u8 {
        self.to_bytes()[1]
    }

    /// True for `9000` only. (`61XX` is a transport matter handled by [`crate::transport`].)
    pub const fn is_success(self) -> bool {
        self.0 == 0x9000
    }

    /// Bytes waiting for GET RESPONSE if this is `61XX` (`6100` → 256).
    pub const fn remaining_bytes(self) -> Option<u32> {
        match self.to_bytes() {
            [0x61, 0] => Some(256),
            [0x61, n] => Some(n as u32),
            _ => None,
        }
    }

    /// The exact Le to resend with if this is `6CXX` (`6C00` → 256).
    pub const fn exact_le(self) -> Option<u32> {
        match self.to_bytes() {
            [0x6C, 0] => Some(256),
            [0x6C, n] => Some(n as u32),
            _ => None,
        }
    }

    /// PIN tries left if this is `63CX`.
    pub const fn tries_left(self) -> Option<u8> {
        match self.to_bytes() {
            [0x63, x] if x & 0xF0 == 0xC0 => Some(x & 0x0F),
            _ => None,
        }
    }

    /// The unified reader interface's error code for this status: −SW as an integer
    /// (`6982` → −27010, `63C0` → −25536; ssc-card.md §4).
    pub fn reader_error_code(self) -> i32 {
        -i32::from(self.0)
    }

    /// What the status means, in a sentence a cashier's support line can act on.
    pub const fn meaning(self) -> &'static str {
        match self.to_bytes() {
            [0x90, 0x00] => "normal processing",
            [0x61, _] => "more response bytes available (GET RESPONSE)",
            [0x62, 0x81] => "part of returned data may be corrupted",
            [0x62, 0x82] => "end of file or record reached before Le bytes",
            [0x62, 0x83] => "selected file or application deactivated",
            [0x62, _] => "warning, card state unchanged",
            [0x63, x] if x & 0xF0 == 0xC0 => "verification failed, some tries left",
            [0x63, _] => "warning, card state changed",
            [0x65, 0x81] => "memory failure",
            [0x67, 0x00] => "wrong length",
            [0x68, 0x81] => "logical channel not supported",
            [0x68, 0x82] => "secure messaging not supported",
            [0x69, 0x81] => "command incompatible with file structure",
            [0x69, 0x82] => "security status not satisfied",
            [0x69, 0x83] => "authentication method blocked",
            [0x69, 0x84] => "reference data not usable",
            [0x69, 0x85] => "conditions of use not satisfied",
            [0x69, 0x86] => "command not allowed (no current EF)",
            [0x69, 0x87] => "expected secure messaging data objects missing",
            [0x69, 0x88] => "incorrect secure messaging data objects",
            [0x6A, 0x80] => "incorrect parameters in the data field",
            [0x6A, 0x81] => "function not supported",
            [0x6A, 0x82] => "file or application not found",
            [0x6A, 0x83] => "record not found",
            [0x6A, 0x84] => "not enough memory space in the file",
            [0x6A, 0x86] => "incorrect parameters P1-P2",
            [0x6A, 0x88] => "referenced data or key not found",
            [0x6B, 0x00] => "wrong parameters P1-P2",
            [0x6C, _] => "wrong Le field; resend with the exact length",
            [0x6D, 0x00] => "instruction code not supported or invalid",
            [0x6E, 0x00] => "class not supported",
            [0x6F, 0x00] => "no precise diagnosis",
            [0x93, 0x02] => "invalid MAC",
            [0x94, 0x01] => "insufficient balance",
            _ => "unknown status word",
        }
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X} ({})", self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_error_codes_match_the_unified_interface() {
        // Values quoted in ssc-card.md §4, checked there arithmetically.
        assert_eq!(StatusWord::verify_failed(0).reader_error_code(), -25_536);
        assert_eq!(StatusWord::WRONG_LENGTH.reader_error_code(), -26_368);
        assert_eq!(
            StatusWord::SECURITY_STATUS_NOT_SATISFIED.reader_error_code(),
            -27_010
        );
        assert_eq!(StatusWord::FILE_NOT_FOUND.reader_error_code(), -27_266);
        assert_eq!(
            StatusWord::REFERENCED_DATA_NOT_FOUND.reader_error_code(),
            -27_272
        );
        assert_eq!(StatusWord::from_u16(0x9302).reader_error_code(), -37_634);
    }

    #[test]
    fn parametrised_words_decode_their_counts() {
        assert_eq!(StatusWord::from_u16(0x611E).remaining_bytes(), Some(30));
        assert_eq!(StatusWord::from_u16(0x6100).remaining_bytes(), Some(256));
        assert_eq!(StatusWord::from_u16(0x6C12).exact_le(), Some(18));
        assert_eq!(StatusWord::from_u16(0x63C2).tries_left(), Some(2));
        assert_eq!(StatusWord::from_u16(0x6310).tries_left(), None);
        assert_eq!(StatusWord::SUCCESS.remaining_bytes(), None);
    }

    #[test]
    fn unknown_status_words_are_kept() {
        let sw = StatusWord::from_bytes(0x6F, 0x42);
        assert_eq!(sw.to_u16(), 0x6F42);
        assert_eq!(sw.meaning(), "unknown status word");
        assert_eq!(sw.to_string(), "6F42");
    }
}
