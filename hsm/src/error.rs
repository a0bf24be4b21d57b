//! The error type of the crypto constructions (primitives, KCV, EMV/PBOC, PIN, MAC, SM).
//!
//! Messages name the problem and the expected shape, never the value: no key, PIN, PIN block
//! or PAN digit ever reaches a message (STYLE.md 6). Key management wraps this type in its own.

/// A failed crypto construction. Variants carry lengths and format names, never secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key has a length the algorithm does not accept (bytes).
    #[error("invalid key length: {actual} bytes, expected {expected}")]
    InvalidKeyLength {
        /// Length received, in bytes.
        actual: usize,
        /// Accepted lengths, e.g. "16 or 24".
        expected: &'static str,
    },
    /// A hex string has an odd number of characters.
    #[error("hex string has an odd length ({len_chars} characters)")]
    OddLengthHex {
        /// Characters received.
        len_chars: usize,
    },
    /// A hex string contains a character outside 0-9, A-F, a-f.
    #[error("hex string contains a non-hex character at index {index}")]
    InvalidHex {
        /// Index of the first offending character.
        index: usize,
    },
    /// A PAN is not 12-19 decimal digits (the digits themselves are never reported).
    #[error("invalid PAN: {reason}")]
    InvalidPan {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// A PIN is not 4-12 decimal digits (the digits themselves are never reported).
    #[error("invalid PIN: {reason}")]
    InvalidPin {
        /// What is wrong with its shape.
        reason: &'static str,
    },
    /// A decrypted PIN block does not follow its format (control nibble, length or fill).
    #[error("invalid PIN block: {reason}")]
    InvalidPinBlock {
        /// Which rule of ISO 9564-1 the block breaks.
        reason: &'static str,
    },
    /// A format, algorithm or combination is not supported (e.g. format 1 to a PAN-bound format).
    #[error("unsupported: {what}")]
    UnsupportedFormat {
        /// What was asked for.
        what: &'static str,
    },
    /// Data has a length the operation does not accept (e.g. not a multiple of the block size).
    #[error("invalid data length: {actual} bytes, {expected}")]
    DataLength {
        /// Length received, in bytes.
        actual: usize,
        /// The rule, e.g. "a multiple of 8".
        expected: &'static str,
    },
    /// A parameter other than key, data, PAN or PIN is out of range (e.g. a decimalisation table).
    #[error("invalid parameter: {what}")]
    InvalidParameter {
        /// Which parameter and rule.
        what: &'static str,
    },
    /// A cryptogram, MAC, signature or PIN did not verify.
    #[error("verification failed")]
    VerificationFailed,
    /// A public or private key could not be decoded (SM2 / ECDSA), or key generation failed.
    #[error("invalid asymmetric key: {reason}")]
    InvalidAsymmetricKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The system random generator failed.
    #[error("random generator failure")]
    Random,
}

/// Result alias of the crypto constructions.
pub type Result<T> = core::result::Result<T, Error>;

/// Decodes a hex string (either case) into bytes, with errors that never echo the input.
///
/// Errors: [`Error::OddLengthHex`], [`Error::InvalidHex`] (index of the first bad character).
pub fn decode_hex(text: &str) -> Result<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return Err(Error::OddLengthHex {
            len_chars: text.len(),
        });
    }
    if let Some(index) = text.bytes().position(|b| !b.is_ascii_hexdigit()) {
        return Err(Error::InvalidHex { index });
    }
    hex::decode(text).map_err(|_| Error::InvalidHex { index: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_name_the_problem() {
        assert_eq!(decode_hex("abc"), Err(Error::OddLengthHex { len_chars: 3 }));
        assert_eq!(decode_hex("0g"), Err(Error::InvalidHex { index: 1 }));
        assert_eq!(decode_hex("0aFF"), Ok(vec![0x0a, 0xff]));
    }

    #[test]
    fn messages_carry_no_values() {
        let e = Error::InvalidKeyLength {
            actual: 7,
            expected: "16 or 24",
        };
        assert_eq!(
            e.to_string(),
            "invalid key length: 7 bytes, expected 16 or 24"
        );
    }
}
