//! The one rounding rule of the policy engine and the catalogue: an amount of fen times a ratio,
//! rounded half-up to the whole fen (0.5 fen goes up; all operands are non-negative here).
//!
//! Source: medical-settlement.md §5.2 (12028.48 × 0.84 = 10103.9232 → 10103.92, "round half-up to
//! 2 dp"). Every fund amount is rounded where the interface shows it; the personal share is the
//! remainder, so the identities of §1.4 hold exactly.

use rust_decimal::{Decimal, RoundingStrategy};

/// `amount_fen × ratio` rounded half-up to whole fen, or `None` on overflow or a negative input
/// (callers turn `None` into their own typed error).
pub(crate) fn mul_ratio_half_up(amount_fen: i64, ratio: Decimal) -> Option<i64> {
    if amount_fen < 0 || ratio.is_sign_negative() {
        return None;
    }
    let product = Decimal::from(amount_fen).checked_mul(ratio)?;
    let rounded = product.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).ok()
}

/// `amount_fen / ratio` rounded half-up to whole fen: the cost that a fund payment of `amount_fen`
/// at `ratio` stands for (used where an annual cap cuts a band). `None` for a zero ratio.
pub(crate) fn div_ratio_half_up(amount_fen: i64, ratio: Decimal) -> Option<i64> {
    if amount_fen < 0 || ratio <= Decimal::ZERO {
        return None;
    }
    let quotient = Decimal::from(amount_fen).checked_div(ratio)?;
    let rounded = quotient.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_as_in_the_interface_trace() {
        // medical-settlement.md §5.2: 12028.48 × 0.84 = 10103.9232 → 10103.92.
        assert_eq!(
            mul_ratio_half_up(1_202_848, Decimal::new(84, 2)),
            Some(1_010_392)
        );
        // 0.5 fen goes up: 1 fen × 0.5 = 0.5 → 1 (hand arithmetic).
        assert_eq!(mul_ratio_half_up(1, Decimal::new(5, 1)), Some(1));
        // 3 fen × 0.5 = 1.5 → 2; 0.49 → 0.
        assert_eq!(mul_ratio_half_up(3, Decimal::new(5, 1)), Some(2));
        assert_eq!(mul_ratio_half_up(49, Decimal::new(1, 2)), Some(0));
        assert_eq!(mul_ratio_half_up(-1, Decimal::ONE), None);
        // 100 fen / 0.3 = 333.33 → 333.
        assert_eq!(div_ratio_half_up(100, Decimal::new(3, 1)), Some(333));
        assert_eq!(div_ratio_half_up(100, Decimal::ZERO), None);
    }
}
