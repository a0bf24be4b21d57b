//! Personal data at rest: envelope encryption under keys the hsm wraps.
//!
//! Two 32-byte data keys per generation (`identity_data_keys`): an AES-256-GCM key for names,
//! ID numbers and person numbers, and an HMAC-SHA-256 key for the keyed hashes that only serve
//! matching (卡识别码, 卡号, ID number) and for the holder pseudonym. Both are generated here from
//! the system CSPRNG, wrapped by the hsm's `D0` AES-256 key (the KEK, AES-ECB over the two
//! blocks of each random key) and stored wrapped; at open, the hsm unwraps them into this
//! process's memory.
//!
//! **The KEK never leaves the hsm; the data keys do**, by design: the model is AWS KMS's
//! `GenerateDataKey` (envelope encryption), because an hsm round trip per field read or match
//! would put the hsm on every sign-in and console page. A stolen database holds ciphertexts and
//! keyed hashes only; an ID number cannot be recovered from its hash by trying the 10^17
//! possibilities without the HMAC key.
//!
//! Ciphertext layout: 12-byte random nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag, with the
//! field's label and the row key as associated data (a ciphertext moved to another row or field
//! does not decrypt).

use std::fmt;
use std::sync::{Arc, Mutex};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use hsm::ops::{CipherMode, Hsm, HsmError};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::error::{IdentityError, Result};
use crate::store::{Store, dispatch};

/// Length of each data key, bytes.
const DATA_KEY_LEN: usize = 32;
/// AES-GCM tag length, bytes.
const TAG_LEN: usize = 16;
/// The label encrypted under the AEAD key to check an unwrap (`check_value`).
const CHECK_LABEL: &[u8] = b"ssc identity data key check v1";

/// The two data keys of one generation, in memory.
pub struct DataKeys {
    key_id: i64,
    aead: LessSafeKey,
    hmac: ring::hmac::Key,
    rng: SystemRandom,
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeys")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Locks the shared hsm (a poisoned lock still guards a usable key store: every operation is
/// atomic from the store's point of view).
pub(crate) fn lock_hsm(hsm: &Mutex<Hsm>) -> std::sync::MutexGuard<'_, Hsm> {
    hsm.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates the key `header.alias` in the hsm unless it exists. Errors: hsm errors.
pub(crate) fn ensure_key(hsm: &Mutex<Hsm>, caller: &str, header: KeyHeader) -> Result<String> {
    let mut hsm = lock_hsm(hsm);
    match hsm.get_key(caller, &header.alias) {
        Ok(meta) => Ok(meta.kcv_hex()),
        Err(HsmError::KeyNotFound { .. }) => Ok(hsm.create_key(caller, header)?.kcv_hex()),
        Err(other) => Err(other.into()),
    }
}

/// The KEK's header: AES-256, usage `D0`, mode `B` (wrap and unwrap), not exportable.
pub(crate) fn kek_header(alias: &str) -> KeyHeader {
    KeyHeader {
        alias: alias.to_owned(),
        algorithm: KeyAlgorithm::Aes256,
        usage: KeyUsage::D0,
        mode: ModeOfUse::B,
        version: *b"00",
        exportability: Exportability::NonExportable,
    }
}

type KeyRow = (i64, String, String, Vec<u8>, Vec<u8>, Vec<u8>);

impl DataKeys {
    /// The newest generation of data keys, created (and wrapped by `kek_alias`, created in the
    /// hsm if missing) on first use. Two processes opening at once agree: the row is inserted
    /// with `ON CONFLICT DO NOTHING` and read back.
    ///
    /// Errors: `Hsm` (KEK unusable), `Corrupt("identity_data_keys")` (the stored keys do not
    /// unwrap under this KEK: another hsm, or an altered row), database errors.
    pub(crate) async fn open(
        store: &Store,
        hsm: &Arc<Mutex<Hsm>>,
        caller: &str,
        kek_alias: &str,
    ) -> Result<DataKeys> {
        let kcv = ensure_key(hsm, caller, kek_header(kek_alias))?;
        if latest_row(store).await?.is_none() {
            let rng = SystemRandom::new();
            let mut aead = Zeroizing::new([0u8; DATA_KEY_LEN]);
            let mut hmac = Zeroizing::new([0u8; DATA_KEY_LEN]);
            rng.fill(aead.as_mut())
                .and_then(|()| rng.fill(hmac.as_mut()))
                .map_err(|_| IdentityError::Hsm("no system randomness".into()))?;
            let (aead_wrapped, hmac_wrapped) = {
                let mut hsm = lock_hsm(hsm);
                (
                    hsm.encrypt_data(caller, kek_alias, &CipherMode::Ecb, aead.as_ref())?,
                    hsm.encrypt_data(caller, kek_alias, &CipherMode::Ecb, hmac.as_ref())?,
                )
            };
            let keys = DataKeys::from_clear(1, &aead, &hmac)?;
            let check = keys.seal(CHECK_LABEL, "check", "1")?;
            dispatch!(store, pool => {
                sqlx::query(
                    "INSERT INTO identity_data_keys (key_id, kek_alias, kek_kcv, aead_wrapped, \
                     hmac_wrapped, check_value, created_at_ms) VALUES (1, $1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (key_id) DO NOTHING",
                )
                .bind(kek_alias)
                .bind(&kcv)
                .bind(&aead_wrapped)
                .bind(&hmac_wrapped)
                .bind(&check)
                .bind(super::now_ms())
                .execute(pool)
                .await?;
            });
        }
        let (key_id, alias, _kcv, aead_wrapped, hmac_wrapped, check) = latest_row(store)
            .await?
            .ok_or(IdentityError::Corrupt("identity_data_keys"))?;
        let (aead, hmac) = {
            let mut hsm = lock_hsm(hsm);
            (
                Zeroizing::new(hsm.decrypt_data(
                    caller,
                    &alias,
                    &CipherMode::Ecb,
                    &aead_wrapped,
                )?),
                Zeroizing::new(hsm.decrypt_data(
                    caller,
                    &alias,
                    &CipherMode::Ecb,
                    &hmac_wrapped,
                )?),
            )
        };
        let aead: Zeroizing<[u8; DATA_KEY_LEN]> = Zeroizing::new(
            aead.as_slice()
                .try_into()
                .map_err(|_| IdentityError::Corrupt("identity_data_keys"))?,
        );
        let hmac: Zeroizing<[u8; DATA_KEY_LEN]> = Zeroizing::new(
            hmac.as_slice()
                .try_into()
                .map_err(|_| IdentityError::Corrupt("identity_data_keys"))?,
        );
        let keys = DataKeys::from_clear(key_id, &aead, &hmac)?;
        match keys.open_field(&check, "check", "1") {
            Ok(label) if label == CHECK_LABEL => Ok(keys),
            _ => Err(IdentityError::Corrupt("identity_data_keys")),
        }
    }

    fn from_clear(key_id: i64, aead: &[u8; 32], hmac: &[u8; 32]) -> Result<DataKeys> {
        let unbound = UnboundKey::new(&AES_256_GCM, aead)
            .map_err(|_| IdentityError::Corrupt("identity_data_keys"))?;
        Ok(DataKeys {
            key_id,
            aead: LessSafeKey::new(unbound),
            hmac: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, hmac),
            rng: SystemRandom::new(),
        })
    }

    /// The generation number stored with each ciphertext.
    pub fn key_id(&self) -> i64 {
        self.key_id
    }

    /// HMAC-SHA-256 under the data HMAC key of `kind ‖ 0 ‖ value` (32 bytes): the keyed hash
    /// rows are matched on. `kind` separates domains (`card_id`, `card_no`, `certno`, `psn_no`).
    pub fn keyed_hash(&self, kind: &str, value: &str) -> [u8; 32] {
        let mut message = Vec::with_capacity(kind.len() + 1 + value.len());
        message.extend_from_slice(kind.as_bytes());
        message.push(0);
        message.extend_from_slice(value.as_bytes());
        let tag = ring::hmac::sign(&self.hmac, &message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The holder pseudonym of a person number: the first 32 hex digits of
    /// `keyed_hash("psn_no", psn_no)`. Stable for a deployment, meaningless outside it.
    pub fn holder_id(&self, psn_no: &str) -> String {
        hex::encode(&self.keyed_hash("psn_no", psn_no)[..16])
    }

    /// Encrypts `clear` for the column `field` of the row `row` (both bound as associated data).
    /// Errors: `Hsm("no system randomness")`.
    pub fn seal(&self, clear: &[u8], field: &str, row: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| IdentityError::Hsm("no system randomness".into()))?;
        let mut buffer = clear.to_vec();
        let aad = aad(field, row);
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut buffer,
            )
            .map_err(|_| IdentityError::Corrupt("seal"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// Decrypts what [`DataKeys::seal`] made for the same `field` and `row`.
    /// Errors: `Corrupt(field)` (altered, moved, or another key).
    pub fn open_field(&self, sealed: &[u8], field: &str, row: &str) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(IdentityError::Corrupt("ciphertext"));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| IdentityError::Corrupt("ciphertext"))?;
        let mut buffer = body.to_vec();
        let aad = aad(field, row);
        let clear = self
            .aead
            .open_in_place(nonce, Aad::from(&aad), &mut buffer)
            .map_err(|_| IdentityError::Corrupt("ciphertext"))?;
        Ok(clear.to_vec())
    }

    /// [`DataKeys::open_field`] as UTF-8 text. Errors: `Corrupt`.
    pub fn open_text(&self, sealed: &[u8], field: &str, row: &str) -> Result<String> {
        String::from_utf8(self.open_field(sealed, field, row)?)
            .map_err(|_| IdentityError::Corrupt("ciphertext"))
    }
}

fn aad(field: &str, row: &str) -> Vec<u8> {
    [b"ssc-pii-v1\0", field.as_bytes(), b"\0", row.as_bytes()].concat()
}

async fn latest_row(store: &Store) -> Result<Option<KeyRow>> {
    Ok(dispatch!(store, pool => {
        sqlx::query_as(
            "SELECT key_id, kek_alias, kek_kcv, aead_wrapped, hmac_wrapped, check_value \
             FROM identity_data_keys ORDER BY key_id DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await?
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> DataKeys {
        DataKeys::from_clear(1, &[7u8; 32], &[9u8; 32]).unwrap()
    }

    #[test]
    fn sealed_text_opens_only_in_its_field_and_row() {
        let keys = keys();
        let sealed = keys.seal("赵文博".as_bytes(), "name", "h1").unwrap();
        assert_eq!(sealed.len(), 12 + "赵文博".len() + 16);
        assert!(!sealed.windows(3).any(|w| w == "赵".as_bytes()));
        assert_eq!(keys.open_text(&sealed, "name", "h1").unwrap(), "赵文博");
        assert!(keys.open_field(&sealed, "certno", "h1").is_err());
        assert!(keys.open_field(&sealed, "name", "h2").is_err());
        let mut altered = sealed.clone();
        altered[14] ^= 1;
        assert!(keys.open_field(&altered, "name", "h1").is_err());
    }

    #[test]
    fn keyed_hash_is_hmac_sha256_of_kind_nul_value() {
        // Independent: python3 -c "import hmac,hashlib;print(hmac.new(bytes([9])*32,
        //   b'certno\x00120101198805121236',hashlib.sha256).hexdigest())"
        assert_eq!(
            hex::encode(keys().keyed_hash("certno", "120101198805121236")),
            "f72f9f4a3cece4bb25742f41a736f9ec41e7f0d90e8bd2be3e72a1f2cd6cabbd"
        );
    }
}
