//! Ids the medical layer derives: the ledger `PostingId` of a message (deterministic from its
//! msgid, so a resend after a crash names the same posting), `setl_id`, `mdtrt_id`, and the
//! receiver's `inf_refmsgid`.
//!
//! Why deterministic: the posting id is the ledger's idempotency key. Deriving it from the msgid
//! means that even a resend that raced past the message lookup (another process, a crash between
//! lookup and commit) meets the ledger's own duplicate check instead of posting twice.

use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::ids::{Admdvs, PostingId};

/// The posting id of the ledger posting made by message `msgid`: UUIDv7 layout (time-ordered,
/// limits.md §1c) with the time taken from the msgid's `yyyyMMddHHmmss` part when it has one
/// (§1.1 layout: 12-char institution code, 14-digit time, 4-digit sequence; Beijing time), else 0;
/// the 74 caller bits are SHA-256("nhsa-posting-v1" | msgid).
pub fn posting_id_of(msgid: &str) -> PostingId {
    let unix_ms = msgid_time_ms(msgid).unwrap_or(0);
    let digest = Sha256::digest([b"nhsa-posting-v1\0".as_slice(), msgid.as_bytes()].concat());
    let mut bits = [0u8; 16];
    bits.copy_from_slice(&digest[..16]);
    PostingId::v7(unix_ms, u128::from_be_bytes(bits))
}

/// Unix milliseconds of the msgid's `yyyyMMddHHmmss` (chars 12..26, UTC+8), if it has that shape.
fn msgid_time_ms(msgid: &str) -> Option<u64> {
    let stamp = msgid.get(12..26)?;
    if !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - 8 * 3_600;
    u64::try_from(seconds).ok()?.checked_mul(1_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day, hour, minute, second)` in Beijing time (UTC+8) of Unix milliseconds.
pub(crate) fn beijing_time(unix_ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let seconds = unix_ms.div_euclid(1_000) + 8 * 3_600;
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3_600, rem % 3_600 / 60, rem % 60)
}

/// `yyyy-MM-dd HH:mm:ss` (Beijing time), the interface's time format.
pub(crate) fn format_time(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, s) = beijing_time(unix_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `yyyy-MM-dd` (Beijing time).
pub(crate) fn format_date(unix_ms: i64) -> String {
    let (y, mo, d, ..) = beijing_time(unix_ms);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// The year (Beijing time) of `unix_ms`: the year whose accumulators a settlement made then
/// counts against (起付线 and caps reset on 1 January, Asia/Shanghai).
pub(crate) fn business_year(unix_ms: i64) -> i64 {
    beijing_time(unix_ms).0
}

/// `yyyyMMddHHmmssSSS` (Beijing time), the envelope's `refmsg_time` / `respond_time`.
pub(crate) fn format_stamp_ms(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, s) = beijing_time(unix_ms);
    format!(
        "{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{:03}",
        unix_ms.rem_euclid(1_000)
    )
}

/// A 30-character id: `admdvs` (6) + 24 hex digits of SHA-256(`domain` | `msgid`). Used for
/// `setl_id` (domain "setl") and `mdtrt_id` (domain "mdtrt"): deterministic from the message
/// that created it, so a resend after a crash names the same record.
pub fn record_id(admdvs: Admdvs, domain: &str, msgid: &str) -> String {
    let digest = Sha256::digest([domain.as_bytes(), b"\0", msgid.as_bytes()].concat());
    format!("{admdvs}{}", hex::encode_upper(&digest[..12]))
}

static REFMSG_SERIAL: AtomicU64 = AtomicU64::new(0);

/// `inf_refmsgid`: receiver division (6) + yyyyMMddHHmmss (14) + a 10-digit serial (§1.1).
/// `000000` stands for the division when the envelope could not be read.
pub fn inf_refmsgid(admdvs: Option<Admdvs>, unix_ms: i64) -> String {
    let admdvs = admdvs.map_or_else(|| "000000".to_owned(), |a| a.to_string());
    let serial = REFMSG_SERIAL.fetch_add(1, Ordering::Relaxed) % 10_000_000_000;
    let stamp = format_stamp_ms(unix_ms);
    format!("{admdvs}{}{serial:010}", &stamp[..14])
}

/// Now, Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msgid_time_follows_the_documented_layout() {
        // medical-settlement.md §5.3: msgid H41130200746 20240611153851 9749.
        // 2024-06-11 15:38:51 +08:00 = 2024-06-11 07:38:51 UTC = 1718091531 s
        // (python3: datetime(2024,6,11,7,38,51,tzinfo=timezone.utc).timestamp()).
        assert_eq!(
            msgid_time_ms("H41130200746202406111538519749"),
            Some(1_718_091_531_000)
        );
        assert_eq!(msgid_time_ms("short"), None);
        assert_eq!(msgid_time_ms("H41130200746202413111538519749"), None);
    }

    #[test]
    fn posting_ids_are_deterministic_and_distinct() {
        let a = posting_id_of("H41130200746202406111538519749");
        assert_eq!(a, posting_id_of("H41130200746202406111538519749"));
        assert_ne!(a, posting_id_of("H41130200746202406111538519750"));
        // The high 48 bits are the msgid's time.
        assert_eq!(a.get() >> 80, 1_718_091_531_000);
    }

    #[test]
    fn beijing_time_round_trip() {
        assert_eq!(format_time(1_718_091_531_000), "2024-06-11 15:38:51");
        assert_eq!(format_stamp_ms(1_718_091_531_042), "20240611153851042");
        assert_eq!(format_date(0), "1970-01-01");
        // 2024-12-31 16:00:00 UTC is 2025-01-01 00:00:00 in Beijing: the new year's sums.
        assert_eq!(business_year(1_735_660_800_000), 2025);
        assert_eq!(business_year(1_735_660_799_999), 2024);
    }
}
