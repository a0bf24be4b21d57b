//! Key import and export as TR-31 key blocks under a key-encryption key in the store.
//!
//! The KEK must have usage `K0` (key encryption) or `K1` (TR-31 KBPK); import needs mode `B` or
//! `D` (unwrap), export mode `B` or `E` (wrap). The imported key takes its usage, algorithm,
//! mode, version and exportability from the block's header; export refuses keys whose
//! exportability is `N`.

use super::{
    Exportability, KeyAlgorithm, KeyHeader, KeyMetadata, KeyStore, KeyStoreError, KeyUsage,
    ModeOfUse,
};
use crate::tr31::{self, Tr31Error, Tr31Header, Tr31Version};

/// Why an import or export failed: the store's reasons or the key block's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// A key-store failure (unknown alias, disabled key, KCV mismatch, I/O...).
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    /// The key block is malformed, fails its MAC, or holds an unsupported key.
    #[error(transparent)]
    Tr31(#[from] Tr31Error),
    /// The KEK's usage is not K0/K1.
    #[error("key '{alias}' has usage {actual}; expected {expected}")]
    KeyUsage {
        /// The KEK's alias.
        alias: String,
        /// Usages accepted.
        expected: String,
        /// The key's usage.
        actual: String,
    },
    /// The key's mode of use forbids the operation.
    #[error("key '{alias}' mode of use '{mode}' does not allow {operation}")]
    ModeOfUse {
        /// The key's alias.
        alias: String,
        /// The key's mode of use.
        mode: char,
        /// The operation refused.
        operation: &'static str,
    },
    /// The key's exportability is `N`.
    #[error("key '{alias}' is not exportable")]
    NotExportable {
        /// The key's alias.
        alias: String,
    },
    /// Key pairs travel in TR-34 / PKCS#8, not TR-31: not supported here.
    #[error("key '{alias}' is a key pair; only symmetric keys travel as TR-31 blocks")]
    KeyPairNotTransportable {
        /// The key's alias.
        alias: String,
    },
}

fn check_kek(
    meta: &KeyMetadata,
    modes: &[ModeOfUse],
    operation: &'static str,
) -> Result<(), TransportError> {
    let h = &meta.header;
    if !matches!(h.usage, KeyUsage::K0 | KeyUsage::K1) {
        return Err(TransportError::KeyUsage {
            alias: h.alias.clone(),
            expected: String::from("K0 or K1"),
            actual: h.usage.code().to_owned(),
        });
    }
    if !modes.contains(&h.mode) {
        return Err(TransportError::ModeOfUse {
            alias: h.alias.clone(),
            mode: char::from(h.mode.code()),
            operation,
        });
    }
    Ok(())
}

impl KeyStore {
    /// Imports the key in a TR-31 `block` protected by the KEK `kek_alias`, storing it as
    /// `alias`. With `expected_kcv`, the unwrapped key's KCV must match.
    ///
    /// Errors: KEK lookup/usage/mode, every [`Tr31Error`], [`KeyStoreError::KcvMismatch`],
    /// alias errors, I/O.
    pub fn import_tr31(
        &mut self,
        kek_alias: &str,
        block: &str,
        alias: &str,
        expected_kcv: Option<[u8; 3]>,
    ) -> Result<KeyMetadata, TransportError> {
        let (kek_meta, kek) = self.load(kek_alias)?;
        check_kek(&kek_meta, &[ModeOfUse::B, ModeOfUse::D], "unwrap")?;
        let (header, key) = tr31::unwrap(kek_meta.header.algorithm, &kek, block)?;
        let unsupported =
            |field: &'static str, value: String| Tr31Error::Unsupported { field, value };
        let key_header = KeyHeader {
            alias: alias.to_owned(),
            algorithm: KeyAlgorithm::from_tr31(header.algorithm, key.len()).ok_or(
                Tr31Error::UnsupportedKey {
                    algorithm: char::from(header.algorithm),
                    len_bytes: key.len(),
                },
            )?,
            usage: KeyUsage::from_code(&header.usage_str())
                .ok_or_else(|| unsupported("key usage", header.usage_str()))?,
            mode: ModeOfUse::from_code(header.mode)
                .ok_or_else(|| unsupported("mode of use", char::from(header.mode).to_string()))?,
            version: header.key_version,
            exportability: Exportability::from_code(header.exportability).ok_or_else(|| {
                unsupported(
                    "exportability",
                    char::from(header.exportability).to_string(),
                )
            })?,
        };
        Ok(self.insert(key_header, &key, expected_kcv)?)
    }

    /// Exports the key `alias` as a TR-31 block of `version` under the KEK `kek_alias` (version
    /// D needs an AES KEK; A, B, C a TDES KEK). The key length is masked by random padding.
    ///
    /// Errors: lookup/usage/mode, [`TransportError::NotExportable`], key pairs, TR-31 errors.
    pub fn export_tr31(
        &self,
        kek_alias: &str,
        alias: &str,
        version: Tr31Version,
    ) -> Result<String, TransportError> {
        let (kek_meta, kek) = self.load(kek_alias)?;
        check_kek(&kek_meta, &[ModeOfUse::B, ModeOfUse::E], "wrap")?;
        let (meta, key) = self.load(alias)?;
        let h = &meta.header;
        if h.exportability == Exportability::NonExportable {
            return Err(TransportError::NotExportable {
                alias: h.alias.clone(),
            });
        }
        if h.algorithm.symmetric_len().is_none() {
            return Err(TransportError::KeyPairNotTransportable {
                alias: h.alias.clone(),
            });
        }
        let usage = h.usage.code().as_bytes();
        let header = Tr31Header {
            version,
            usage: [usage[0], usage[1]],
            algorithm: h.algorithm.tr31_code(),
            mode: h.mode.code(),
            key_version: h.version,
            exportability: h.exportability.code(),
            blocks: Vec::new(),
        };
        Ok(tr31::wrap(
            kek_meta.header.algorithm,
            &kek,
            &header,
            &key,
            self.rng(),
        )?)
    }
}
