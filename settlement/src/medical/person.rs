//! Insured persons as the settlement core stores them (`persons` table): the record JSON plus
//! SHA-256 lookup keys for the certificate and card numbers, so neither is stored or indexed in
//! clear beside the record's own copy, and never logged (`Debug` masks them).
//!
//! Import (`Medical::import_person`) also opens the person's personal account 个人账户 in the
//! insured region's ledger and credits the opening balance from the region's personal-account
//! fund 310200, as one posting whose id derives from the psn_no (a re-import is idempotent).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fen::Fen;
use crate::ids::{AccountCode, Admdvs};

/// An insured person with one insurance (the fixtures and the CSV carry one insutype per person).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRecord {
    /// 人员编号 (the platform's person number).
    pub psn_no: String,
    /// 姓名.
    pub psn_name: String,
    /// 证件号码 (社会保障号码 / ID number).
    pub certno: String,
    /// 社保卡卡号, if known.
    pub card_no: Option<String>,
    /// 性别 1 male / 2 female.
    pub gend: String,
    /// 出生日期 `yyyy-MM-dd`.
    pub brdy: String,
    /// 310 / 390.
    pub insutype: String,
    /// 11 in service / 21 retired.
    pub psn_type: String,
    /// 参保地.
    pub insuplc_admdvs: String,
    /// 单位名称.
    pub emp_name: String,
}

impl fmt::Debug for PersonRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonRecord")
            .field("psn_no", &self.psn_no)
            .field("insutype", &self.insutype)
            .field("psn_type", &self.psn_type)
            .field("insuplc_admdvs", &self.insuplc_admdvs)
            .finish_non_exhaustive()
    }
}

/// SHA-256 lookup key of a certificate or card number (domain-separated).
pub(crate) fn lookup_key(kind: &str, number: &str) -> [u8; 32] {
    Sha256::digest(
        [
            b"nhsa-person-v1\0",
            kind.as_bytes(),
            b"\0",
            number.as_bytes(),
        ]
        .concat(),
    )
    .into()
}

/// The pseudonymous account code of a person's personal account: `P` + 31 hex digits of
/// SHA-256(psn_no) (AccountCode forbids clear personal references).
pub(crate) fn personal_account_code(psn_no: &str) -> Result<AccountCode, crate::ids::IdError> {
    let digest = Sha256::digest([b"nhsa-acct-v1\0", psn_no.as_bytes()].concat());
    AccountCode::parse(&format!("P{}", &hex::encode(digest)[..31]))
}

impl PersonRecord {
    /// The insured region. Errors: `IdError::Admdvs`.
    pub fn region(&self) -> Result<Admdvs, crate::ids::IdError> {
        Admdvs::parse(&self.insuplc_admdvs)
    }

    /// Age in whole years on `date` (`yyyy-MM-dd`), 0 if `brdy` is malformed.
    pub fn age_on(&self, date: &str) -> u32 {
        let parse = |text: &str| -> Option<(i64, i64, i64)> {
            Some((
                text.get(0..4)?.parse().ok()?,
                text.get(5..7)?.parse().ok()?,
                text.get(8..10)?.parse().ok()?,
            ))
        };
        match (parse(&self.brdy), parse(date)) {
            (Some((by, bm, bd)), Some((y, m, d))) => {
                let years = y - by - i64::from((m, d) < (bm, bd));
                u32::try_from(years.max(0)).unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// What an import adds: the record and its personal account's opening balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonImport {
    /// The person.
    pub record: PersonRecord,
    /// Opening balance of the personal account (0 for none).
    pub acct_opening: Fen,
}

impl From<&crate::refdata::Person> for PersonImport {
    /// A loaded reference-data person (`refdata::load_persons_csv`) as an import.
    fn from(person: &crate::refdata::Person) -> PersonImport {
        PersonImport {
            record: PersonRecord {
                psn_no: person.psn_no.clone(),
                psn_name: person.psn_name.expose().to_owned(),
                certno: person.certno.expose().to_owned(),
                card_no: Some(person.card_no.clone()).filter(|c| !c.is_empty()),
                gend: person.gend.to_string(),
                brdy: person.brdy_text(),
                insutype: person.insutype.code().to_owned(),
                psn_type: person.psn_type.code().to_owned(),
                insuplc_admdvs: person.insuplc_admdvs.to_string(),
                emp_name: String::new(),
            },
            acct_opening: person.acct_balance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(brdy: &str) -> PersonRecord {
        PersonRecord {
            psn_no: "P1".into(),
            psn_name: "张三".into(),
            certno: "110101199001011234".into(),
            card_no: None,
            gend: "1".into(),
            brdy: brdy.into(),
            insutype: "310".into(),
            psn_type: "11".into(),
            insuplc_admdvs: "110000".into(),
            emp_name: "x".into(),
        }
    }

    #[test]
    fn age_counts_whole_years() {
        assert_eq!(person("1990-06-15").age_on("2026-06-14"), 35);
        assert_eq!(person("1990-06-15").age_on("2026-06-15"), 36);
        assert_eq!(person("bad").age_on("2026-06-15"), 0);
    }

    #[test]
    fn debug_masks_personal_data() {
        let text = format!("{:?}", person("1990-06-15"));
        assert!(!text.contains("张三") && !text.contains("110101199001011234"));
    }

    #[test]
    fn account_code_is_valid_and_pseudonymous() {
        let code = personal_account_code("P1").unwrap();
        assert_eq!(code.as_str().len(), 32);
        assert!(!code.as_str().contains("P1P1"));
    }
}
