//! One region's catalogue of drugs, services and consumables (医保目录), loaded from a data file,
//! and the per-line classification the 2204/2301 reply carries (medical-settlement.md §1.5, §4.1).
//!
//! - Codes in the national format (`ListKind::check_code`): 西药 `X` + 22 (23 characters), 中成药
//!   `Z` + 19 (20), consumables `C` + 19 (20, or 27 with the 7-character serial), services 15 digits
//!   (e.g. `001101000010000`). Grade B (secondary descriptions of the NHSA code rules).
//! - Class `chrgitm_lv` 01 甲 / 02 乙 / 03 丙 (§1.5, grade A); price cap `pric_uplmt_amt` per unit;
//!   self-pay-first ratio `selfpay_prop` (先行自付, §4.1).
//! - Cross-region: the caller classifies with the TREATING region's catalogue (就医地目录, §3.1).
//!
//! File format (`Catalogue::load`): CSV with `#` comments, named `<admdvs>.csv`, columns
//! `med_list_codg,med_list_name,list_type,chrgitm_lv,pric_uplmt_amt,selfpay_prop`
//! (`list_type` drug/service/consumable; `pric_uplmt_amt` yuan or empty for no cap).

mod file;
mod line;

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;

use crate::{Admdvs, Fen};

pub use line::{ClassifiedLine, FEEDETL_SN_LEN_MAX, FeeLine, LineSign, parse_amount_text};

/// Most entries one catalogue file may hold (a real provincial catalogue has ~100 000 rows).
pub const CATALOGUE_ENTRIES_MAX: usize = 1_000_000;

/// Why a catalogue file or a fee line was refused. The messages name the line and field so the
/// service can put them in `err_msg` (infcode -1) as they are; they never carry personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// The catalogue file could not be read.
    #[error("catalogue file {path}: {reason}")]
    Io {
        /// File path as given.
        path: String,
        /// The I/O error text.
        reason: String,
    },
    /// A catalogue file row is malformed (bad code format, class, price or ratio).
    #[error("catalogue file {path} row {row}: {reason}")]
    BadRow {
        /// File path as given.
        path: String,
        /// 1-based data row number (after the header).
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file name is not `<6-digit admdvs>.csv`.
    #[error("catalogue file {path}: name must be <6-digit admdvs>.csv")]
    BadFileName {
        /// File path as given.
        path: String,
    },
    /// The same code appears twice in one catalogue.
    #[error("catalogue {admdvs}: code {code} listed twice")]
    DuplicateCode {
        /// Region of the catalogue.
        admdvs: Admdvs,
        /// The repeated code.
        code: String,
    },
    /// The catalogue has more than `CATALOGUE_ENTRIES_MAX` rows.
    #[error("catalogue has more than {CATALOGUE_ENTRIES_MAX} entries")]
    TooManyEntries,
    /// No catalogue was loaded for this region.
    #[error("no catalogue for region {0}")]
    UnknownRegion(Admdvs),
    /// A fee line names a code that is not in the treating region's catalogue.
    #[error("fee line {feedetl_sn}: code {code} is not in the catalogue of region {admdvs}")]
    UnknownCode {
        /// The line's `feedetl_sn`.
        feedetl_sn: String,
        /// The `med_list_codg` sent.
        code: String,
        /// The catalogue's region.
        admdvs: Admdvs,
    },
    /// A fee line's amount field is negative where it must not be, not a number, finer than a fen,
    /// or too large.
    #[error("fee line {feedetl_sn}: {field} {reason}")]
    BadAmount {
        /// The line's `feedetl_sn`.
        feedetl_sn: String,
        /// The field name (`pric`, `cnt`, `det_item_fee_sumamt`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `det_item_fee_sumamt` differs from `cnt × pric` rounded half-up to the fen.
    #[error(
        "fee line {feedetl_sn}: det_item_fee_sumamt {sent} differs from cnt × pric = {expected} (rounded half-up to the fen)"
    )]
    SumMismatch {
        /// The line's `feedetl_sn`.
        feedetl_sn: String,
        /// The amount sent, yuan text with sign.
        sent: String,
        /// `cnt × pric` rounded, yuan text with sign.
        expected: String,
    },
    /// `cnt` and `det_item_fee_sumamt` disagree in sign, a negative line lacks `init_feedetl_sn`,
    /// or a positive line carries one.
    #[error("fee line {feedetl_sn}: {reason}")]
    SignMismatch {
        /// The line's `feedetl_sn`.
        feedetl_sn: String,
        /// What is inconsistent.
        reason: &'static str,
    },
    /// `feedetl_sn` or `med_list_codg` is empty or too long.
    #[error("fee line field {field} is empty or longer than {len_max} bytes")]
    BadField {
        /// The field name.
        field: &'static str,
        /// The limit in bytes.
        len_max: usize,
    },
}

/// 收费项目等级 `chrgitm_lv` (medical-settlement.md §1.5, grade A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChrgitmLv {
    /// `01` 甲类: fully in scope.
    Class1,
    /// `02` 乙类: `selfpay_prop` paid first by the person (先行自付), the rest in scope.
    Class2,
    /// `03` 丙类: fully self-paid (`fulamt_ownpay_amt`).
    Class3,
}

impl ChrgitmLv {
    /// Parses the two-digit code `01`/`02`/`03`.
    pub fn parse(code: &str) -> Option<ChrgitmLv> {
        match code {
            "01" => Some(ChrgitmLv::Class1),
            "02" => Some(ChrgitmLv::Class2),
            "03" => Some(ChrgitmLv::Class3),
            _ => None,
        }
    }

    /// The interface's code: `"01"`, `"02"` or `"03"`.
    pub fn code(self) -> &'static str {
        match self {
            ChrgitmLv::Class1 => "01",
            ChrgitmLv::Class2 => "02",
            ChrgitmLv::Class3 => "03",
        }
    }
}

/// Which national list an entry belongs to (decides the code format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// 药品 (西药 `X…` 23 characters, 中成药 `Z…` 20 characters).
    Drug,
    /// 医疗服务项目 (15 digits).
    Service,
    /// 医用耗材 (`C…`, 20 or 27 characters).
    Consumable,
}

impl ListKind {
    /// Parses `drug`, `service` or `consumable`.
    pub fn parse(text: &str) -> Option<ListKind> {
        match text {
            "drug" => Some(ListKind::Drug),
            "service" => Some(ListKind::Service),
            "consumable" => Some(ListKind::Consumable),
            _ => None,
        }
    }

    /// Checks a `med_list_codg` against this list's national format (see the module doc; grade B).
    pub fn check_code(self, code: &str) -> bool {
        let upper_alnum = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        };
        match self {
            ListKind::Drug => {
                (code.len() == 23 && code.starts_with('X') && upper_alnum(code))
                    || (code.len() == 20 && code.starts_with('Z') && upper_alnum(code))
            }
            ListKind::Service => code.len() == 15 && code.bytes().all(|b| b.is_ascii_digit()),
            ListKind::Consumable => {
                (code.len() == 20 || code.len() == 27) && code.starts_with('C') && upper_alnum(code)
            }
        }
    }
}

/// One catalogue row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// National code `med_list_codg`.
    pub med_list_codg: String,
    /// Name (not personal data).
    pub med_list_name: String,
    /// Drug, service or consumable.
    pub list_type: ListKind,
    /// 甲/乙/丙.
    pub chrgitm_lv: ChrgitmLv,
    /// 限价 per unit, `None` = no cap.
    pub pric_uplmt_amt: Option<Fen>,
    /// 先行自付 ratio `0 ..= 1` (zero for 甲 and 丙; `1` means the whole line is self-paid, §1.5).
    pub selfpay_prop: Decimal,
}

/// One region's catalogue, looked up by `med_list_codg`.
#[derive(Debug, Clone)]
pub struct Catalogue {
    admdvs: Admdvs,
    entries: BTreeMap<String, CatalogueEntry>,
}

impl Catalogue {
    /// Loads `<admdvs>.csv` (format in the module doc). Errors: `Io`, `BadFileName`, `BadRow` (with
    /// the row number), `DuplicateCode`, `TooManyEntries`.
    pub fn load(path: &Path) -> Result<Catalogue, CatalogueError> {
        file::load(path)
    }

    /// Builds a catalogue from entries (tests, imports). Errors: `DuplicateCode`, `TooManyEntries`,
    /// `BadRow` for a code in the wrong format or a ratio outside `0..=1`.
    pub fn from_entries(
        admdvs: Admdvs,
        entries: Vec<CatalogueEntry>,
    ) -> Result<Catalogue, CatalogueError> {
        file::from_entries(admdvs, entries, "<memory>")
    }

    /// The region (就医地) this catalogue belongs to.
    pub fn admdvs(&self) -> Admdvs {
        self.admdvs
    }

    /// The entry for a code, if listed.
    pub fn get(&self, med_list_codg: &str) -> Option<&CatalogueEntry> {
        self.entries.get(med_list_codg)
    }

    /// All entries in code order.
    pub fn entries(&self) -> impl Iterator<Item = &CatalogueEntry> {
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the catalogue has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Classifies one fee line (medical-settlement.md §1.5, §4.1). Per line, on magnitudes:
    /// 1. `det_item_fee_sumamt` must equal `|cnt| × pric` rounded half-up to the fen, else
    ///    `SumMismatch`;
    /// 2. 丙类, or `selfpay_prop = 1`: the whole line is `fulamt_ownpay_amt`;
    /// 3. a unit price above `pric_uplmt_amt`: `overlmt_amt = det − round(|cnt| × cap)`;
    /// 4. 乙类: `preselfpay_amt = round((det − overlmt) × selfpay_prop)`;
    /// 5. `inscp_scp_amt` is the remainder, so `det = fulamt + overlmt + preselfpay + inscp` exactly.
    ///
    /// A refund line (negative `cnt`/`det`, referencing `init_feedetl_sn`) is classified the same
    /// way on its magnitudes and keeps `sign = Refund`. Errors: `UnknownCode`, `SumMismatch`.
    pub fn classify(&self, line: &FeeLine) -> Result<ClassifiedLine, CatalogueError> {
        line::classify(self, line)
    }
}

/// The catalogues of several regions, keyed by region.
#[derive(Debug, Clone, Default)]
pub struct CatalogueSet {
    regions: BTreeMap<Admdvs, Catalogue>,
}

impl CatalogueSet {
    /// Loads every `*.csv` in `dir` (other files, e.g. README.md, are skipped). Errors: as
    /// `Catalogue::load`, or `Io` for the directory.
    pub fn load_dir(dir: &Path) -> Result<CatalogueSet, CatalogueError> {
        file::load_dir(dir)
    }

    /// Adds or replaces one region's catalogue.
    pub fn insert(&mut self, catalogue: Catalogue) {
        self.regions.insert(catalogue.admdvs(), catalogue);
    }

    /// The catalogue of the treating region. Errors: `UnknownRegion`.
    pub fn region(&self, admdvs: Admdvs) -> Result<&Catalogue, CatalogueError> {
        self.regions
            .get(&admdvs)
            .ok_or(CatalogueError::UnknownRegion(admdvs))
    }

    /// Regions loaded, in code order.
    pub fn regions(&self) -> impl Iterator<Item = Admdvs> + '_ {
        self.regions.keys().copied()
    }
}
