//! Reference data loaded from files, never compiled in (issue 5 "Reference data is loaded"):
//! insured persons (the 1101 person information: insurance type, person type, personal-account
//! opening balance, 参保地 division, 社保卡 卡号), designated institutions with their level, and a
//! deterministic generator of a synthetic population for the benchmark.
//!
//! Personal data (社会保障号码 `certno`, 姓名 `psn_name`) sits in [`Masked`]; error messages name rows
//! and fields, never values.

mod generate;
mod institution;
mod mask;
mod person;

pub use generate::{generate_persons, write_persons_csv};
pub use institution::{FIXMEDINS_CODE_LEN, Institution, InstitutionKind, load_institutions};
pub use mask::Masked;
pub use person::{
    CERTNO_LEN, PERSONS_MAX, PSN_NO_LEN_MAX, Person, certno_check_digit, load_persons_csv,
};

/// Why a reference data file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefdataError {
    /// The file could not be read or written.
    #[error("reference data file {path}: {reason}")]
    Io {
        /// Path as given.
        path: String,
        /// The I/O error text.
        reason: String,
    },
    /// A row is malformed; the reason names the field, never its value.
    #[error("reference data file {path} row {row}: {reason}")]
    BadRow {
        /// Path as given.
        path: String,
        /// 1-based data row.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A key appears twice (`psn_no`, `certno`, `card_no`, `fixmedins_code`).
    #[error("reference data file {path} row {row}: {field} repeats an earlier row")]
    Duplicate {
        /// Path as given.
        path: String,
        /// 1-based data row.
        row: usize,
        /// The key field.
        field: &'static str,
    },
    /// The file has more rows than allowed.
    #[error("reference data file {path}: more than {rows_max} rows")]
    TooManyRows {
        /// Path as given.
        path: String,
        /// The limit.
        rows_max: usize,
    },
}
