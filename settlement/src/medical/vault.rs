//! Insured persons' records at rest (`persons.record`) sealed under the personal-data keys, and
//! their lookup keys keyed (issue 8: "ID numbers and names are stored encrypted (keys from the
//! `hsm`) or as keyed hashes where only matching is needed").
//!
//! One [`PersonVault`] per ledger ([`crate::Ledger::person_vault`]), shared by every module that
//! reads persons (medical, identity, partner). Until keys are installed (a node started without
//! its hsm, the tests' harnesses, `settlement import-persons`) records are written as clear JSON
//! with unkeyed SHA-256 lookup keys, as before. [`PersonVault::install`] gives it the data keys of
//! [`crate::identity::DataKeys`] (wrapped by the hsm's KEK, see identity/pii.rs); from then on:
//! - a record is stored as `sealed:v1:<key_id>:<hex of nonce ‖ AES-256-GCM ciphertext ‖ tag>`,
//!   bound to its `psn_no` (associated data), so a record copied to another row does not open;
//! - the ID and card numbers' lookup columns hold HMAC-SHA-256 under the data HMAC key (a
//!   dictionary of the ~10^9 plausible ID numbers does not invert them);
//! - [`seal_persons`] converts the clear rows (run by `settlement serve` at start once the hsm
//!   is open; idempotent, safe beside other processes on the same database);
//! - a lookup tries the keyed hash, then the unkeyed one, so a person imported in clear while
//!   the node runs is still found (and sealed at the next start).
//!
//! A sealed record read where no keys are installed is refused (`PersonVaultError::Sealed`),
//! never shown as ciphertext.

use std::sync::{Arc, OnceLock};

use super::person::{PersonRecord, lookup_key};
use crate::Ledger;
use crate::error::LedgerError;
use crate::identity::DataKeys;
use crate::store::dispatch;

/// Re-keys one card's partner rows from its legacy key ($2) to its keyed one ($1), in order:
/// an application linked under both keeps its older link (made before the keys; the reference
/// it was given first), now under the keyed key. Status rows keep their order (`seq`).
const REKEY_PARTNER_ROWS: [&str; 4] = [
    "DELETE FROM partner_card_links WHERE card_no_sha256 = $1 AND app_id IN \
     (SELECT app_id FROM partner_card_links WHERE card_no_sha256 = $2)",
    "UPDATE partner_card_links SET card_no_sha256 = $1 WHERE card_no_sha256 = $2",
    "UPDATE card_status_events SET card_no_sha256 = $1 WHERE card_no_sha256 = $2",
    "UPDATE partner_consents SET card_no_sha256 = $1 WHERE card_no_sha256 = $2",
];

/// Prefix of a sealed record.
const SEALED_PREFIX: &str = "sealed:v1:";
/// The AEAD field label of a person record.
const FIELD: &str = "persons.record";
/// Rows sealed per transaction by [`seal_persons`].
const SEAL_CHUNK: i64 = 500;

/// Why a stored person record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PersonVaultError {
    /// The record is sealed and this process has no personal-data keys (start the node with its
    /// hsm: `settlement serve --hsm-dir ... --lmk-file ...`).
    #[error(
        "the person's record is sealed and this node has no personal-data keys (start it with its hsm)"
    )]
    Sealed,
    /// The record does not open or parse (altered, moved from another row, another key).
    #[error("person record corrupt")]
    Corrupt,
}

/// The personal-data keys of the persons table, once installed. Cheap to clone; clones share.
#[derive(Debug, Clone, Default)]
pub struct PersonVault(Arc<OnceLock<Arc<DataKeys>>>);

impl PersonVault {
    /// Installs the keys (once; a second call is ignored and returns false).
    pub fn install(&self, keys: Arc<DataKeys>) -> bool {
        self.0.set(keys).is_ok()
    }

    /// Whether keys are installed (records are written sealed).
    pub fn sealing(&self) -> bool {
        self.0.get().is_some()
    }

    /// The lookup keys of an ID (`kind` = `certno`) or card (`card`) number, the one to write
    /// first: keyed when keys are installed, then the unkeyed legacy one.
    pub(crate) fn lookups(&self, kind: &str, number: &str) -> Vec<[u8; 32]> {
        let first = self.lookup(kind, number);
        if self.sealing() {
            vec![first, lookup_key(kind, number)]
        } else {
            vec![first]
        }
    }

    /// HMAC-SHA-256 of `value` in domain `kind` under the data HMAC key, or `None` while no
    /// keys are installed (a pseudonym that a dictionary of plausible values cannot invert).
    pub(crate) fn keyed(&self, kind: &str, value: &str) -> Option<[u8; 32]> {
        self.0.get().map(|keys| keys.keyed_hash(kind, value))
    }

    /// The lookup key written for a new row: keyed when keys are installed, else the legacy one.
    pub(crate) fn lookup(&self, kind: &str, number: &str) -> [u8; 32] {
        match self.0.get() {
            Some(keys) => keys.keyed_hash(&format!("person-{kind}"), number),
            None => lookup_key(kind, number),
        }
    }

    /// The stored form of `record`. Errors: `Corrupt` (serialisation or no randomness).
    pub(crate) fn encode(&self, record: &PersonRecord) -> Result<String, PersonVaultError> {
        let json = serde_json::to_string(record).map_err(|_| PersonVaultError::Corrupt)?;
        match self.0.get() {
            None => Ok(json),
            Some(keys) => {
                let sealed = keys
                    .seal(json.as_bytes(), FIELD, &record.psn_no)
                    .map_err(|_| PersonVaultError::Corrupt)?;
                Ok(format!(
                    "{SEALED_PREFIX}{}:{}",
                    keys.key_id(),
                    hex::encode(sealed)
                ))
            }
        }
    }

    /// The record stored for `psn_no` as `stored` (clear JSON or sealed).
    /// Errors: `Sealed` (no keys here), `Corrupt`.
    pub(crate) fn decode(
        &self,
        psn_no: &str,
        stored: &str,
    ) -> Result<PersonRecord, PersonVaultError> {
        let record: PersonRecord = match stored.strip_prefix(SEALED_PREFIX) {
            None => serde_json::from_str(stored).map_err(|_| PersonVaultError::Corrupt)?,
            Some(rest) => {
                let keys = self.0.get().ok_or(PersonVaultError::Sealed)?;
                let (key_id, body) = rest.split_once(':').ok_or(PersonVaultError::Corrupt)?;
                if key_id.parse::<i64>().ok() != Some(keys.key_id()) {
                    return Err(PersonVaultError::Corrupt);
                }
                let sealed = hex::decode(body).map_err(|_| PersonVaultError::Corrupt)?;
                let json = keys
                    .open_field(&sealed, FIELD, psn_no)
                    .map_err(|_| PersonVaultError::Corrupt)?;
                serde_json::from_slice(&json).map_err(|_| PersonVaultError::Corrupt)?
            }
        };
        if record.psn_no != psn_no {
            return Err(PersonVaultError::Corrupt);
        }
        Ok(record)
    }
}

/// Installs `keys` in `ledger`'s vault (if none yet) and seals every clear person row: the record
/// encrypted, the ID and card numbers' lookup keys replaced by keyed hashes, and the partner
/// rows of the person's card (status events, consents, application links) moved from the
/// legacy key to the keyed one in the same transaction. Each row is updated
/// only if it is still the clear record read (another process sealing at once loses nothing).
/// Returns how many rows this call sealed. Errors: database; `Corrupt` for a clear record that
/// does not parse.
pub async fn seal_persons(ledger: &Ledger, keys: Arc<DataKeys>) -> Result<usize, LedgerError> {
    let vault = ledger.person_vault();
    vault.install(keys);
    if !vault.sealing() {
        return Ok(0);
    }
    let store = ledger.store();
    // The card keys the partner tables hold (few: the cards partners verified or operators
    // set a status on); a sealed person's card found among them under its legacy key has
    // those rows re-keyed in the same transaction (`REKEY_PARTNER_ROWS`).
    let partner_keys: std::collections::HashSet<Vec<u8>> = dispatch!(store, pool => {
        sqlx::query_scalar::<_, Vec<u8>>(
            "SELECT card_no_sha256 FROM card_status_events UNION \
             SELECT card_no_sha256 FROM partner_card_links UNION \
             SELECT card_no_sha256 FROM partner_consents",
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect()
    });
    let mut sealed = 0;
    loop {
        let rows: Vec<(String, String)> = dispatch!(store, pool => {
            sqlx::query_as(
                "SELECT psn_no, record FROM persons WHERE record NOT LIKE 'sealed:%' \
                 ORDER BY psn_no LIMIT $1",
            )
            .bind(SEAL_CHUNK)
            .fetch_all(pool)
            .await?
        });
        if rows.is_empty() {
            return Ok(sealed);
        }
        let mut updates = Vec::with_capacity(rows.len());
        for (psn_no, clear) in &rows {
            let record = vault
                .decode(psn_no, clear)
                .map_err(|_| LedgerError::Corrupt("person record"))?;
            let stored = vault
                .encode(&record)
                .map_err(|_| LedgerError::Corrupt("person record"))?;
            let certno = vault.lookup("certno", &record.certno).to_vec();
            let card = record
                .card_no
                .as_deref()
                .map(|card| vault.lookup("card", card).to_vec());
            // The legacy key this card's partner rows may hold, when they hold it.
            let legacy = record
                .card_no
                .as_deref()
                .map(|card| lookup_key("card", card).to_vec())
                .filter(|legacy| partner_keys.contains(legacy));
            updates.push((psn_no, clear, stored, certno, card, legacy));
        }
        let gate = ledger.write_gate();
        let _turn = gate.enter().await;
        let mut changed = 0;
        dispatch!(store, pool => {
            let mut tx = pool.begin().await?;
            for (psn_no, clear, stored, certno, card, legacy) in &updates {
                let updated = sqlx::query(
                    "UPDATE persons SET record = $1, certno_sha256 = $2, card_no_sha256 = $3 \
                     WHERE psn_no = $4 AND record = $5",
                )
                .bind(stored)
                .bind(certno)
                .bind(card)
                .bind(*psn_no)
                .bind(*clear)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                changed += updated;
                if let (1, Some(keyed), Some(legacy)) = (updated, card, legacy) {
                    for sql in REKEY_PARTNER_ROWS {
                        sqlx::query(sql)
                            .bind(keyed)
                            .bind(legacy)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
        });
        sealed += usize::try_from(changed).unwrap_or(usize::MAX);
    }
}
