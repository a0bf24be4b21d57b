//! The HSM's operations (`hsm::ops::Hsm`), named after AWS Payment Cryptography's control and
//! data planes. Every operation names its keys by alias, checks each key's TR-31 usage, mode of
//! use, algorithm and state, and appends one line to the audit log (whatever the outcome)
//! before answering. No operation returns clear key material or a clear PIN.

pub mod api;
mod error;
mod payments;

use std::path::Path;

pub use error::HsmError;
pub use payments::{
    ArpcRequest, ArqcRequest, MajorKeyDerivation, PinVerification, SessionKeyDerivation,
};

use crate::audit::{AuditEntry, AuditError, AuditKey, AuditLog, mask_pan};
use crate::keystore::{
    KeyAlgorithm, KeyHeader, KeyMetadata, KeyState, KeyStore, KeyUsage, ModeOfUse, SecretKey,
};
use crate::lmk::Lmk;
use crate::mac::Padding;
use crate::primitives::BlockAlgorithm;
use crate::tr31::Tr31Version;

/// Block cipher mode for `EncryptData` / `DecryptData` (no padding: whole blocks only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherMode {
    /// ECB (ISO/IEC 10116), one block at a time.
    Ecb,
    /// CBC (ISO/IEC 10116) with this IV (one block).
    Cbc {
        /// The initial vector, one cipher block.
        iv: Vec<u8>,
    },
}

/// What an operation gathered for its audit line.
#[derive(Default)]
pub(crate) struct Ctx {
    keys: Vec<AuditKey>,
    pan_masked: Option<String>,
}

impl Ctx {
    /// Records the PAN, masked.
    pub(crate) fn pan(&mut self, pan: &str) {
        self.pan_masked = Some(mask_pan(pan));
    }
}

/// The HSM: a key store and an audit log under one data directory.
#[derive(Debug)]
pub struct Hsm {
    store: KeyStore,
    audit: AuditLog,
    /// Audit lines written so far (lets the JSON layer audit requests refused before any run).
    audited: u64,
}

/// Which modes of use allow a kind of operation (`N` allows everything its usage implies).
pub(crate) mod modes {
    use crate::keystore::ModeOfUse::{self, B, C, D, E, G, N, S, T, V, X};
    /// Encrypting data or PIN blocks.
    pub const ENCRYPT: &[ModeOfUse] = &[B, E, N];
    /// Decrypting data or PIN blocks.
    pub const DECRYPT: &[ModeOfUse] = &[B, D, N];
    /// Generating MACs.
    pub const GENERATE: &[ModeOfUse] = &[C, G, N];
    /// Verifying MACs, PINs, cryptograms.
    pub const VERIFY: &[ModeOfUse] = &[C, V, N];
    /// Deriving keys (issuer master keys).
    pub const DERIVE: &[ModeOfUse] = &[X, N];
    /// Signing.
    pub const SIGN: &[ModeOfUse] = &[S, T, N];
    /// Verifying signatures.
    pub const VERIFY_SIGNATURE: &[ModeOfUse] = &[S, V, T, N];
    /// Exporting the public half of a key pair (signature or encryption).
    pub const PUBLIC_KEY: &[ModeOfUse] = &[S, V, T, N, B, D, E];
}

impl Hsm {
    /// Opens the key store and the audit log in `data_dir` under `lmk`.
    ///
    /// Errors: [`HsmError::Store`] (wrong LMK, altered journal, I/O), [`HsmError::Audit`].
    pub fn open(data_dir: &Path, lmk: Lmk) -> Result<Self, HsmError> {
        let store = KeyStore::open(data_dir, lmk)?;
        let audit = AuditLog::open(data_dir)?;
        Ok(Self {
            store,
            audit,
            audited: 0,
        })
    }

    /// The LMK's check value (hex).
    #[must_use]
    pub fn lmk_kcv_hex(&self) -> String {
        self.store.lmk_kcv_hex()
    }

    /// Read access to the key store (metadata only).
    #[must_use]
    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// Runs `f` and appends the audit line; an audit failure withholds the result.
    pub(crate) fn run<T>(
        &mut self,
        caller: &str,
        operation: &str,
        f: impl FnOnce(&mut KeyStore, &mut Ctx) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        let mut ctx = Ctx::default();
        let result = f(&mut self.store, &mut ctx);
        let outcome = match &result {
            Ok(_) => "OK",
            Err(e) => e.code(),
        };
        let entry = AuditEntry {
            caller: caller.to_owned(),
            operation: operation.to_owned(),
            keys: ctx.keys,
            pan_masked: ctx.pan_masked,
            outcome: outcome.to_owned(),
        };
        self.audit
            .append(&entry)
            .map_err(|e: AuditError| HsmError::Audit(e))?;
        self.audited += 1;
        result
    }

    /// Audits a request refused before any operation ran (unknown operation, bad field).
    pub(crate) fn audit_refused(
        &mut self,
        caller: &str,
        operation: &str,
        error: &HsmError,
    ) -> Result<(), HsmError> {
        let entry = AuditEntry {
            caller: caller.to_owned(),
            operation: operation.chars().take(64).collect(),
            keys: Vec::new(),
            pan_masked: None,
            outcome: error.code().to_owned(),
        };
        self.audit.append(&entry)?;
        self.audited += 1;
        Ok(())
    }

    /// Audit lines written since the HSM was opened.
    #[must_use]
    pub fn audited(&self) -> u64 {
        self.audited
    }

    /// `CreateKey` / `GenerateKey`: a fresh key from the system CSPRNG.
    ///
    /// Errors: [`HsmError::AliasExists`], alias syntax, I/O.
    pub fn create_key(&mut self, caller: &str, header: KeyHeader) -> Result<KeyMetadata, HsmError> {
        self.run(caller, "CreateKey", |store, ctx| {
            ctx.keys.push(AuditKey {
                alias: header.alias.clone(),
                kcv: None,
            });
            let meta = store.generate(header)?;
            note_kcv(ctx, &meta);
            Ok(meta)
        })
    }

    /// `ImportKeyComponents`: forms a key as the XOR of 1-3 clear components (key ceremony,
    /// payShield A4 style) and stores it; the custodians may give the KCV they expect. Input
    /// only: nothing clear comes back.
    ///
    /// Errors: [`HsmError::KcvMismatch`], component and alias errors.
    pub fn import_key_components(
        &mut self,
        caller: &str,
        header: KeyHeader,
        components: &[&[u8]],
        expected_kcv: Option<[u8; 3]>,
    ) -> Result<KeyMetadata, HsmError> {
        self.run(caller, "ImportKeyComponents", |store, ctx| {
            ctx.keys.push(AuditKey {
                alias: header.alias.clone(),
                kcv: None,
            });
            let meta = store.import_components(header, components, expected_kcv)?;
            note_kcv(ctx, &meta);
            Ok(meta)
        })
    }

    /// `GetKey`: metadata and KCV only.
    ///
    /// Errors: [`HsmError::KeyNotFound`].
    pub fn get_key(&mut self, caller: &str, alias: &str) -> Result<KeyMetadata, HsmError> {
        self.run(caller, "GetKey", |store, ctx| {
            let meta = store.get(alias)?.clone();
            ctx.keys.push(audit_key(&meta));
            Ok(meta)
        })
    }

    /// `ListKeys`: metadata of every live key.
    ///
    /// Errors: only an audit failure.
    pub fn list_keys(&mut self, caller: &str) -> Result<Vec<KeyMetadata>, HsmError> {
        self.run(caller, "ListKeys", |store, _| {
            Ok(store.list().into_iter().cloned().collect())
        })
    }

    /// `DeleteKey` / `DisableKey` / `EnableKey`.
    ///
    /// Errors: [`HsmError::KeyNotFound`], I/O.
    pub fn set_key_state(
        &mut self,
        caller: &str,
        alias: &str,
        state: KeyState,
    ) -> Result<KeyMetadata, HsmError> {
        let operation = match state {
            KeyState::Enabled => "EnableKey",
            KeyState::Disabled => "DisableKey",
            KeyState::Deleted => "DeleteKey",
        };
        self.run(caller, operation, |store, ctx| {
            ctx.keys.push(AuditKey {
                alias: alias.to_owned(),
                kcv: store.get(alias).ok().map(KeyMetadata::kcv_hex),
            });
            Ok(store.set_state(alias, state)?)
        })
    }

    /// `ImportKey`: a TR-31 key block under the KEK `kek_alias` (K0/K1), stored as `alias`; the
    /// caller may give the KCV it expects.
    ///
    /// Errors: KEK usage/mode, TR-31 errors, [`HsmError::KcvMismatch`], alias errors.
    pub fn import_key(
        &mut self,
        caller: &str,
        kek_alias: &str,
        key_block: &str,
        alias: &str,
        expected_kcv: Option<[u8; 3]>,
    ) -> Result<KeyMetadata, HsmError> {
        self.run(caller, "ImportKey", |store, ctx| {
            ctx.keys.push(audit_alias(store, kek_alias));
            ctx.keys.push(AuditKey {
                alias: alias.to_owned(),
                kcv: None,
            });
            let meta = store.import_tr31(kek_alias, key_block, alias, expected_kcv)?;
            note_kcv(ctx, &meta);
            Ok(meta)
        })
    }

    /// `ExportKey`: the key `alias` as a TR-31 block of `version` under the KEK `kek_alias`.
    ///
    /// Errors: KEK usage/mode, [`HsmError::NotExportable`], TR-31 errors.
    pub fn export_key(
        &mut self,
        caller: &str,
        kek_alias: &str,
        alias: &str,
        version: Tr31Version,
    ) -> Result<(String, KeyMetadata), HsmError> {
        self.run(caller, "ExportKey", |store, ctx| {
            ctx.keys.push(audit_alias(store, kek_alias));
            ctx.keys.push(audit_alias(store, alias));
            let block = store.export_tr31(kek_alias, alias, version)?;
            Ok((block, store.get(alias)?.clone()))
        })
    }

    /// `GenerateMac`: by the key's usage — `M1` ISO 9797-1 algorithm 1 (TDES/AES/SM4 CBC-MAC),
    /// `M3` algorithm 3 (retail MAC, 2-key TDES), `M6` CMAC (TDES/AES), `M7` HMAC-SHA-256.
    /// `padding` applies to M1/M3 (ISO 9797-1 §6.3). Returns the full MAC and the key's KCV.
    ///
    /// Errors: [`HsmError::KeyUsage`], [`HsmError::ModeOfUse`], [`HsmError::KeyAlgorithm`].
    pub fn generate_mac(
        &mut self,
        caller: &str,
        alias: &str,
        data: &[u8],
        padding: Padding,
    ) -> Result<(Vec<u8>, KeyMetadata), HsmError> {
        self.run(caller, "GenerateMac", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                MAC_USAGES,
                modes::GENERATE,
                "MAC generation",
            )?;
            Ok((compute_mac(&meta, &key, data, padding)?, meta))
        })
    }

    /// `VerifyMac`: as [`Hsm::generate_mac`], comparing in constant time; `mac` may be
    /// left-truncated to 4 or more bytes.
    ///
    /// Errors: [`HsmError::VerificationFailed`] and those of `generate_mac`.
    pub fn verify_mac(
        &mut self,
        caller: &str,
        alias: &str,
        data: &[u8],
        mac: &[u8],
        padding: Padding,
    ) -> Result<KeyMetadata, HsmError> {
        self.run(caller, "VerifyMac", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                MAC_USAGES,
                modes::VERIFY,
                "MAC verification",
            )?;
            let computed = compute_mac(&meta, &key, data, padding)?;
            crate::mac::verify_truncated(&computed, mac)?;
            Ok(meta)
        })
    }

    /// `EncryptData`: a `D0` key (TDES, AES or SM4), ECB or CBC, whole blocks (no padding).
    ///
    /// Errors: usage/mode/algorithm, [`HsmError::Crypto`] for a partial block or a bad IV.
    pub fn encrypt_data(
        &mut self,
        caller: &str,
        alias: &str,
        mode: &CipherMode,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        self.run(caller, "EncryptData", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::D0],
                modes::ENCRYPT,
                "encryption",
            )?;
            let algorithm = block_algorithm(&meta)?;
            Ok(match mode {
                CipherMode::Ecb => crate::primitives::ecb_encrypt(algorithm, key.expose(), data)?,
                CipherMode::Cbc { iv } => {
                    crate::primitives::cbc_encrypt(algorithm, key.expose(), iv, data)?
                }
            })
        })
    }

    /// `DecryptData`: as [`Hsm::encrypt_data`], the other way.
    ///
    /// Errors: as `encrypt_data`.
    pub fn decrypt_data(
        &mut self,
        caller: &str,
        alias: &str,
        mode: &CipherMode,
        data: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        self.run(caller, "DecryptData", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::D0],
                modes::DECRYPT,
                "decryption",
            )?;
            let algorithm = block_algorithm(&meta)?;
            Ok(match mode {
                CipherMode::Ecb => crate::primitives::ecb_decrypt(algorithm, key.expose(), data)?,
                CipherMode::Cbc { iv } => {
                    crate::primitives::cbc_decrypt(algorithm, key.expose(), iv, data)?
                }
            })
        })
    }
}

const MAC_USAGES: &[KeyUsage] = &[KeyUsage::M1, KeyUsage::M3, KeyUsage::M6, KeyUsage::M7];

fn audit_key(meta: &KeyMetadata) -> AuditKey {
    AuditKey {
        alias: meta.header.alias.clone(),
        kcv: Some(meta.kcv_hex()),
    }
}

fn audit_alias(store: &KeyStore, alias: &str) -> AuditKey {
    AuditKey {
        alias: alias.to_owned(),
        kcv: store.get(alias).ok().map(KeyMetadata::kcv_hex),
    }
}

fn note_kcv(ctx: &mut Ctx, meta: &KeyMetadata) {
    if let Some(k) = ctx
        .keys
        .iter_mut()
        .rev()
        .find(|k| k.alias == meta.header.alias)
    {
        k.kcv = Some(meta.kcv_hex());
    }
}

fn usage_list(usages: &[KeyUsage]) -> String {
    usages
        .iter()
        .map(|u| u.code())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Loads an enabled key for an operation after checking its usage and mode of use; records it
/// for the audit line first, so refusals are audited with the key's KCV.
pub(crate) fn use_key(
    store: &KeyStore,
    ctx: &mut Ctx,
    alias: &str,
    usages: &[KeyUsage],
    modes: &[ModeOfUse],
    operation: &'static str,
) -> Result<(KeyMetadata, SecretKey), HsmError> {
    ctx.keys.push(audit_alias(store, alias));
    let meta = store.get(alias)?;
    if !usages.contains(&meta.header.usage) {
        return Err(HsmError::KeyUsage {
            alias: alias.to_owned(),
            expected: usage_list(usages),
            actual: meta.header.usage.code().to_owned(),
        });
    }
    if !modes.contains(&meta.header.mode) {
        return Err(HsmError::ModeOfUse {
            alias: alias.to_owned(),
            mode: char::from(meta.header.mode.code()),
            operation,
        });
    }
    store.load(alias).map_err(HsmError::from)
}

pub(crate) fn wrong_algorithm(meta: &KeyMetadata, expected: &'static str) -> HsmError {
    HsmError::KeyAlgorithm {
        alias: meta.header.alias.clone(),
        expected,
        actual: meta.header.algorithm.name(),
    }
}

fn block_algorithm(meta: &KeyMetadata) -> Result<BlockAlgorithm, HsmError> {
    match meta.header.algorithm {
        KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3 => Ok(BlockAlgorithm::Tdes),
        KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256 => Ok(BlockAlgorithm::Aes),
        KeyAlgorithm::Sm4 => Ok(BlockAlgorithm::Sm4),
        _ => Err(wrong_algorithm(meta, "TDES, AES or SM4")),
    }
}

fn compute_mac(
    meta: &KeyMetadata,
    key: &SecretKey,
    data: &[u8],
    padding: Padding,
) -> Result<Vec<u8>, HsmError> {
    let k = key.expose();
    Ok(match meta.header.usage {
        KeyUsage::M1 => crate::mac::mac_alg1(block_algorithm(meta)?, k, data, padding)?,
        KeyUsage::M3 if meta.header.algorithm == KeyAlgorithm::Tdes2 => {
            crate::mac::mac_alg3(k, data, padding)?.to_vec()
        }
        KeyUsage::M3 => return Err(wrong_algorithm(meta, "TDES_2KEY")),
        KeyUsage::M6 => match block_algorithm(meta)? {
            BlockAlgorithm::Aes => crate::mac::cmac_aes(k, data)?.to_vec(),
            BlockAlgorithm::Tdes => crate::mac::cmac_tdes(k, data)?.to_vec(),
            _ => return Err(wrong_algorithm(meta, "TDES or AES")),
        },
        KeyUsage::M7 if meta.header.algorithm == KeyAlgorithm::HmacSha256 => {
            crate::mac::hmac_sha256(k, data).to_vec()
        }
        KeyUsage::M7 => return Err(wrong_algorithm(meta, "HMAC_SHA256")),
        other => {
            return Err(HsmError::KeyUsage {
                alias: meta.header.alias.clone(),
                expected: usage_list(MAC_USAGES),
                actual: other.code().to_owned(),
            });
        }
    })
}
