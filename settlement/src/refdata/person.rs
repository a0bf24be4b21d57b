//! Insured persons: the CSV import behind 1101 人员信息获取 (medical-settlement.md §1.2).
//!
//! Columns: `psn_no,certno,psn_name,gend,brdy,insutype,psn_type,insuplc_admdvs,card_no,
//! acct_balance,cvlserv_flag` (`#` comments allowed). `certno` is the 18-character 社会保障号码
//! (GB 11643, check digit ISO 7064 MOD 11-2); `brdy` `YYYY-MM-DD`; `gend` 1/2 (GB/T 2261.1);
//! `insutype` 310/390; `psn_type` in_service/retired; `acct_balance` yuan; `cvlserv_flag` 0/1.

use std::collections::HashSet;
use std::path::Path;

use super::{Masked, RefdataError};
use crate::policy::{Insutype, PsnType};
use crate::{Admdvs, Fen};

/// Most persons one file may hold.
pub const PERSONS_MAX: usize = 20_000_000;
/// Longest `psn_no`, bytes (the interface's field is 30).
pub const PSN_NO_LEN_MAX: usize = 30;
/// Length of a 社会保障号码 / 身份证号码.
pub const CERTNO_LEN: usize = 18;
/// Longest name, bytes.
const NAME_LEN_MAX: usize = 100;
/// Longest 社保卡 卡号, bytes (the card's 卡号 is 9 characters, ssc-card.md; slack for others).
const CARD_NO_LEN_MAX: usize = 20;

/// One insured person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// 人员编号 `psn_no` (1..=30 ASCII letters/digits).
    pub psn_no: String,
    /// 社会保障号码 / 身份证号码 `certno` (masked).
    pub certno: Masked,
    /// 姓名 `psn_name` (masked).
    pub psn_name: Masked,
    /// 性别 `gend`: `1` male, `2` female.
    pub gend: char,
    /// 出生日期 `brdy` as (year, month, day).
    pub brdy: (u16, u8, u8),
    /// 险种类型.
    pub insutype: Insutype,
    /// 在职 / 退休.
    pub psn_type: PsnType,
    /// 参保地医保区划.
    pub insuplc_admdvs: Admdvs,
    /// 社保卡 卡号 (the card's 卡号, e.g. `T00012345`).
    pub card_no: String,
    /// Opening personal-account balance.
    pub acct_balance: Fen,
    /// 公务员标志.
    pub cvlserv_flag: bool,
}

impl Person {
    /// Whole years of age on a date (a birthday on the date counts).
    pub fn age_on(&self, year: u16, month: u8, day: u8) -> u32 {
        let (by, bm, bd) = self.brdy;
        let years = u32::from(year.saturating_sub(by));
        if (month, day) < (bm, bd) {
            years.saturating_sub(1)
        } else {
            years
        }
    }

    /// `brdy` as `YYYY-MM-DD`.
    pub fn brdy_text(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.brdy.0, self.brdy.1, self.brdy.2)
    }
}

/// The ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643-1999), or `None` if they
/// are not 17 ASCII digits.
pub fn certno_check_digit(first17: &str) -> Option<char> {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0_u32;
    for (byte, weight) in first17.bytes().zip(WEIGHTS) {
        if !byte.is_ascii_digit() {
            return None;
        }
        sum += u32::from(byte - b'0') * weight;
    }
    usize::try_from(sum % 11)
        .ok()
        .and_then(|i| CHECK.get(i).copied())
}

#[derive(serde::Deserialize)]
struct Row {
    psn_no: String,
    certno: String,
    psn_name: String,
    gend: String,
    brdy: String,
    insutype: String,
    psn_type: String,
    insuplc_admdvs: String,
    card_no: String,
    acct_balance: String,
    cvlserv_flag: String,
}

/// Loads a persons CSV (format in the module doc). Errors: `Io`, `BadRow` (naming the field),
/// `Duplicate` (`psn_no`, `certno` or `card_no` seen before), `TooManyRows`.
pub fn load_persons_csv(path: &Path) -> Result<Vec<Person>, RefdataError> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| RefdataError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut persons = Vec::new();
    let mut keys: [HashSet<String>; 3] = Default::default();
    for (index, record) in reader.deserialize::<Row>().enumerate() {
        let row = index + 1;
        if row > PERSONS_MAX {
            return Err(RefdataError::TooManyRows {
                path: shown,
                rows_max: PERSONS_MAX,
            });
        }
        let record = record.map_err(|e| RefdataError::BadRow {
            path: shown.clone(),
            row,
            // csv errors can quote field values: keep only the kind of error.
            reason: csv_reason(&e),
        })?;
        let person = parse_row(record).map_err(|reason| RefdataError::BadRow {
            path: shown.clone(),
            row,
            reason: reason.to_owned(),
        })?;
        let fields = ["psn_no", "certno", "card_no"];
        let values = [
            person.psn_no.as_str(),
            person.certno.expose(),
            person.card_no.as_str(),
        ];
        for ((set, field), value) in keys.iter_mut().zip(fields).zip(values) {
            if !set.insert(value.to_owned()) {
                return Err(RefdataError::Duplicate {
                    path: shown,
                    row,
                    field,
                });
            }
        }
        persons.push(person);
    }
    Ok(persons)
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields".to_owned(),
        csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
        csv::ErrorKind::Deserialize { .. } => "a field is missing or malformed".to_owned(),
        _ => "unreadable row".to_owned(),
    }
}

fn parse_row(row: Row) -> Result<Person, &'static str> {
    if row.psn_no.is_empty()
        || row.psn_no.len() > PSN_NO_LEN_MAX
        || !row.psn_no.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("psn_no must be 1..=30 ASCII letters or digits");
    }
    check_certno(&row.certno)?;
    if row.psn_name.is_empty() || row.psn_name.len() > NAME_LEN_MAX {
        return Err("psn_name is empty or longer than 100 bytes");
    }
    let gend = match row.gend.as_str() {
        "1" => '1',
        "2" => '2',
        _ => return Err("gend must be 1 or 2"),
    };
    let brdy = parse_date(&row.brdy).ok_or("brdy must be a date YYYY-MM-DD")?;
    let insutype = Insutype::parse(&row.insutype).map_err(|_| "insutype must be 310 or 390")?;
    let psn_type =
        PsnType::parse(&row.psn_type).map_err(|_| "psn_type must be in_service or retired")?;
    let insuplc_admdvs =
        Admdvs::parse(&row.insuplc_admdvs).map_err(|_| "insuplc_admdvs must be 6 digits")?;
    if row.card_no.is_empty()
        || row.card_no.len() > CARD_NO_LEN_MAX
        || !row.card_no.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("card_no must be 1..=20 ASCII letters or digits");
    }
    let acct_balance = row
        .acct_balance
        .parse::<Fen>()
        .map_err(|_| "acct_balance must be a non-negative amount in yuan")?;
    let cvlserv_flag = match row.cvlserv_flag.as_str() {
        "0" => false,
        "1" => true,
        _ => return Err("cvlserv_flag must be 0 or 1"),
    };
    Ok(Person {
        psn_no: row.psn_no,
        certno: Masked::new(row.certno),
        psn_name: Masked::new(row.psn_name),
        gend,
        brdy,
        insutype,
        psn_type,
        insuplc_admdvs,
        card_no: row.card_no,
        acct_balance,
        cvlserv_flag,
    })
}

fn check_certno(certno: &str) -> Result<(), &'static str> {
    if certno.len() != CERTNO_LEN {
        return Err("certno must be 18 characters");
    }
    let (first17, last) = certno.split_at(17);
    let expected = certno_check_digit(first17).ok_or("certno must start with 17 digits")?;
    if !last.starts_with(expected) {
        return Err("certno check digit (ISO 7064 MOD 11-2) is wrong");
    }
    Ok(())
}

fn parse_date(text: &str) -> Option<(u16, u8, u8)> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let year: u16 = text.get(0..4)?.parse().ok()?;
    let month: u8 = text.get(5..7)?.parse().ok()?;
    let day: u8 = text.get(8..10)?.parse().ok()?;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (year >= 1900 && (1..=days).contains(&day)).then_some((year, month, day))
}
