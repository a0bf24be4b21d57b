//! The clearing core. For now: the double-entry LEDGER that the medical settlement (issue 5), the
//! policy engine and the HTTP service will build on.
//!
//! - Money is exact: [`Fen`] (integer fen) in storage, `rust_decimal::Decimal` yuan at the edge.
//! - Accounts per region (6-digit admdvs): funds by `fund_pay_type`, personal accounts (never below
//!   zero), institution receivables, patient cash, clearing toward other regions and banks.
//! - Postings are N legs, balanced, atomic and immutable; corrections are linked postings.
//! - Idempotent by a client-supplied time-ordered id; failures are remembered too.
//! - One group-commit writer per store: many postings per transaction, each hot balance row
//!   written once per batch, balance conditions checked inside the serialised write.
//! - SQLite (embedded default, WAL + synchronous=FULL) and PostgreSQL (production), one SQL path.
//!
//! Sources: ../shared/reference/anchors-switch.md (TigerBeetle, Mojaloop features and failure
//! modes), limits.md (commit ceilings), medical-settlement.md (fund codes, division codes).
//! **This crate is the only one that speaks SQL.**

mod account;
pub mod catalogue;
pub mod console;
pub mod directory;
mod error;
mod fen;
pub mod identity;
mod ids;
pub mod iso8583;
mod ledger;
pub mod medical;
pub mod nhsa;
pub mod partner;
pub mod payments;
mod plan;
pub mod policy;
mod posting;
mod records;
pub mod refdata;
pub mod region;
pub mod service;
mod store;
mod verify;
mod writer;

pub use account::{Account, AccountFlags, AccountKind, AccountSpec, AccountSpecError, Balance};
pub use error::{LedgerError, Rejection, Result};
pub use fen::{AmountError, Fen};
pub use ids::{
    ACCOUNT_CODE_LEN_MAX, AccountCode, AccountId, Admdvs, FundPayType, IdError, PostingId,
};
pub use ledger::{ENTRIES_PAGE_MAX, Ledger, LedgerOptions, SQLITE_FILE_NAME};
pub use posting::{Leg, Link, POSTING_LEGS_MAX, Posting, PostingError, Side};
pub use records::{AccountEntry, PostingRecord, Receipt};
pub use sqlx::postgres::PgConnectOptions;
pub use store::StoreOptions;
pub use verify::{Problem, VerifyReport};
pub use writer::WriterOptions;
