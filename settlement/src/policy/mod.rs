//! The policy engine: a region's data-driven tables (deductible 起付线, segment ratios, annual caps,
//! second-tier funds 职工大额 / 居民大病) and the computation of one settlement's split into funds,
//! personal account and cash, as the 2206/2207/2303/2304 reply shows it.
//!
//! Sources: ../shared/reference/medical-settlement.md §1.4 (output fields and identities), §3
//! (cross-region: 就医地目录 + 参保地政策), §4 (parameters with grades), §5 (worked examples), and
//! policy-params.csv. Tables are loaded from `fixtures/policy/<admdvs>.toml`, never compiled in;
//! every figure there carries its grade (A/B/C) and source, and the engine's `setl_proc_info` trace
//! repeats the grade of each figure it used (C = unverified).
//!
//! Order of a settlement (§4.1): item split (from the classified lines) → annual accumulators →
//! deductible → segment ratios → basic-fund annual cap → second tier → personal share → personal
//! account (`acct_used_flag`) → cash. See [`compute_split`].

mod engine;
mod error;
pub(crate) mod round;
mod split;
mod table;
mod table_file;
mod types;

pub use engine::{SPLIT_LINES_MAX, compute_split, jingjinji_deemed_filed};
pub use error::PolicyError;
pub use split::{SetlDetail, Split};
pub use table::{
    DeductibleScope, Grade, Graded, POLICY_RULES_MAX, PolicySet, RegionPolicy, Rule, Segment,
    SegmentBasis, Tier, TierBasis,
};
pub use types::{
    AdmissionOrdinal, CrossRegion, HospLv, Insutype, PsnType, Setting, SettingAccumulators,
    SplitInput, YearAccumulators,
};
