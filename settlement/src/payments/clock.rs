//! Time for the ISO 8583 date/time fields and the business date, in China Standard Time
//! (UTC+8, no daylight saving), from the system clock. Civil dates from days since the epoch
//! by H. Hinnant's `civil_from_days` algorithm (public domain, chrono-compatible).

use std::time::{SystemTime, UNIX_EPOCH};

/// CST offset from UTC, seconds.
const CST_OFFSET_S: i64 = 8 * 3_600;

/// A moment, split into the fields the messages need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Milliseconds since the Unix epoch (UTC).
    pub unix_ms: i64,
    /// Year (CST).
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day 1..=31.
    pub day: u32,
    /// Hour 0..=23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
}

impl Moment {
    /// Now.
    #[must_use]
    pub fn now() -> Moment {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Moment::from_unix_ms(ms)
    }

    /// The moment `unix_ms` (UTC) seen in CST.
    #[must_use]
    pub fn from_unix_ms(unix_ms: i64) -> Moment {
        let secs = unix_ms.div_euclid(1_000) + CST_OFFSET_S;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // rem < 86_400, so the parts fit u32.
        let part = |v: i64| u32::try_from(v).unwrap_or(0);
        Moment {
            unix_ms,
            year,
            month,
            day,
            hour: part(rem / 3_600),
            minute: part(rem % 3_600 / 60),
            second: part(rem % 60),
        }
    }

    /// Field 7, `MMDDhhmmss`.
    #[must_use]
    pub fn transmission(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Field 12, `hhmmss`.
    #[must_use]
    pub fn local_time(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }

    /// Field 13, `MMDD`.
    #[must_use]
    pub fn local_date(&self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }

    /// Business date `YYYYMMDD`.
    #[must_use]
    pub fn business_date(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// EMV date `YYMMDD` as BCD (tag 9A).
    #[must_use]
    pub fn emv_date(&self) -> [u8; 3] {
        let bcd = |v: u32| u8::try_from((v / 10 % 10) << 4 | (v % 10)).unwrap_or(0);
        let yy = u32::try_from(self.year.rem_euclid(100)).unwrap_or(0);
        [bcd(yy), bcd(self.month), bcd(self.day)]
    }
}

/// (year, month, day) of `days` since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-29T16:30:05Z = 1709224205 s (`date -u -d @1709224205`), i.e. 2024-03-01
    /// 00:30:05 in CST.
    #[test]
    fn leap_day_rolls_over_in_cst() {
        let m = Moment::from_unix_ms(1_709_224_205_000);
        assert_eq!(m.business_date(), "20240301");
        assert_eq!(m.transmission(), "0301003005");
        assert_eq!(m.emv_date(), [0x24, 0x03, 0x01]);
    }
}
