//! Money at the edges: exact yuan text ↔ integer fen, never through a float.

use anyhow::{Result, bail};
use serde_json::Value;

/// Exact yuan text ("12.3", "12.34", "-0.05", "3150") to fen.
pub fn yuan_to_fen(text: &str) -> Result<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || whole.len() > 15
        || frac.len() > 2
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        bail!("not an amount in yuan: {text:?}");
    }
    let fen = whole.parse::<i64>()? * 100 + format!("{frac:0<2}").parse::<i64>()?;
    Ok(if negative { -fen } else { fen })
}

/// A JSON amount in yuan (string or number) to fen.
pub fn json_fen(value: &Value) -> Result<i64> {
    match value {
        Value::String(s) => yuan_to_fen(s),
        Value::Number(n) => yuan_to_fen(&n.to_string()),
        other => bail!("not an amount: {other}"),
    }
}

/// Fen to yuan text with two decimals.
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_text_converts_to_fen_exactly() {
        assert_eq!(yuan_to_fen("12.34").unwrap(), 1234);
        assert_eq!(yuan_to_fen("12.3").unwrap(), 1230);
        assert_eq!(yuan_to_fen("-0.05").unwrap(), -5);
        assert_eq!(yuan_to_fen("3150").unwrap(), 315_000);
        assert!(yuan_to_fen("1.234").is_err());
        assert!(yuan_to_fen("1e3").is_err());
        assert_eq!(fen_to_yuan(-5), "-0.05");
        assert_eq!(fen_to_yuan(315_000), "3150.00");
    }
}
