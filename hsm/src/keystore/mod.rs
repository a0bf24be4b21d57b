//! The key store: keys sealed under the LMK, named by alias, persisted in an append-only
//! journal (see [`journal`]) under a data directory.
//!
//! Each key is held in memory only sealed (AES-256-GCM under the LMK, the additional data
//! binding its header: alias, algorithm, usage, mode, version, exportability); it is opened for
//! the length of one operation into a zeroizing [`SecretKey`]. No public function returns clear
//! key bytes: keys enter by generation, by clear components (key ceremony) or as TR-31 blocks,
//! and leave only as TR-31 blocks ([`crate::tr31`]).

mod asym;
pub mod journal;
mod record;
mod transport;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub(crate) use asym::{public_key, sign, verify};
pub use transport::TransportError;
pub use types::{
    ALIAS_LEN_MAX, Exportability, KeyAlgorithm, KeyHeader, KeyMetadata, KeyState, KeyUsage,
    ModeOfUse, SecretKey, alias_is_valid,
};

use crate::lmk::{Lmk, LmkError};
use journal::Journal;
use record::Record;

/// Most keys one store holds.
pub const KEYS_MAX: usize = 10_000;
/// Most clear components accepted by [`KeyStore::import_components`].
pub const COMPONENTS_MAX: usize = 3;

/// A key-store failure. Messages name aliases, KCVs, lengths and offsets, never key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// No key (or only a deleted one) has this alias.
    #[error("no key with alias '{alias}'")]
    KeyNotFound {
        /// The alias asked for.
        alias: String,
    },
    /// The key exists but is disabled.
    #[error("key '{alias}' is disabled")]
    KeyDisabled {
        /// The key's alias.
        alias: String,
    },
    /// A live key already has this alias.
    #[error("a key with alias '{alias}' already exists")]
    AliasExists {
        /// The alias.
        alias: String,
    },
    /// The alias is empty, too long or has characters outside `A-Z a-z 0-9 . _ - /`.
    #[error("invalid alias (1..={ALIAS_LEN_MAX} characters of A-Z a-z 0-9 . _ - /)")]
    InvalidAlias,
    /// Clear key material has a length the algorithm does not accept.
    #[error("key length {actual} bytes does not fit algorithm {algorithm}")]
    KeyLength {
        /// The algorithm's name.
        algorithm: &'static str,
        /// Length received, in bytes.
        actual: usize,
    },
    /// The key's computed KCV differs from the expected one given by the caller.
    #[error("KCV mismatch for '{alias}': expected {expected}, computed {computed}")]
    KcvMismatch {
        /// The key's alias.
        alias: String,
        /// KCV the caller expected (hex).
        expected: String,
        /// KCV of the key received (hex).
        computed: String,
    },
    /// Key components: none, too many, or of different lengths.
    #[error("key components: {reason}")]
    Components {
        /// What is wrong.
        reason: &'static str,
    },
    /// The store holds [`KEYS_MAX`] keys.
    #[error("the key store is full ({KEYS_MAX} keys)")]
    Full,
    /// The journal file was written under another LMK.
    #[error(
        "wrong LMK: the key store was created under LMK KCV {journal_kcv}, this LMK's KCV is {lmk_kcv}"
    )]
    WrongLmk {
        /// KCV recorded in the journal header.
        journal_kcv: String,
        /// KCV of the LMK supplied.
        lmk_kcv: String,
    },
    /// A whole journal record failed authentication: the file was altered.
    #[error(
        "key store journal record {seq} at byte offset {offset} fails authentication (altered file)"
    )]
    Tampered {
        /// Sequence number of the record.
        seq: u64,
        /// Byte offset of the record in the file.
        offset: usize,
    },
    /// A record authenticated but its content is not a journal entry (a bug or a newer format).
    #[error("key store journal record {seq} is malformed: {reason}")]
    MalformedRecord {
        /// Sequence number of the record.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a key store journal.
    #[error("{path} is not a key store journal")]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// The journal is larger than [`journal::JOURNAL_LEN_MAX`].
    #[error("the key store journal is {len} bytes, over the limit")]
    JournalTooLarge {
        /// Its length in bytes.
        len: u64,
    },
    /// A record would exceed [`journal::RECORD_LEN_MAX`].
    #[error("a key store record of {len} bytes is over the limit")]
    RecordTooLarge {
        /// Its length in bytes.
        len: usize,
    },
    /// A stored key failed to open under the LMK (altered in memory or a bug).
    #[error("stored key '{alias}' fails authentication under the LMK")]
    SealBroken {
        /// The key's alias.
        alias: String,
    },
    /// An I/O error on the journal.
    #[error("key store I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Sealing under the LMK failed.
    #[error(transparent)]
    Lmk(#[from] LmkError),
    /// A crypto construction failed (key generation, KCV).
    #[error(transparent)]
    Crypto(#[from] crate::error::Error),
}

struct Entry {
    meta: KeyMetadata,
    sealed: Vec<u8>,
}

/// The key store. Not `Clone`; share it behind a lock.
pub struct KeyStore {
    lmk: Lmk,
    journal: Journal,
    keys: BTreeMap<String, Entry>,
    rng: SystemRandom,
    torn_tail_len: u64,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("lmk", &self.lmk)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The current time as RFC 3339 UTC with whole seconds (`2026-01-02T03:04:05Z`).
#[must_use]
pub fn utc_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

/// A key's check value (3 bytes):
/// - TDES: the first 3 bytes of TDES-ECB(key, 8 zero bytes) (ANSI X9.24-1 legacy KCV);
/// - AES: the first 3 bytes of AES-CMAC(key, 16 zero bytes) (ANSI X9.24-1:2017 CMAC KCV);
/// - SM4: the first 3 bytes of SM4-ECB(key, 16 zero bytes) (the common SM4 convention);
/// - HMAC: the first 3 bytes of HMAC-SHA-256(key, 16 zero bytes) (our convention);
/// - SM2 / ECDSA P-256: the first 3 bytes of SM3 / SHA-256 of the uncompressed public key
///   (our convention).
///
/// Errors: [`KeyStoreError::KeyLength`], crypto errors for malformed key pairs.
pub fn key_check_value(algorithm: KeyAlgorithm, key: &SecretKey) -> Result<[u8; 3], KeyStoreError> {
    check_len(algorithm, key)?;
    let k = key.expose();
    let full: Vec<u8> = match algorithm {
        KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3 => crate::kcv::kcv_tdes(k)?.to_vec(),
        KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 => crate::kcv::kcv_aes(k)?.to_vec(),
        KeyAlgorithm::Sm4 => crate::kcv::kcv(crate::kcv::KeyAlgorithm::Sm4, k)?.to_vec(),
        KeyAlgorithm::HmacSha256 => crate::mac::hmac_sha256(k, &[0u8; 16]).to_vec(),
        KeyAlgorithm::Sm2 | KeyAlgorithm::EcdsaP256 => {
            asym::public_key_digest(algorithm, key)?.to_vec()
        }
    };
    match full.get(..3) {
        Some(&[a, b, c]) => Ok([a, b, c]),
        _ => Err(KeyStoreError::KeyLength {
            algorithm: algorithm.name(),
            actual: full.len(),
        }),
    }
}

fn check_len(algorithm: KeyAlgorithm, key: &SecretKey) -> Result<(), KeyStoreError> {
    match algorithm.symmetric_len() {
        Some(n) if n != key.len() => Err(KeyStoreError::KeyLength {
            algorithm: algorithm.name(),
            actual: key.len(),
        }),
        _ => Ok(()),
    }
}

impl KeyStore {
    /// Opens the store in `data_dir` (created if absent) under `lmk`, replaying the journal.
    ///
    /// Errors: [`KeyStoreError::WrongLmk`], [`KeyStoreError::Tampered`],
    /// [`KeyStoreError::MalformedRecord`], [`KeyStoreError::NotAJournal`], I/O.
    pub fn open(data_dir: &Path, lmk: Lmk) -> Result<Self, KeyStoreError> {
        let (journal, replay) = Journal::open(data_dir, &lmk)?;
        let mut keys = BTreeMap::new();
        for (seq, plain) in (0u64..).zip(replay.records.iter()) {
            match Record::decode(plain)
                .map_err(|reason| KeyStoreError::MalformedRecord { seq, reason })?
            {
                Record::Put { meta, sealed } => {
                    keys.insert(meta.header.alias.clone(), Entry { meta, sealed });
                }
                Record::State { alias, state } => {
                    let entry =
                        keys.get_mut(&alias)
                            .ok_or_else(|| KeyStoreError::MalformedRecord {
                                seq,
                                reason: String::from("state change for an unknown alias"),
                            })?;
                    entry.meta.state = state;
                    if state == KeyState::Deleted {
                        entry.sealed.clear();
                    }
                }
            }
        }
        Ok(Self {
            lmk,
            journal,
            keys,
            rng: SystemRandom::new(),
            torn_tail_len: replay.torn_tail_len,
        })
    }

    /// The LMK's check value (hex).
    #[must_use]
    pub fn lmk_kcv_hex(&self) -> String {
        self.lmk.kcv_hex()
    }

    /// Bytes of an incomplete last record discarded on open (a crash during a write).
    #[must_use]
    pub fn torn_tail_len(&self) -> u64 {
        self.torn_tail_len
    }

    /// Metadata of a live (enabled or disabled) key.
    ///
    /// Errors: [`KeyStoreError::KeyNotFound`] (also for deleted keys),
    /// [`KeyStoreError::InvalidAlias`] for an alias no key can have.
    pub fn get(&self, alias: &str) -> Result<&KeyMetadata, KeyStoreError> {
        // No stored key has an invalid alias; refusing it here keeps arbitrary caller text
        // (a pasted key or PAN, 100 kB, control characters) out of the KeyNotFound message.
        if !alias_is_valid(alias) {
            return Err(KeyStoreError::InvalidAlias);
        }
        match self.keys.get(alias) {
            Some(e) if e.meta.state != KeyState::Deleted => Ok(&e.meta),
            _ => Err(KeyStoreError::KeyNotFound {
                alias: alias.to_owned(),
            }),
        }
    }

    /// Metadata of every live key, by alias.
    #[must_use]
    pub fn list(&self) -> Vec<&KeyMetadata> {
        self.keys
            .values()
            .filter(|e| e.meta.state != KeyState::Deleted)
            .map(|e| &e.meta)
            .collect()
    }

    /// Generates a key for `header` with the system CSPRNG (TDES keys get odd parity) and
    /// stores it. Returns its metadata.
    ///
    /// Errors: [`KeyStoreError::InvalidAlias`], [`KeyStoreError::AliasExists`], I/O.
    pub fn generate(&mut self, header: KeyHeader) -> Result<KeyMetadata, KeyStoreError> {
        let key = match header.algorithm.symmetric_len() {
            Some(n) => {
                let mut bytes = Zeroizing::new(vec![0u8; n]);
                self.rng
                    .fill(&mut bytes)
                    .map_err(|_| KeyStoreError::Crypto(crate::error::Error::Random))?;
                if matches!(header.algorithm, KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3) {
                    crate::primitives::set_odd_parity(&mut bytes);
                }
                SecretKey::new(bytes)
            }
            None => asym::generate(header.algorithm)?,
        };
        self.insert(header, &key, None)
    }

    /// Forms a key as the XOR of 1..=[`COMPONENTS_MAX`] clear components (a key ceremony under
    /// dual control) and stores it; the caller may give the KCV the custodians expect.
    ///
    /// Errors: [`KeyStoreError::Components`], [`KeyStoreError::KeyLength`],
    /// [`KeyStoreError::KcvMismatch`], alias errors, I/O.
    pub fn import_components(
        &mut self,
        header: KeyHeader,
        components: &[&[u8]],
        expected_kcv: Option<[u8; 3]>,
    ) -> Result<KeyMetadata, KeyStoreError> {
        let (first, rest) = components.split_first().ok_or(KeyStoreError::Components {
            reason: "at least one component is needed",
        })?;
        if components.len() > COMPONENTS_MAX {
            return Err(KeyStoreError::Components {
                reason: "at most three components",
            });
        }
        let mut bytes = Zeroizing::new(first.to_vec());
        for c in rest {
            crate::primitives::xor_in_place(&mut bytes, c).map_err(|_| {
                KeyStoreError::Components {
                    reason: "components differ in length",
                }
            })?;
        }
        self.insert(header, &SecretKey::new(bytes), expected_kcv)
    }

    /// Stores clear `key` under `header` (crate-internal: generation, components, TR-31 import).
    pub(crate) fn insert(
        &mut self,
        header: KeyHeader,
        key: &SecretKey,
        expected_kcv: Option<[u8; 3]>,
    ) -> Result<KeyMetadata, KeyStoreError> {
        if !alias_is_valid(&header.alias) {
            return Err(KeyStoreError::InvalidAlias);
        }
        if let Some(existing) = self.keys.get(&header.alias) {
            if existing.meta.state != KeyState::Deleted {
                return Err(KeyStoreError::AliasExists {
                    alias: header.alias.clone(),
                });
            }
        } else if self.keys.len() >= KEYS_MAX {
            return Err(KeyStoreError::Full);
        }
        let kcv = key_check_value(header.algorithm, key)?;
        if let Some(expected) = expected_kcv
            && expected != kcv
        {
            return Err(KeyStoreError::KcvMismatch {
                alias: header.alias.clone(),
                expected: hex::encode_upper(expected),
                computed: hex::encode_upper(kcv),
            });
        }
        let sealed = self.lmk.seal(&header.aad(), key.expose())?;
        let meta = KeyMetadata {
            header,
            kcv,
            created_utc: utc_now(),
            state: KeyState::Enabled,
        };
        let record = Record::Put {
            meta: meta.clone(),
            sealed: sealed.clone(),
        };
        self.journal.append(&self.lmk, &record.encode())?;
        self.keys.insert(
            meta.header.alias.clone(),
            Entry {
                meta: meta.clone(),
                sealed,
            },
        );
        Ok(meta)
    }

    /// Changes a live key's state (enable, disable, delete); journaled before it takes effect.
    ///
    /// Errors: [`KeyStoreError::KeyNotFound`], I/O.
    pub fn set_state(
        &mut self,
        alias: &str,
        state: KeyState,
    ) -> Result<KeyMetadata, KeyStoreError> {
        self.get(alias)?;
        let record = Record::State {
            alias: alias.to_owned(),
            state,
        };
        self.journal.append(&self.lmk, &record.encode())?;
        let entry = self
            .keys
            .get_mut(alias)
            .ok_or_else(|| KeyStoreError::KeyNotFound {
                alias: alias.to_owned(),
            })?;
        entry.meta.state = state;
        if state == KeyState::Deleted {
            entry.sealed.clear();
        }
        Ok(entry.meta.clone())
    }

    /// Opens an enabled key for one operation (crate-internal).
    ///
    /// Errors: [`KeyStoreError::KeyNotFound`], [`KeyStoreError::KeyDisabled`],
    /// [`KeyStoreError::SealBroken`].
    pub(crate) fn load(&self, alias: &str) -> Result<(KeyMetadata, SecretKey), KeyStoreError> {
        let meta = self.get(alias)?;
        if meta.state == KeyState::Disabled {
            return Err(KeyStoreError::KeyDisabled {
                alias: alias.to_owned(),
            });
        }
        let entry = self
            .keys
            .get(alias)
            .ok_or_else(|| KeyStoreError::KeyNotFound {
                alias: alias.to_owned(),
            })?;
        let clear = self
            .lmk
            .open(&entry.meta.header.aad(), &entry.sealed)
            .map_err(|_| KeyStoreError::SealBroken {
                alias: alias.to_owned(),
            })?;
        Ok((entry.meta.clone(), SecretKey::new(clear)))
    }

    /// The system random generator the store uses (for TR-31 padding).
    pub(crate) fn rng(&self) -> &SystemRandom {
        &self.rng
    }
}
