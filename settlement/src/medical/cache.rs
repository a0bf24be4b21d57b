//! A write-through cache of the state the hot path reads: person records, visits with their live
//! fee lines and live settlement, year-to-date accumulators and personal-account balances.
//!
//! Why: a settlement read eight rows before this cache (message, person, visit, events,
//! settlements, fee lines, accumulators, balance); at thousands of settlements a second those
//! round trips, not the group-committed writes, were the ceiling. With the cache the hot path
//! reads only the message record (which must come from the database: it is the crash-safe
//! idempotency record) and commits in the writers' batches.
//!
//! Rules that keep it exact: the database is the truth; an entry (a visit, accumulators, a
//! balance) is loaded from it on a miss under its person's lock (so no settlement of the person
//! commits between the read and the put), and changed only AFTER the change committed, under that
//! lock (so no reader sees a
//! state that did not commit); an outcome that is unknown (a failed batch) drops the person's entries,
//! so the next request reloads them. Every map is bounded: past its limit it is cleared (entries
//! reload on demand). Valid while this process is the only writer of the persons it serves; when
//! other processes serve the same database (`Medical::share_database`, issue 6) only person
//! records are kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::person::PersonRecord;
use super::store::{StoredFeeLine, StoredVisit};
use crate::ids::AccountId;

/// Most cached persons.
const PERSONS_CACHED_MAX: usize = 2_000_000;
/// Most cached visits.
const VISITS_CACHED_MAX: usize = 500_000;
/// Most cached accumulator sets and balances.
const ACCOUNTS_CACHED_MAX: usize = 2_000_000;

/// What the hot path knows of one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VisitState {
    /// The visit row with its events folded.
    pub visit: StoredVisit,
    /// Live fee lines in `feedetl_sn` order.
    pub lines: Vec<StoredFeeLine>,
    /// Every `feedetl_sn` ever uploaded for the visit (cancelled ones too).
    pub all_sns: BTreeSet<String>,
    /// The live (not cancelled) settlement, if any.
    pub live_settlement: Option<String>,
}

/// The cache.
#[derive(Debug, Default)]
pub(crate) struct StateCache {
    /// Other processes write this database too (`Medical::share_database`): only person records
    /// (never changed after import) are kept; visits, accumulators and balances are read from
    /// the database under the person's lock.
    shared: std::sync::atomic::AtomicBool,
    persons: Mutex<HashMap<String, Arc<PersonRecord>>>,
    visits: Mutex<HashMap<String, VisitState>>,
    accumulators: Mutex<HashMap<(String, i64), BTreeMap<String, i64>>>,
    balances: Mutex<HashMap<AccountId, i64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn bounded_insert<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    key: K,
    value: V,
) {
    if map.len() >= max {
        map.clear();
    }
    map.insert(key, value);
}

impl StateCache {
    /// Keeps only person records from now on (see `shared`).
    pub(crate) fn share(&self) {
        self.shared
            .store(true, std::sync::atomic::Ordering::Release);
        lock(&self.visits).clear();
        lock(&self.accumulators).clear();
        lock(&self.balances).clear();
    }

    /// True if visits, accumulators and balances are kept (this process is the only writer).
    pub(crate) fn keeps_money(&self) -> bool {
        !self.off()
    }

    fn off(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn person(&self, psn_no: &str) -> Option<Arc<PersonRecord>> {
        lock(&self.persons).get(psn_no).cloned()
    }

    pub(crate) fn put_person(&self, person: Arc<PersonRecord>) {
        bounded_insert(
            &mut lock(&self.persons),
            PERSONS_CACHED_MAX,
            person.psn_no.clone(),
            person,
        );
    }

    pub(crate) fn visit(&self, mdtrt_id: &str) -> Option<VisitState> {
        if self.off() {
            return None;
        }
        lock(&self.visits).get(mdtrt_id).cloned()
    }

    pub(crate) fn put_visit(&self, mdtrt_id: &str, state: VisitState) {
        if self.off() {
            return;
        }
        bounded_insert(
            &mut lock(&self.visits),
            VISITS_CACHED_MAX,
            mdtrt_id.to_owned(),
            state,
        );
    }

    /// Applies `change` to a cached visit (no-op if it is not cached: it reloads on demand).
    pub(crate) fn update_visit(&self, mdtrt_id: &str, change: impl FnOnce(&mut VisitState)) {
        if let Some(state) = lock(&self.visits).get_mut(mdtrt_id) {
            change(state);
        }
    }

    pub(crate) fn accumulators(&self, psn_no: &str, year: i64) -> Option<BTreeMap<String, i64>> {
        if self.off() {
            return None;
        }
        lock(&self.accumulators)
            .get(&(psn_no.to_owned(), year))
            .cloned()
    }

    pub(crate) fn put_accumulators(&self, psn_no: &str, year: i64, sums: BTreeMap<String, i64>) {
        if self.off() {
            return;
        }
        bounded_insert(
            &mut lock(&self.accumulators),
            ACCOUNTS_CACHED_MAX,
            (psn_no.to_owned(), year),
            sums,
        );
    }

    /// Adds signed deltas to cached accumulators (no-op if not cached).
    pub(crate) fn add_accumulators(&self, psn_no: &str, year: i64, deltas: &[(String, i64)]) {
        if let Some(sums) = lock(&self.accumulators).get_mut(&(psn_no.to_owned(), year)) {
            for (name, delta) in deltas {
                *sums.entry(name.clone()).or_insert(0) += delta;
            }
        }
    }

    pub(crate) fn balance(&self, account: AccountId) -> Option<i64> {
        if self.off() {
            return None;
        }
        lock(&self.balances).get(&account).copied()
    }

    pub(crate) fn put_balance(&self, account: AccountId, credit_balance_fen: i64) {
        if self.off() {
            return;
        }
        bounded_insert(
            &mut lock(&self.balances),
            ACCOUNTS_CACHED_MAX,
            account,
            credit_balance_fen,
        );
    }

    /// Adds a signed amount to a cached balance (no-op if not cached).
    pub(crate) fn add_balance(&self, account: AccountId, delta_fen: i64) {
        if let Some(balance) = lock(&self.balances).get_mut(&account) {
            *balance += delta_fen;
        }
    }

    /// Forgets everything about a person's money and one visit (outcome unknown).
    pub(crate) fn forget(&self, psn_no: &str, mdtrt_id: &str, account: Option<AccountId>) {
        lock(&self.visits).remove(mdtrt_id);
        lock(&self.accumulators).retain(|(psn, _), _| psn != psn_no);
        if let Some(account) = account {
            lock(&self.balances).remove(&account);
        }
    }

    /// Forgets the balances of `accounts`.
    pub(crate) fn forget_balances(&self, accounts: impl IntoIterator<Item = AccountId>) {
        let mut balances = lock(&self.balances);
        for account in accounts {
            balances.remove(&account);
        }
    }
}
