//! A deterministic synthetic population for the benchmark: `generate_persons(count, seed)` gives
//! the same persons for the same arguments on every machine and crate version (SplitMix64, Steele
//! et al. 2014, written out here so no RNG crate's stream change can alter the data).
//!
//! Every generated person is made up: valid-format 社会保障号码 (check digit per GB 11643), made-up
//! names, divisions 110000/120000/130100, a mix of 310/390 and in-service/retired. Keys are unique
//! by construction: `certno` encodes the index (district, birth date, sequence), `psn_no` and
//! `card_no` carry the index.

use std::io::Write;
use std::path::Path;

use super::person::certno_check_digit;
use super::{Masked, Person, RefdataError};
use crate::policy::{Insutype, PsnType};
use crate::{Admdvs, Fen};

/// (district code for `certno`, 参保地 division, 卡号 letter).
const DISTRICTS: [(&str, u32, char); 8] = [
    ("110101", 110_000, 'B'),
    ("110105", 110_000, 'B'),
    ("110108", 110_000, 'B'),
    ("120101", 120_000, 'T'),
    ("120104", 120_000, 'T'),
    ("130102", 130_100, 'H'),
    ("130104", 130_100, 'H'),
    ("130105", 130_100, 'H'),
];
/// Birth dates span this many days from 1940-01-01 (to 1989-04-14).
const BIRTH_DAYS: u64 = 18_000;
const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
const GIVEN: [&str; 16] = [
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "军", "杰", "娟", "涛", "明", "超", "霞", "平",
];

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Civil date of `days` after 1970-01-01 (H. Hinnant's `civil_from_days`), for `days` ≥ −719468.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
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

/// The `index`-th person of the population seeded by `seed`. Unique keys for `index` below
/// 8 × 18 000 × 500 = 72 000 000.
fn person(index: u64, seed: u64) -> Option<Person> {
    let mut rng = SplitMix64(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    let district_index = usize::try_from(index % 8).ok()?;
    let (district, admdvs, letter) = *DISTRICTS.get(district_index)?;
    let birth_offset = (index / 8 + seed) % BIRTH_DAYS;
    let sequence = (index / (8 * BIRTH_DAYS)) % 500;
    // 1940-01-01 is day −10958 from 1970-01-01 (30 × 365 + 8 leap days).
    let (year, month, day) = civil_from_days(i64::try_from(birth_offset).ok()? - 10_958);
    let gend_male = rng.below(2) == 0;
    // 顺序码: odd for men, even for women (GB 11643).
    let order = sequence * 2 + u64::from(gend_male);
    let first17 = format!("{district}{year:04}{month:02}{day:02}{order:03}");
    let certno = format!("{first17}{}", certno_check_digit(&first17)?);
    let surname = SURNAMES.get(usize::try_from(rng.below(12)).ok()?)?;
    let given1 = GIVEN.get(usize::try_from(rng.below(16)).ok()?)?;
    let given2 = GIVEN.get(usize::try_from(rng.below(16)).ok()?)?;
    let age_2025 = 2025 - year;
    let insutype = if rng.below(10) < 6 {
        Insutype::Employee
    } else {
        Insutype::Resident
    };
    let psn_type = if insutype == Insutype::Employee && age_2025 >= 60 {
        PsnType::Retired
    } else {
        PsnType::InService
    };
    let acct_balance = match insutype {
        Insutype::Employee => Fen::from_fen(i64::try_from(rng.below(2_000_000)).ok()?).ok()?,
        Insutype::Resident => Fen::ZERO,
    };
    Some(Person {
        psn_no: format!("{admdvs:06}{index:014}"),
        certno: Masked::new(certno),
        psn_name: Masked::new(format!("{surname}{given1}{given2}")),
        gend: if gend_male { '1' } else { '2' },
        brdy: (
            u16::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        ),
        insutype,
        psn_type,
        insuplc_admdvs: Admdvs::from_code(admdvs).ok()?,
        card_no: format!("{letter}{:08}", index % 100_000_000),
        acct_balance,
        cvlserv_flag: insutype == Insutype::Employee && rng.below(20) == 0,
    })
}

/// `count` made-up persons, deterministic in (`count`, `seed`); at most 72 000 000 (key space).
pub fn generate_persons(count: u64, seed: u64) -> impl Iterator<Item = Person> {
    (0..count.min(72_000_000)).filter_map(move |index| person(index, seed))
}

/// Writes persons as the CSV `load_persons_csv` reads. Errors: `Io`.
pub fn write_persons_csv(
    path: &Path,
    persons: impl Iterator<Item = Person>,
) -> Result<u64, RefdataError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| RefdataError::Io {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "# Generated by settlement-refdata gen-persons: made-up persons, not real people.\n\
         psn_no,certno,psn_name,gend,brdy,insutype,psn_type,insuplc_admdvs,card_no,acct_balance,cvlserv_flag"
    )
    .map_err(io)?;
    let mut written = 0_u64;
    for p in persons {
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{}",
            p.psn_no,
            p.certno.expose(),
            p.psn_name.expose(),
            p.gend,
            p.brdy_text(),
            p.insutype.code(),
            p.psn_type.name(),
            p.insuplc_admdvs,
            p.card_no,
            p.acct_balance,
            u8::from(p.cvlserv_flag)
        )
        .map_err(io)?;
        written += 1;
    }
    out.flush().map_err(io)?;
    Ok(written)
}
