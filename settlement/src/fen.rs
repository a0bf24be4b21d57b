//! Exact money: `Fen`, a non-negative whole number of fen (分, 0.01 CNY).
//!
//! Amounts arrive at the edge as `rust_decimal::Decimal` yuan (the national interface writes every
//! money field as decimal(16,2): ../shared/reference/medical-settlement.md §1.4) and are stored as
//! integer fen (`BIGINT`). The only constructors check: at most 2 decimal places, not negative, at
//! most [`Fen::MAX`]. There is no float anywhere on this path.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// Why a money amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// The amount has more than 2 decimal places (finer than one fen), e.g. `12.345`.
    #[error("amount has more than 2 decimal places")]
    SubFen,
    /// The amount is negative; ledger amounts are magnitudes, the side (debit/credit) carries sign.
    #[error("amount is negative")]
    Negative,
    /// The amount is above `Fen::MAX` (decimal(16,2) of the national interface) or a sum overflowed.
    #[error("amount is above the maximum of 99999999999999.99 yuan")]
    Overflow,
    /// The text is not a plain decimal number (digits, at most one point, optional leading minus).
    #[error("amount text is not a plain decimal number")]
    Syntax,
}

/// A non-negative amount of money in fen (1 yuan = 100 fen), `0 ..= Fen::MAX`.
///
/// Constructed only through [`Fen::from_fen`], [`Fen::from_decimal`] or `str::parse`, all of which
/// check the range and the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(i64);

/// Longest amount text accepted by `FromStr` (bytes): 16 digits, a point, a sign, with slack for
/// trailing zeros such as `1.000`.
const AMOUNT_TEXT_LEN_MAX: usize = 32;

impl Fen {
    /// Zero fen.
    pub const ZERO: Fen = Fen(0);
    /// The largest amount: 9 999 999 999 999 999 fen = 99 999 999 999 999.99 yuan, the largest value
    /// of the interface's decimal(16,2) money fields (medical-settlement.md §1.4). Sums of up to
    /// ~900 such amounts still fit in `i64`; every sum is checked anyway.
    pub const MAX: Fen = Fen(9_999_999_999_999_999);

    /// Wraps a count of fen. Errors: `Negative` below 0, `Overflow` above `Fen::MAX`.
    pub fn from_fen(fen: i64) -> Result<Fen, AmountError> {
        if fen < 0 {
            Err(AmountError::Negative)
        } else if fen > Self::MAX.0 {
            Err(AmountError::Overflow)
        } else {
            Ok(Fen(fen))
        }
    }

    /// Converts yuan to fen exactly. Errors: `SubFen` if the value has a non-zero digit past the
    /// second decimal place (`12.340` is accepted, `12.345` is not), `Negative`, `Overflow`.
    pub fn from_decimal(yuan: Decimal) -> Result<Fen, AmountError> {
        if yuan.is_sign_negative() && !yuan.is_zero() {
            return Err(AmountError::Negative);
        }
        let normalized = yuan.normalize();
        if normalized.scale() > 2 {
            return Err(AmountError::SubFen);
        }
        let fen = normalized
            .checked_mul(Decimal::ONE_HUNDRED)
            .ok_or(AmountError::Overflow)?;
        // `fen` is integral here (scale <= 2 times 100); mantissa / 10^scale is exact.
        let fen = fen.normalize();
        let mantissa = fen.mantissa();
        let value = i64::try_from(mantissa).map_err(|_| AmountError::Overflow)?;
        let scale_factor = 10_i64
            .checked_pow(fen.scale())
            .ok_or(AmountError::Overflow)?;
        Fen::from_fen(
            value
                .checked_div(scale_factor)
                .ok_or(AmountError::Overflow)?,
        )
    }

    /// The amount in fen, `0 ..= Fen::MAX`.
    pub fn fen(self) -> i64 {
        self.0
    }

    /// The amount in yuan with scale 2, e.g. 1234 fen → `12.34`.
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 2)
    }

    /// `self + other`, or `Overflow` past `Fen::MAX`.
    pub fn checked_add(self, other: Fen) -> Result<Fen, AmountError> {
        let sum = self.0.checked_add(other.0).ok_or(AmountError::Overflow)?;
        Fen::from_fen(sum)
    }

    /// True for zero fen.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Fen {
    type Err = AmountError;

    /// Parses yuan text such as `"12.34"` (→ 1234 fen). No exponent, no grouping, no spaces.
    fn from_str(text: &str) -> Result<Fen, AmountError> {
        if text.is_empty() || text.len() > AMOUNT_TEXT_LEN_MAX {
            return Err(AmountError::Syntax);
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        let mut points = 0usize;
        for byte in digits.bytes() {
            match byte {
                b'0'..=b'9' => {}
                b'.' => points += 1,
                _ => return Err(AmountError::Syntax),
            }
        }
        if points > 1 || digits.starts_with('.') || digits.ends_with('.') {
            return Err(AmountError::Syntax);
        }
        let yuan = Decimal::from_str_exact(text).map_err(|_| AmountError::Overflow)?;
        Fen::from_decimal(yuan)
    }
}

impl fmt::Display for Fen {
    /// Yuan with exactly two decimals, e.g. `12.34`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are decimal arithmetic by hand: yuan × 100.
    #[test]
    fn parses_yuan_to_fen() {
        assert_eq!("12.34".parse::<Fen>().unwrap().fen(), 1234);
        assert_eq!("12.3".parse::<Fen>().unwrap().fen(), 1230);
        assert_eq!("12".parse::<Fen>().unwrap().fen(), 1200);
        assert_eq!("0.01".parse::<Fen>().unwrap().fen(), 1);
        assert_eq!("12.340".parse::<Fen>().unwrap().fen(), 1234);
        assert_eq!("0".parse::<Fen>().unwrap(), Fen::ZERO);
        assert_eq!("-0".parse::<Fen>().unwrap(), Fen::ZERO);
        // medical-settlement.md §5.1: hifp_pay 3106.54
        assert_eq!("3106.54".parse::<Fen>().unwrap().fen(), 310_654);
    }

    #[test]
    fn refuses_sub_fen() {
        assert_eq!("12.345".parse::<Fen>(), Err(AmountError::SubFen));
        assert_eq!("0.001".parse::<Fen>(), Err(AmountError::SubFen));
        assert_eq!(
            Fen::from_decimal(Decimal::new(101_039_232, 4)),
            Err(AmountError::SubFen)
        );
    }

    #[test]
    fn refuses_negative() {
        assert_eq!("-0.01".parse::<Fen>(), Err(AmountError::Negative));
        assert_eq!(Fen::from_fen(-1), Err(AmountError::Negative));
        assert_eq!(
            Fen::from_decimal(Decimal::new(-5, 0)),
            Err(AmountError::Negative)
        );
    }

    #[test]
    fn refuses_overflow() {
        // decimal(16,2) max is 99999999999999.99 yuan = 9999999999999999 fen.
        assert_eq!(
            "99999999999999.99".parse::<Fen>().unwrap().fen(),
            9_999_999_999_999_999
        );
        assert_eq!(
            "100000000000000.00".parse::<Fen>(),
            Err(AmountError::Overflow)
        );
        assert_eq!(Fen::from_fen(i64::MAX), Err(AmountError::Overflow));
        assert_eq!(Fen::MAX.checked_add(Fen(1)), Err(AmountError::Overflow));
        assert_eq!(
            "99999999999999999999999999999".parse::<Fen>(),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn refuses_bad_syntax() {
        for text in [
            "", "1e3", "1.2.3", ".5", "5.", "+1", " 1", "1,000", "¥1", "--1",
        ] {
            assert_eq!(text.parse::<Fen>(), Err(AmountError::Syntax), "{text:?}");
        }
    }

    #[test]
    fn displays_and_round_trips_decimal() {
        assert_eq!(Fen(1234).to_string(), "12.34");
        assert_eq!(Fen(5).to_string(), "0.05");
        assert_eq!(Fen(1234).to_decimal(), Decimal::new(1234, 2));
    }

    proptest::proptest! {
        #[test]
        fn text_round_trips(fen in 0..=Fen::MAX.0) {
            let amount = Fen::from_fen(fen).unwrap();
            proptest::prop_assert_eq!(amount.to_string().parse::<Fen>(), Ok(amount));
            proptest::prop_assert_eq!(Fen::from_decimal(amount.to_decimal()), Ok(amount));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = text.parse::<Fen>();
        }
    }
}
