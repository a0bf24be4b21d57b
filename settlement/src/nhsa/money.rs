//! Money and decimals at the wire: the interface writes amounts as decimal(16,2) and HIS systems
//! send them as JSON numbers (`12.5`) or strings (`"12.50"`); both are accepted, read from the
//! literal text (never through a float), and more than 2 decimals, negatives, exponents and
//! non-numbers are refused. Replies write amounts as JSON numbers with exactly 2 decimals.
//!
//! Source: medical-settlement.md §1.4 ("all decimal 16,2").

use std::fmt;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::fen::Fen;

/// Longest numeric literal accepted, bytes.
const NUMBER_TEXT_LEN_MAX: usize = 40;

/// A number as sent (JSON number or string), its literal text kept for exact parsing.
#[derive(Clone, PartialEq, Eq)]
pub struct WireNumber(String);

impl WireNumber {
    /// The literal text (without quotes).
    pub fn text(&self) -> &str {
        &self.0
    }

    /// As a non-negative amount in fen. Errors: the `AmountError` text (not a number, more than 2
    /// decimals, negative, too large).
    pub fn to_fen(&self) -> Result<Fen, crate::fen::AmountError> {
        self.0.parse::<Fen>()
    }

    /// As a plain decimal (signed; exponents refused). `None` if not a plain decimal number.
    pub fn to_decimal(&self) -> Option<Decimal> {
        let digits = self.0.strip_prefix('-').unwrap_or(&self.0);
        let plain = !digits.is_empty()
            && !digits.starts_with('.')
            && !digits.ends_with('.')
            && digits.bytes().filter(|b| *b == b'.').count() <= 1
            && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if !plain {
            return None;
        }
        Decimal::from_str_exact(&self.0).ok()
    }
}

impl fmt::Debug for WireNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WireNumber({})", self.0)
    }
}

impl<'de> Deserialize<'de> for WireNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WireNumber, D::Error> {
        let raw: Box<RawValue> = Deserialize::deserialize(deserializer)?;
        let text = raw.get().trim();
        let literal = if text.starts_with('"') {
            serde_json::from_str::<String>(text).map_err(D::Error::custom)?
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            text.to_owned()
        } else {
            return Err(D::Error::custom("expected a number or a numeric string"));
        };
        if literal.is_empty() || literal.len() > NUMBER_TEXT_LEN_MAX {
            return Err(D::Error::custom("numeric text is empty or too long"));
        }
        Ok(WireNumber(literal))
    }
}

/// An amount in a reply: serialised as a JSON number with exactly two decimals (`12.30`), written
/// literally so no float ever touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Yuan(pub Fen);

impl Serialize for Yuan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Yuan {
    /// Reads what `Serialize` writes (and any amount `WireNumber::to_fen` accepts).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Yuan, D::Error> {
        let number = WireNumber::deserialize(deserializer)?;
        number.to_fen().map(Yuan).map_err(D::Error::custom)
    }
}

/// A signed amount in a reply (refund lines of 2204/2301 are negative), two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SignedYuan(pub i64);

impl Serialize for SignedYuan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(Decimal::new(self.0, 2).to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// A ratio in a reply (e.g. `selfpay_prop`, `pool_prop_selfpay`), written literally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ratio(pub Decimal);

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.0.normalize().to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<WireNumber, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_and_strings_are_read_literally() {
        assert_eq!(parse("12.34").unwrap().to_fen().unwrap().fen(), 1234);
        assert_eq!(parse("\"12.3\"").unwrap().to_fen().unwrap().fen(), 1230);
        assert_eq!(parse("7").unwrap().to_fen().unwrap().fen(), 700);
        // A float would read 0.1 + 0.2 style literals inexactly; the literal is kept.
        assert_eq!(parse("0.30").unwrap().to_fen().unwrap().fen(), 30);
    }

    #[test]
    fn sub_fen_negative_and_garbage_are_refused() {
        assert!(parse("12.345").unwrap().to_fen().is_err());
        assert!(parse("\"-1.00\"").unwrap().to_fen().is_err());
        assert!(parse("-1").unwrap().to_fen().is_err());
        assert!(parse("1e3").unwrap().to_fen().is_err());
        assert!(parse("\"abc\"").unwrap().to_fen().is_err());
        assert!(parse("true").is_err());
        assert!(parse("null").is_err());
    }

    #[test]
    fn yuan_serialises_with_two_decimals() {
        let text = serde_json::to_string(&Yuan(Fen::from_fen(1230).unwrap())).unwrap();
        assert_eq!(text, "12.30");
        assert_eq!(
            serde_json::to_string(&SignedYuan(-352_000)).unwrap(),
            "-3520.00"
        );
        assert_eq!(serde_json::to_string(&Yuan(Fen::ZERO)).unwrap(), "0.00");
    }

    proptest::proptest! {
        #[test]
        fn any_json_text_never_panics(text in "\\PC{0,40}") {
            if let Ok(number) = serde_json::from_str::<WireNumber>(&text) {
                let _ = number.to_fen();
                let _ = number.to_decimal();
            }
        }

        #[test]
        fn yuan_round_trips_through_the_wire(fen in 0i64..=Fen::MAX.fen()) {
            let text = serde_json::to_string(&Yuan(Fen::from_fen(fen).unwrap())).unwrap();
            let back: WireNumber = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(back.to_fen().unwrap().fen(), fen);
        }
    }
}
