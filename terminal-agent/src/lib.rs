//! The terminal agent: the card-reader daemon at kiosks, hospitals and pharmacies (issue 4).
//!
//! - [`reader`]: PC/SC through the `pcsc` crate against `pcscd` — one worker thread per reader
//!   (the pcsc calls block), every command sequence inside an exclusive card transaction, a
//!   watcher thread on `SCardGetStatusChange` that publishes reader and card events. Every wait
//!   is bounded.
//! - [`card`]: the card sessions — SSSE identity and holder (3.00 cards authenticated with the
//!   HSM through [`authority`]), the PBOC application with the PAN masked, PIN verification.
//! - [`api`]: the local HTTP API on 127.0.0.1 (axum), including the unified reader interface
//!   (`iReadCardBas`, `iVerifyPIN`) and a server-sent event stream; OpenAPI at `/openapi.json`.
//! - [`journal`]: the durable journal (SQLite) of every message sent to the settlement switch,
//!   written before sending, and the store-and-forward of reversals (冲正, infno 2601).
//! - [`config`]: TOML file plus environment variables.
//!
//! **The agent never holds a card key**: cryptograms come from the `hsm` (in process, keys
//! wrapped under its LMK, or over its HTTP API). **Personal data never reaches a log**: names,
//! ID numbers and PANs are masked in `Debug`, and APDUs are traced with headers and lengths only.

pub mod api;
pub mod authority;
pub mod card;
pub mod config;
pub mod error;
pub mod journal;
pub mod payment;
pub mod reader;

pub use error::{AgentError, ErrorCode};
