//! The operators' console (issue 8): a server-rendered web UI under `/console/`, served by
//! `settlement serve`. No JavaScript build chain: each page is HTML written here, charts are
//! inline SVG ([`chart`]), forms post back.
//!
//! - Accounts and roles ([`users`]): `viewer` sees the dashboards (settlements, payments,
//!   inter-region positions and window closes, card-use aggregates); `operator` also sees
//!   reversals waiting and reconciliation, decides partner applications ([`partners`]), looks a holder up (with a reason, audited in the
//!   holder's read log) and reports cards lost; `admin` also manages accounts. Passwords are
//!   argon2id; the first admin comes from `SETTLEMENT_CONSOLE_ADMIN=name:password`.
//! - Sessions: a random token in an `HttpOnly; Secure; SameSite=Strict` cookie, stored as its
//!   SHA-256, 8 hours; every form carries the session's CSRF token; 5 failed logins lock the
//!   account for 15 minutes.
//! - **The console never shows a person's data without a reason**: dashboards show no person
//!   numbers, names or ID numbers; the holder page is an audited read through
//!   `identity::Identity::operator_read`.

pub mod chart;
mod data;
mod html;
mod partners;
mod routes;
pub mod users;

use std::sync::Arc;

use crate::Ledger;
use crate::identity::Identity;
use crate::partner::PartnerPlatform;
use crate::store::Store;
use crate::writer::WriteGate;

pub use routes::router;
pub use users::{ConsoleError, Role};

/// Console settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Session life, ms (8 hours: a shift).
    pub session_ttl_ms: i64,
    /// Failed logins before the account locks.
    pub failed_logins_max: i64,
    /// How long a lock lasts, ms.
    pub lock_ms: i64,
    /// Rows in each "recent" table.
    pub recent_rows: i64,
    /// Days in the charts.
    pub chart_days: i64,
}

impl Default for ConsoleOptions {
    fn default() -> ConsoleOptions {
        ConsoleOptions {
            session_ttl_ms: 8 * 3_600_000,
            failed_logins_max: 5,
            lock_ms: 15 * 60_000,
            recent_rows: 20,
            chart_days: 14,
        }
    }
}

/// The console over the ledger's database.
#[derive(Debug, Clone)]
pub struct Console {
    store: Store,
    gate: WriteGate,
    ledger: Arc<Ledger>,
    identity: Option<Arc<Identity>>,
    partner: Option<Arc<PartnerPlatform>>,
    options: ConsoleOptions,
}

impl Console {
    /// The console of `ledger`'s database; `identity` (sign-in, personal data, trail) is
    /// optional: without it the holder pages and the trail panel say so.
    pub fn new(
        ledger: Arc<Ledger>,
        identity: Option<Arc<Identity>>,
        options: ConsoleOptions,
    ) -> Console {
        Console {
            store: ledger.store().clone(),
            gate: ledger.write_gate(),
            ledger,
            identity,
            partner: None,
            options,
        }
    }

    /// The same console with the partner page (`/console/partners`: applications to approve)
    /// over `partner`; without it that page says the platform is not enabled.
    pub fn with_partner(mut self, partner: Arc<PartnerPlatform>) -> Console {
        self.partner = Some(partner);
        self
    }
}
