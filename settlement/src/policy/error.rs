//! Errors of the policy tables and the engine. Messages are precise and free of personal data; the
//! service answers them as `infcode` -1 with the message as `err_msg`.

use crate::Admdvs;

/// Why a policy file was refused or a split could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy file or directory could not be read.
    #[error("policy file {path}: {reason}")]
    Io {
        /// Path as given.
        path: String,
        /// The I/O error text.
        reason: String,
    },
    /// A policy file is not valid TOML or misses a field.
    #[error("policy file {path}: {reason}")]
    Parse {
        /// Path as given.
        path: String,
        /// The parser's message.
        reason: String,
    },
    /// A policy file is well-formed but its table is wrong: a missing or unordered segment, a ratio
    /// outside 0..=1, a bad amount, overlapping rules.
    #[error("policy file {path}, rule {rule}: {reason}")]
    BadTable {
        /// Path as given.
        path: String,
        /// 1-based rule number in the file (0 for region-level fields).
        rule: usize,
        /// What is wrong.
        reason: String,
    },
    /// No policy is loaded for the insured region (参保地).
    #[error("no policy for insured region {0}")]
    UnknownRegion(Admdvs),
    /// `insutype` is not 310 (职工) or 390 (居民).
    #[error("insutype {0:?} is not 310 (职工) or 390 (居民)")]
    UnknownInsutype(String),
    /// The person type is not known.
    #[error("psn_type {0:?} is not in_service/retired (11/21)")]
    UnknownPsnType(String),
    /// The hospital level is not known.
    #[error("hosp_lv {0:?} is not community/level1/level2/level3/level3_provincial/pharmacy")]
    UnknownHospLv(String),
    /// The region's table has no rule for this combination.
    #[error(
        "policy of region {admdvs} has no rule for insutype {insutype}, {psn_type}, {setting}, {hosp_lv}, age {age_years}"
    )]
    NoRule {
        /// Insured region.
        admdvs: Admdvs,
        /// `310`/`390`.
        insutype: &'static str,
        /// `in_service`/`retired`.
        psn_type: &'static str,
        /// `outpatient`/`inpatient`.
        setting: &'static str,
        /// Hospital level name.
        hosp_lv: &'static str,
        /// Age in whole years.
        age_years: u32,
    },
    /// Refund lines exceed charges in one of the bill's sums.
    #[error("the bill's {field} is negative (refund lines exceed charges)")]
    NegativeBill {
        /// The sum that went negative.
        field: &'static str,
    },
    /// The bill has more lines than `SPLIT_LINES_MAX`.
    #[error("the bill has more than {0} lines")]
    TooManyLines(usize),
    /// An amount overflowed the interface's decimal(16,2).
    #[error("amount overflow while computing {0}")]
    Overflow(&'static str),
    /// A split does not satisfy one of the interface's identities (a bug, or a tampered split).
    #[error("identity {identity} does not hold: {detail}")]
    Identity {
        /// Which identity (e.g. `medfee_sumamt = fund_pay_sumamt + psn_part_amt`).
        identity: &'static str,
        /// The two sides, yuan.
        detail: String,
    },
    /// Reverting accumulators would take one below zero (the split was not applied to them).
    #[error("accumulator {0} would go below zero on revert")]
    AccumulatorUnderflow(&'static str),
}
