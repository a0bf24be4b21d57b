//! Policy tables: one TOML file per insured region (`fixtures/policy/<admdvs>.toml`), each figure
//! with its grade and source, validated on load. Format (see the fixture files for full examples):
//!
//! ```toml
//! admdvs = "110000"
//! name = "北京市"
//! year = 2024
//! unfiled_ratio_cut = { value = "0.20", grade = "C", source = "..." }
//! pharmacy_pooled_fund = { value = false, grade = "C", source = "..." }
//! [[rule]]
//! insutype = "310"                       # 310 / 390
//! psn_type = ["in_service"]              # in_service / retired
//! setting = "inpatient"                  # outpatient / inpatient
//! hosp_lv = ["level3", "level3_provincial"]
//! age_min_years = 45                     # optional, inclusive
//! age_below_years = 70                   # optional, exclusive
//! fund_pay_type = "310100"
//! acct_allowed = true
//! deductible_scope = "per_admission"     # or "annual" (net of the year's deductible_used)
//! deductible_first = { yuan = "1300", grade = "B", source = "..." }
//! deductible_later = { yuan = "650", grade = "B", source = "..." }   # optional
//! segment_basis = "bill"                 # or "year" (cumulative in-scope cost)
//! annual_cap = { yuan = "100000", grade = "C", source = "..." }      # optional: none known
//! [[rule.segment]]                       # ascending; the last one has no upto_yuan
//! upto_yuan = "30000"
//! ratio = "0.85"
//! grade = "B"
//! source = "..."
//! [rule.tier]                            # optional second tier (330100 大额 / 390200 大病)
//! fund_pay_type = "330100"
//! basis = "beyond_basic_cap"             # or "personal_inscp_year"
//! deductible = { yuan = "0", grade = "C", source = "..." }
//! [[rule.tier.segment]]
//! ratio = "0.85"
//! grade = "C"
//! source = "..."
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::table_file::RawRegion;

use super::PolicyError;
use super::types::{HospLv, Insutype, PsnType, Setting};
use crate::{Admdvs, Fen, FundPayType};

/// Most rules one region file may hold.
pub const POLICY_RULES_MAX: usize = 1_000;
/// Most segments one rule or tier may hold.
pub(super) const SEGMENTS_MAX: usize = 16;
/// Largest policy file read, bytes.
const POLICY_FILE_LEN_MAX: u64 = 1 << 20;

/// Confidence grade of a figure (medical-settlement.md, "Confidence grades"): A seen in public
/// source text, B one secondary source or agreeing sources, C unverified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
pub enum Grade {
    /// Seen in public source text.
    A,
    /// One secondary source, or sources of unknown provenance that agree.
    B,
    /// Unverified (machine-generated dataset or recollection alone).
    C,
}

impl Grade {
    /// `"A"`, `"B"` or `"C"`.
    pub fn letter(self) -> &'static str {
        match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
        }
    }
}

/// A figure with its grade and the source text from the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graded<T> {
    /// The figure.
    pub value: T,
    /// Its grade.
    pub grade: Grade,
    /// Where it comes from (or "no source found").
    pub source: String,
}

/// How the deductible is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeductibleScope {
    /// Once a year: what the year already used (`deductible_used`) is netted.
    Annual,
    /// Each admission pays its own (first / later amount by `AdmissionOrdinal`).
    PerAdmission,
}

/// What the segment bands are measured on (medical-settlement.md §5.4 assumption C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentBasis {
    /// This bill's in-scope cost, from 0, the deductible inside the first band (§5.4 assumption).
    Bill,
    /// The year's cumulative in-scope cost of the setting (`inscp_sum` before + this bill).
    Year,
}

/// What a second tier pays on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierBasis {
    /// In-scope cost of this bill that the basic fund left unpaid because its annual cap was
    /// reached (北京 职工大额 "above basic cap", C).
    BeyondBasicCap,
    /// The year's in-scope personal share after the basic fund (`inscp − hifp`, cumulative), above
    /// the tier deductible; bands measured on the amount above the deductible (居民大病, C).
    PersonalInscpYear,
}

/// One band: ratio up to `upto` (exclusive upper bound of the basis), `None` = open-ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Upper bound in fen on the basis, `None` for the last band.
    pub upto: Option<Fen>,
    /// Fund ratio `0..=1` with grade and source.
    pub ratio: Graded<Decimal>,
}

/// A second-tier fund (职工大额 330100, 居民大病 390200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// The fund code shown in `setldetail`.
    pub fund_pay_type: FundPayType,
    /// What it pays on.
    pub basis: TierBasis,
    /// Its own deductible (0 for `BeyondBasicCap`).
    pub deductible: Graded<Fen>,
    /// Its bands.
    pub segments: Vec<Segment>,
    /// Annual cap on its payments, `None` = no cap known.
    pub annual_cap: Option<Graded<Fen>>,
}

/// One rule: the parameters for a set of (insutype, person types, setting, hospital levels, ages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 310 / 390.
    pub insutype: Insutype,
    /// Person types it applies to.
    pub psn_types: Vec<PsnType>,
    /// Setting.
    pub setting: Setting,
    /// Hospital levels it applies to.
    pub hosp_lvs: Vec<HospLv>,
    /// Minimum age, inclusive.
    pub age_min_years: Option<u32>,
    /// Age bound, exclusive.
    pub age_below_years: Option<u32>,
    /// The basic fund's code (310100 / 390100).
    pub fund_pay_type: FundPayType,
    /// Whether the personal account may pay (职工 yes, 居民 have none).
    pub acct_allowed: bool,
    /// Annual or per admission.
    pub deductible_scope: DeductibleScope,
    /// Deductible (first admission, or the annual one).
    pub deductible_first: Graded<Fen>,
    /// Deductible from the 2nd admission of the year (`None`: same as first, no source says else).
    pub deductible_later: Option<Graded<Fen>>,
    /// Basis of the bands.
    pub segment_basis: SegmentBasis,
    /// Bands, ascending, the last open-ended.
    pub segments: Vec<Segment>,
    /// Basic fund's annual cap on payments, `None` = no cap known.
    pub annual_cap: Option<Graded<Fen>>,
    /// Second tier, if the table has one.
    pub tier: Option<Tier>,
}

impl Rule {
    pub(super) fn matches(
        &self,
        insutype: Insutype,
        psn_type: PsnType,
        setting: Setting,
        hosp_lv: HospLv,
        age: u32,
    ) -> bool {
        self.insutype == insutype
            && self.setting == setting
            && self.psn_types.contains(&psn_type)
            && self.hosp_lvs.contains(&hosp_lv)
            && self.age_min_years.is_none_or(|min| age >= min)
            && self.age_below_years.is_none_or(|below| age < below)
    }

    pub(super) fn overlaps(&self, other: &Rule) -> bool {
        let ages_overlap = {
            let lo = self
                .age_min_years
                .unwrap_or(0)
                .max(other.age_min_years.unwrap_or(0));
            let hi = self
                .age_below_years
                .unwrap_or(u32::MAX)
                .min(other.age_below_years.unwrap_or(u32::MAX));
            lo < hi
        };
        self.insutype == other.insutype
            && self.setting == other.setting
            && self.psn_types.iter().any(|p| other.psn_types.contains(p))
            && self.hosp_lvs.iter().any(|h| other.hosp_lvs.contains(h))
            && ages_overlap
    }
}

/// One insured region's tables (参保地政策).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPolicy {
    /// The insured region.
    pub admdvs: Admdvs,
    /// Its name.
    pub name: String,
    /// Policy year.
    pub year: u32,
    /// Ratio points cut for an unfiled, non-emergency cross-region visit (§3.1, C).
    pub unfiled_ratio_cut: Graded<Decimal>,
    /// Whether the basic fund pays at pharmacies; if not, pharmacy bills are personal (account or
    /// cash) only.
    pub pharmacy_pooled_fund: Graded<bool>,
    /// The rules, in file order, no two overlapping.
    pub rules: Vec<Rule>,
}

impl RegionPolicy {
    /// Loads and validates one region file. Errors: `Io`, `Parse` (TOML or a missing field),
    /// `BadTable` (missing/unordered segment, ratio outside 0..=1, bad amount, overlapping rules).
    pub fn load(path: &Path) -> Result<RegionPolicy, PolicyError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| PolicyError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > POLICY_FILE_LEN_MAX {
            return Err(PolicyError::Io {
                path: shown,
                reason: format!("longer than {POLICY_FILE_LEN_MAX} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        RegionPolicy::from_toml(&text, &shown)
    }

    /// Parses and validates a region file's text; `shown` names it in errors.
    pub fn from_toml(text: &str, shown: &str) -> Result<RegionPolicy, PolicyError> {
        let raw: RawRegion = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: shown.to_owned(),
            reason: e.message().to_owned(),
        })?;
        raw.validate(shown)
    }

    /// The rule for a combination. Errors: `NoRule`.
    pub fn rule(
        &self,
        insutype: Insutype,
        psn_type: PsnType,
        setting: Setting,
        hosp_lv: HospLv,
        age_years: u32,
    ) -> Result<&Rule, PolicyError> {
        self.rules
            .iter()
            .find(|r| r.matches(insutype, psn_type, setting, hosp_lv, age_years))
            .ok_or(PolicyError::NoRule {
                admdvs: self.admdvs,
                insutype: insutype.code(),
                psn_type: psn_type.name(),
                setting: setting.name(),
                hosp_lv: hosp_lv.name(),
                age_years,
            })
    }
}

/// The tables of every loaded region.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    regions: BTreeMap<Admdvs, RegionPolicy>,
}

impl PolicySet {
    /// Loads every `*.toml` in `dir` (e.g. `fixtures/policy/`). Errors: as `RegionPolicy::load`;
    /// `BadTable` when two files name the same region.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
        let io = |e: std::io::Error| PolicyError::Io {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let mut paths = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io)? {
            let path = item.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut set = PolicySet::default();
        for path in paths {
            let policy = RegionPolicy::load(&path)?;
            if set.regions.contains_key(&policy.admdvs) {
                return Err(PolicyError::BadTable {
                    path: path.display().to_string(),
                    rule: 0,
                    reason: format!("region {} is defined twice", policy.admdvs),
                });
            }
            set.regions.insert(policy.admdvs, policy);
        }
        Ok(set)
    }

    /// Adds or replaces a region's tables.
    pub fn insert(&mut self, policy: RegionPolicy) {
        self.regions.insert(policy.admdvs, policy);
    }

    /// The insured region's tables. Errors: `UnknownRegion`.
    pub fn region(&self, admdvs: Admdvs) -> Result<&RegionPolicy, PolicyError> {
        self.regions
            .get(&admdvs)
            .ok_or(PolicyError::UnknownRegion(admdvs))
    }

    /// Regions loaded, in code order.
    pub fn regions(&self) -> impl Iterator<Item = Admdvs> + '_ {
        self.regions.keys().copied()
    }
}
