//! Reading catalogue CSV files (`<admdvs>.csv`, `#` comments) into a [`Catalogue`].

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;

use super::{
    CATALOGUE_ENTRIES_MAX, Catalogue, CatalogueEntry, CatalogueError, ChrgitmLv, ListKind,
};
use crate::{Admdvs, Fen};

/// Longest `med_list_name` accepted, bytes.
const NAME_LEN_MAX: usize = 200;

#[derive(serde::Deserialize)]
struct Row {
    med_list_codg: String,
    med_list_name: String,
    list_type: String,
    chrgitm_lv: String,
    pric_uplmt_amt: String,
    selfpay_prop: String,
}

pub(super) fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
    let shown = path.display().to_string();
    let admdvs = path
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| Admdvs::parse(s).ok())
        .ok_or_else(|| CatalogueError::BadFileName {
            path: shown.clone(),
        })?;
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| CatalogueError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let mut entries = Vec::new();
    for (index, record) in reader.deserialize::<Row>().enumerate() {
        let row = index + 1;
        if row > CATALOGUE_ENTRIES_MAX {
            return Err(CatalogueError::TooManyEntries);
        }
        let bad = |reason: String| CatalogueError::BadRow {
            path: shown.clone(),
            row,
            reason,
        };
        let record = record.map_err(|e| bad(e.to_string()))?;
        entries.push(parse_row(record).map_err(bad)?);
    }
    from_entries(admdvs, entries, &shown)
}

fn parse_row(row: Row) -> Result<CatalogueEntry, String> {
    let list_type = ListKind::parse(&row.list_type).ok_or_else(|| {
        format!(
            "list_type {:?} is not drug/service/consumable",
            row.list_type
        )
    })?;
    let chrgitm_lv = ChrgitmLv::parse(&row.chrgitm_lv)
        .ok_or_else(|| format!("chrgitm_lv {:?} is not 01/02/03", row.chrgitm_lv))?;
    let pric_uplmt_amt = if row.pric_uplmt_amt.is_empty() {
        None
    } else {
        Some(
            row.pric_uplmt_amt
                .parse::<Fen>()
                .map_err(|e| format!("pric_uplmt_amt: {e}"))?,
        )
    };
    let selfpay_prop = if row.selfpay_prop.is_empty() {
        Decimal::ZERO
    } else {
        Decimal::from_str_exact(&row.selfpay_prop)
            .map_err(|_| "selfpay_prop is not a decimal number".to_owned())?
    };
    if row.med_list_name.len() > NAME_LEN_MAX {
        return Err(format!("med_list_name longer than {NAME_LEN_MAX} bytes"));
    }
    Ok(CatalogueEntry {
        med_list_codg: row.med_list_codg,
        med_list_name: row.med_list_name,
        list_type,
        chrgitm_lv,
        pric_uplmt_amt,
        selfpay_prop,
    })
}

fn check_entry(entry: &CatalogueEntry) -> Result<(), String> {
    if !entry.list_type.check_code(&entry.med_list_codg) {
        return Err(format!(
            "code {} is not in the national {:?} format",
            entry.med_list_codg, entry.list_type
        ));
    }
    if entry.selfpay_prop < Decimal::ZERO || entry.selfpay_prop > Decimal::ONE {
        return Err(format!(
            "selfpay_prop {} is outside 0..=1",
            entry.selfpay_prop
        ));
    }
    if entry.chrgitm_lv == ChrgitmLv::Class1 && !entry.selfpay_prop.is_zero() {
        return Err("a 甲类 (01) entry must have selfpay_prop 0".to_owned());
    }
    Ok(())
}

pub(super) fn from_entries(
    admdvs: Admdvs,
    entries: Vec<CatalogueEntry>,
    shown: &str,
) -> Result<Catalogue, CatalogueError> {
    if entries.len() > CATALOGUE_ENTRIES_MAX {
        return Err(CatalogueError::TooManyEntries);
    }
    let mut map = BTreeMap::new();
    for (index, entry) in entries.into_iter().enumerate() {
        check_entry(&entry).map_err(|reason| CatalogueError::BadRow {
            path: shown.to_owned(),
            row: index + 1,
            reason,
        })?;
        if map.contains_key(&entry.med_list_codg) {
            return Err(CatalogueError::DuplicateCode {
                admdvs,
                code: entry.med_list_codg,
            });
        }
        map.insert(entry.med_list_codg.clone(), entry);
    }
    Ok(Catalogue {
        admdvs,
        entries: map,
    })
}

pub(super) fn load_dir(dir: &Path) -> Result<super::CatalogueSet, CatalogueError> {
    let io = |e: std::io::Error| CatalogueError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut paths = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io)? {
        let path = item.map_err(io)?.path();
        if path.extension().is_some_and(|ext| ext == "csv") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut set = super::CatalogueSet::default();
    for path in paths {
        set.insert(load(&path)?);
    }
    Ok(set)
}
