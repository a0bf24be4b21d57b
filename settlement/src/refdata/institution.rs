//! Designated institutions (定点医药机构): code, name, division and level, loaded from CSV with
//! columns `fixmedins_code,fixmedins_name,admdvs,hosp_lv,kind` (`#` comments allowed).
//!
//! `fixmedins_code` is 12 characters, a letter then 11 digits (`H41130200746` in medical-settlement.md
//! §1.1/§5.3, grade A; `H` hospitals, `P` pharmacies). `hosp_lv` is a [`HospLv`] name; a pharmacy
//! has `hosp_lv = pharmacy`.

use std::collections::HashSet;
use std::path::Path;

use super::RefdataError;
use crate::Admdvs;
use crate::policy::HospLv;

/// Length of `fixmedins_code`.
pub const FIXMEDINS_CODE_LEN: usize = 12;
/// Most institutions one file may hold.
const INSTITUTIONS_MAX: usize = 1_000_000;
/// Longest name, bytes.
const NAME_LEN_MAX: usize = 200;

/// Hospital or pharmacy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstitutionKind {
    /// 定点医疗机构.
    Hospital,
    /// 定点零售药店.
    Pharmacy,
}

/// One designated institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    /// `fixmedins_code` (12 characters).
    pub fixmedins_code: String,
    /// `fixmedins_name`.
    pub fixmedins_name: String,
    /// The division it is registered in (becomes `mdtrtarea_admvs`, §2).
    pub admdvs: Admdvs,
    /// Level for the policy tables.
    pub hosp_lv: HospLv,
    /// Hospital or pharmacy.
    pub kind: InstitutionKind,
}

#[derive(serde::Deserialize)]
struct Row {
    fixmedins_code: String,
    fixmedins_name: String,
    admdvs: String,
    hosp_lv: String,
    kind: String,
}

/// Loads an institutions CSV. Errors: `Io`, `BadRow` (code format, unknown level or kind, a
/// pharmacy whose level is not `pharmacy` or the reverse), `Duplicate`, `TooManyRows`.
pub fn load_institutions(path: &Path) -> Result<Vec<Institution>, RefdataError> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| RefdataError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut out = Vec::new();
    let mut codes = HashSet::new();
    for (index, record) in reader.deserialize::<Row>().enumerate() {
        let row = index + 1;
        if row > INSTITUTIONS_MAX {
            return Err(RefdataError::TooManyRows {
                path: shown,
                rows_max: INSTITUTIONS_MAX,
            });
        }
        let bad = |reason: String| RefdataError::BadRow {
            path: shown.clone(),
            row,
            reason,
        };
        let record = record.map_err(|e| bad(e.to_string()))?;
        let institution = parse_row(record).map_err(|r| bad(r.to_owned()))?;
        if !codes.insert(institution.fixmedins_code.clone()) {
            return Err(RefdataError::Duplicate {
                path: shown,
                row,
                field: "fixmedins_code",
            });
        }
        out.push(institution);
    }
    Ok(out)
}

fn parse_row(row: Row) -> Result<Institution, &'static str> {
    let code = row.fixmedins_code.as_bytes();
    let code_ok = code.len() == FIXMEDINS_CODE_LEN
        && code.first().is_some_and(u8::is_ascii_uppercase)
        && code.iter().skip(1).all(u8::is_ascii_digit);
    if !code_ok {
        return Err("fixmedins_code must be a capital letter and 11 digits");
    }
    if row.fixmedins_name.is_empty() || row.fixmedins_name.len() > NAME_LEN_MAX {
        return Err("fixmedins_name is empty or longer than 200 bytes");
    }
    let admdvs = Admdvs::parse(&row.admdvs).map_err(|_| "admdvs must be 6 digits")?;
    let hosp_lv = HospLv::parse(&row.hosp_lv).map_err(|_| "hosp_lv is not a known level")?;
    let kind = match row.kind.as_str() {
        "hospital" => InstitutionKind::Hospital,
        "pharmacy" => InstitutionKind::Pharmacy,
        _ => return Err("kind must be hospital or pharmacy"),
    };
    if (kind == InstitutionKind::Pharmacy) != (hosp_lv == HospLv::Pharmacy) {
        return Err("a pharmacy has hosp_lv pharmacy, and only a pharmacy does");
    }
    Ok(Institution {
        fixmedins_code: row.fixmedins_code,
        fixmedins_name: row.fixmedins_name,
        admdvs,
        hosp_lv,
        kind,
    })
}
