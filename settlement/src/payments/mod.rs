//! Card payments through the switch (issue 7): a terminal's purchase (with the card's ARQC in
//! EMV field 55) is checked (shape, risk, ARQC by the `hsm`), routed by BIN to the issuer bank
//! over ISO 8583 ([`crate::iso8583`], MAC by the `hsm`), answered with the issuer's response
//! code and the ARPC, and posted to the ledger; refunds and same-day voids likewise. A reversal
//! (0400) is written durably before each request leaves and sent until acknowledged, across
//! restarts. The daily cut-off nets each bank's day and writes its clearing file; a bank's own
//! file is reconciled against ours.
//!
//! - [`routing`]: the BIN table (fixtures/banks/routing.toml).
//! - [`link`]: TCP link per bank, request/response matching.
//! - [`icc`]: field 55 (EMV TLV) → the CDOL1 data the card MACed.
//! - [`switch`]: the authorisation flow, the reversal forwarder, sign-on/echo.
//! - [`clearing`]: cut-off, net settlement, clearing files, reconciliation.
//! - [`adjust`]: refunds and same-day voids; [`qr`]: partner QR tokens (SM2); [`risk`]: checks
//!   before routing; [`acquirer`]: inbound ISO 8583 for POS terminals; [`api`]: the terminals'
//!   JSON API; [`terminal`]: a terminal's reversal of a purchase it got no answer for.
//! - `store`: the SQL (migrations/*/0100_payments.sql, 0101_payments_qr.sql,
//!   0102_payments_terminal_txn.sql).
//!
//! Sources: ../shared/reference/card-hsm-anchors.md §3-§5 (EMV flow, ARQC/ARPC, HSM
//! semantics), anchors-switch.md §3 and §6(d) (jPOS practice, failure modes).

pub mod acquirer;
pub mod adjust;
pub mod api;
pub mod clearing;
mod clock;
mod exchange;
pub mod icc;
pub mod link;
pub mod qr;
pub mod risk;
pub mod routing;
mod store;
pub mod switch;
pub mod terminal;

pub use clock::Moment;
pub use routing::RoutingTable;
pub use store::{PendingReversal, TxnRow};
pub use switch::{PaymentOutcome, PurchaseRequest, Switch, SwitchOptions};

/// ISO 8583 field 39 response codes the switch uses (ISO 8583:1987 Annex A codes; `A0` is the
/// China UnionPay code for a MAC failure).
pub mod codes {
    /// Approved.
    pub const APPROVED: &str = "00";
    /// Do not honour.
    pub const DO_NOT_HONOUR: &str = "05";
    /// Approved for a partial amount.
    pub const PARTIAL: &str = "10";
    /// Invalid transaction (refund past the original, void of another day).
    pub const INVALID_TRANSACTION: &str = "12";
    /// Invalid amount.
    pub const INVALID_AMOUNT: &str = "13";
    /// No such issuer (no BIN route).
    pub const NO_SUCH_ISSUER: &str = "15";
    /// Original not found (refund/void).
    pub const NO_ORIGINAL: &str = "25";
    /// Format error (malformed message or ICC data).
    pub const FORMAT_ERROR: &str = "30";
    /// Lost card.
    pub const LOST_CARD: &str = "41";
    /// Stolen card.
    pub const STOLEN_CARD: &str = "43";
    /// Insufficient funds.
    pub const INSUFFICIENT_FUNDS: &str = "51";
    /// Expired card or token.
    pub const EXPIRED: &str = "54";
    /// Incorrect PIN.
    pub const INCORRECT_PIN: &str = "55";
    /// Suspected fraud (same card at distant terminals).
    pub const SUSPECTED_FRAUD: &str = "59";
    /// Exceeds amount limit (daily limit per card).
    pub const EXCEEDS_LIMIT: &str = "61";
    /// Restricted card (blocked).
    pub const RESTRICTED: &str = "62";
    /// Security violation (the ARQC does not verify).
    pub const SECURITY_VIOLATION: &str = "63";
    /// Issuer or switch inoperative (no answer in time; reversal sent).
    pub const ISSUER_INOPERATIVE: &str = "91";
    /// Duplicate transmission (replayed token or STAN).
    pub const DUPLICATE: &str = "94";
    /// System malfunction.
    pub const SYSTEM_MALFUNCTION: &str = "96";
    /// MAC verification failed (UnionPay).
    pub const MAC_FAILED: &str = "A0";
}

/// Why a payment operation failed (as opposed to being declined: a decline is an outcome).
/// Messages never carry a PAN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The routing table or options are wrong.
    #[error("payment configuration: {0}")]
    Config(String),
    /// No BIN range matches the PAN.
    #[error("no route for this card's BIN")]
    NoRoute,
    /// A request field is malformed.
    #[error("malformed request: {0}")]
    Request(&'static str),
    /// The payment tables failed.
    #[error("payment store: {0}")]
    Store(#[from] sqlx::Error),
    /// The ledger refused or failed.
    #[error("ledger: {0}")]
    Ledger(#[from] crate::LedgerError),
    /// The HSM failed for a reason other than a failed verification.
    #[error("hsm: {0}")]
    Hsm(String),
    /// An ISO 8583 message could not be built.
    #[error("iso8583: {0}")]
    Iso8583(#[from] crate::iso8583::Iso8583Error),
}
