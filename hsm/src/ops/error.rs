//! `HsmError`: the error of every HSM operation, with a stable code per variant for the HTTP
//! layer and the audit log. Messages name aliases, fields, usages and KCVs; never key bytes,
//! PINs, PIN blocks or a PAN.

use crate::audit::AuditError;
use crate::keystore::{KeyStoreError, TransportError};
use crate::tr31::Tr31Error;

/// A failed HSM operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// No live key has this alias.
    #[error("no key with alias '{alias}'")]
    KeyNotFound {
        /// The alias asked for.
        alias: String,
    },
    /// The key is disabled.
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
    /// The key's TR-31 usage does not fit the operation.
    #[error("key '{alias}' has usage {actual}; this operation needs {expected}")]
    KeyUsage {
        /// The key's alias.
        alias: String,
        /// Usages the operation accepts.
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
        /// What was refused.
        operation: &'static str,
    },
    /// The key's algorithm does not fit the operation or its parameters.
    #[error("key '{alias}' is {actual}; this operation needs {expected}")]
    KeyAlgorithm {
        /// The key's alias.
        alias: String,
        /// Algorithms accepted.
        expected: &'static str,
        /// The key's algorithm.
        actual: &'static str,
    },
    /// The key may not leave the HSM.
    #[error("key '{alias}' is not exportable")]
    NotExportable {
        /// The key's alias.
        alias: String,
    },
    /// The key's KCV differs from the one the caller expected.
    #[error("KCV mismatch for '{alias}': expected {expected}, computed {computed}")]
    KcvMismatch {
        /// The key's alias.
        alias: String,
        /// Expected KCV (hex).
        expected: String,
        /// Computed KCV (hex).
        computed: String,
    },
    /// A TR-31 key block is malformed, unauthentic or unsupported.
    #[error(transparent)]
    Tr31(Tr31Error),
    /// A cryptogram, MAC, PIN or signature did not verify.
    #[error("verification failed")]
    VerificationFailed,
    /// A hex field is not hex (odd length or a non-hex character).
    #[error("field '{field}' is not valid hex: {reason}")]
    InvalidHex {
        /// The request field.
        field: String,
        /// What is wrong (length or index, never the value).
        reason: String,
    },
    /// A request field is missing or out of range.
    #[error("field '{field}': {reason}")]
    InvalidRequest {
        /// The request field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// No operation has this name.
    #[error("unknown operation '{name}'")]
    UnknownOperation {
        /// The name asked for.
        name: String,
    },
    /// A crypto construction refused its input (lengths, formats).
    #[error(transparent)]
    Crypto(crate::error::Error),
    /// A key-store failure not listed above (journal I/O, sealing, alias syntax).
    #[error(transparent)]
    Store(KeyStoreError),
    /// The audit log could not be written; the operation's result is withheld.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl HsmError {
    /// The stable code of the error (e.g. `KEY_NOT_FOUND`), for APIs and the audit log.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyNotFound { .. } => "KEY_NOT_FOUND",
            Self::KeyDisabled { .. } => "KEY_DISABLED",
            Self::AliasExists { .. } => "ALIAS_EXISTS",
            Self::KeyUsage { .. } => "KEY_USAGE",
            Self::ModeOfUse { .. } => "KEY_MODE_OF_USE",
            Self::KeyAlgorithm { .. } => "KEY_ALGORITHM",
            Self::NotExportable { .. } => "KEY_NOT_EXPORTABLE",
            Self::KcvMismatch { .. } => "KCV_MISMATCH",
            Self::Tr31(Tr31Error::MacMismatch) => "TR31_MAC_MISMATCH",
            Self::Tr31(_) => "TR31_INVALID",
            Self::VerificationFailed => "VERIFICATION_FAILED",
            Self::InvalidHex { .. } => "INVALID_HEX",
            Self::InvalidRequest { .. } => "INVALID_REQUEST",
            Self::UnknownOperation { .. } => "UNKNOWN_OPERATION",
            Self::Crypto(_) => "CRYPTO_INPUT",
            Self::Store(KeyStoreError::InvalidAlias) => "INVALID_ALIAS",
            Self::Store(KeyStoreError::KeyLength { .. } | KeyStoreError::Components { .. }) => {
                "INVALID_KEY_MATERIAL"
            }
            Self::Store(KeyStoreError::Full) => "KEY_STORE_FULL",
            Self::Store(_) => "KEY_STORE",
            Self::Audit(_) => "AUDIT_LOG",
        }
    }

    /// The HTTP status for the error: 404 unknown key or operation, 409 alias taken, 500 store
    /// or audit failure, 400 otherwise.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self {
            Self::KeyNotFound { .. } | Self::UnknownOperation { .. } => 404,
            Self::AliasExists { .. } => 409,
            Self::Store(
                KeyStoreError::InvalidAlias
                | KeyStoreError::KeyLength { .. }
                | KeyStoreError::Components { .. }
                | KeyStoreError::Full,
            ) => 400,
            Self::Store(_) | Self::Audit(_) => 500,
            _ => 400,
        }
    }
}

impl From<crate::error::Error> for HsmError {
    fn from(e: crate::error::Error) -> Self {
        match e {
            crate::error::Error::VerificationFailed => Self::VerificationFailed,
            other => Self::Crypto(other),
        }
    }
}

impl From<KeyStoreError> for HsmError {
    fn from(e: KeyStoreError) -> Self {
        match e {
            KeyStoreError::KeyNotFound { alias } => Self::KeyNotFound { alias },
            KeyStoreError::KeyDisabled { alias } => Self::KeyDisabled { alias },
            KeyStoreError::AliasExists { alias } => Self::AliasExists { alias },
            KeyStoreError::KcvMismatch {
                alias,
                expected,
                computed,
            } => Self::KcvMismatch {
                alias,
                expected,
                computed,
            },
            KeyStoreError::Crypto(c) => c.into(),
            other => Self::Store(other),
        }
    }
}

impl From<Tr31Error> for HsmError {
    fn from(e: Tr31Error) -> Self {
        match e {
            Tr31Error::Crypto(c) => c.into(),
            other => Self::Tr31(other),
        }
    }
}

impl From<TransportError> for HsmError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Store(s) => s.into(),
            TransportError::Tr31(t) => t.into(),
            TransportError::KeyUsage {
                alias,
                expected,
                actual,
            } => Self::KeyUsage {
                alias,
                expected,
                actual,
            },
            TransportError::ModeOfUse {
                alias,
                mode,
                operation,
            } => Self::ModeOfUse {
                alias,
                mode,
                operation,
            },
            TransportError::NotExportable { alias } => Self::NotExportable { alias },
            TransportError::KeyPairNotTransportable { alias } => Self::KeyAlgorithm {
                alias,
                expected: "a symmetric key",
                actual: "a key pair",
            },
        }
    }
}
