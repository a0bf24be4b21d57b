//! Readers: the PC/SC layer and the scheduling of card work.
//!
//! - [`backend`]: the [`backend::CardBackend`] seam (one per worker thread): open an exclusive
//!   transaction on the card in a named reader and hand out a [`card_core::CardTransport`].
//!   [`pcsc_backend`] implements it over the `pcsc` crate; [`virtual_backend`] over in-process
//!   virtual cards (tests without pcscd).
//! - [`worker`]: one thread per reader runs that reader's jobs one after another (so two clients
//!   asking at once are serialised and both answered), with a bounded queue; the async caller
//!   waits with a timeout and never blocks an executor thread.
//! - [`watcher`]: a thread on `SCardGetStatusChange` (with a timeout, and the
//!   `\\?PnP?\Notification` pseudo-reader for hot-plug) publishing [`ReaderEvent`]s.
//!
//! Facts used: card-hsm-anchors.md §1.1 (resets, removal, sharing, disposition on drop, buffer
//! sizes), limits.md §4 (pcscd polls vpcd about every 400 ms).

pub mod backend;
pub mod pcsc_backend;
pub mod virtual_backend;
pub mod watcher;
pub mod worker;

use serde::Serialize;

use card_core::TransportError;

pub use backend::{BackendFactory, CardBackend, CardLink};
pub use watcher::{ReaderEvent, ReaderEventKind, ReaderSnapshot, Watcher};
pub use worker::{Readers, ReadersConfig};

/// Why the reader layer could not run a job. Messages never carry card data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// No reader of that name.
    #[error("reader {0:?} not found")]
    UnknownReader(String),
    /// The reader is empty.
    #[error("no card in the reader")]
    NoCard,
    /// The reader's job queue is full.
    #[error("the reader's queue is full")]
    Busy,
    /// The job did not finish within its timeout.
    #[error("no answer within {timeout_ms} ms")]
    Timeout {
        /// The timeout that elapsed.
        timeout_ms: u64,
    },
    /// An exchange failed (card removed, reset, reader failure).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The PC/SC service failed or is not running.
    #[error("PC/SC service: {0}")]
    Service(String),
    /// The worker thread is gone.
    #[error("the reader worker stopped")]
    WorkerGone,
}

/// A reader as listed by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReaderInfo {
    /// The PC/SC reader name (`"Virtual PCD 00 01"`).
    pub name: String,
    /// True while a card is in the reader.
    pub card_present: bool,
    /// The card's answer to reset, upper-case hex, when a card is present.
    pub atr: Option<String>,
}
