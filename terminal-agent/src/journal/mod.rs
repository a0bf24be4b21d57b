//! The durable journal of every message the agent sends to the settlement switch, and the
//! store-and-forward of reversals (冲正, infno 2601).
//!
//! - [`envelope`]: the national interface's JSON envelope (medical-settlement.md §1.1) and the
//!   30-character msgid.
//! - [`store`]: SQLite (WAL, `synchronous = FULL`): a message is on disk **before** it is sent.
//! - [`switch`]: the client of `POST /fsi/api/rsfComIfsService/callService`; a reply with
//!   `infcode` 0 is an acknowledgement; the gateway's `x-tif-*` headers when configured.
//!   tests/journal.rs plays the switch with a small axum stand-in (faults on demand);
//!   tests/switch_real.rs runs against the real `settlement serve`.
//! - [`send`]: one message: journal, send, and on a timeout of a settlement (2207/2304; outcome
//!   **unknown**, never "failed": the switch may have settled) queue a 2601 reversal keyed by the
//!   original msgid.
//! - [`forwarder`]: retries queued reversals with a doubling backoff until the switch
//!   acknowledges them, across agent restarts (the schedule is in the database).
//! - [`payrev`]: payment reversals from the terminal (`POST /payments/v1/reversal`), journaled
//!   and retried until the switch answers `00`.
//! - [`sweep`]: on open, resolves messages a crash left `sending` (a settlement gets its 2601).

pub mod envelope;
pub mod forwarder;
pub mod payrev;
pub mod send;
pub mod store;
pub mod sweep;
pub mod switch;

pub use envelope::{Envelope, EnvelopeHeader, MSGID_LEN};
pub use send::{SendOutcome, send_message};
pub use store::{Journal, JournalError, MessageState, StoredMessage};
pub use sweep::{SweepReport, sweep};
pub use switch::{SwitchClient, SwitchError, SwitchReply};
