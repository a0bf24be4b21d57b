//! The append-only audit log: one JSON line per operation under the data directory
//! (`audit.jsonl`), fsync'd before the operation's answer is returned.
//!
//! A line holds: `time_utc` (RFC 3339), `caller`, `operation`, `key_alias` and `key_kcv` of each
//! key used, `pan` masked to its first 6 and last 4 digits when the operation had one, and
//! `outcome` (`OK` or the error code). Never key bytes, PINs, PIN blocks, cryptograms, MACs or a
//! clear PAN: the entry type has no field that could carry them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

/// File name of the audit log inside the data directory.
pub const AUDIT_FILE: &str = "audit.jsonl";

/// A failure to write the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log could not be opened, written or synced.
    #[error("audit log I/O on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A key used by an operation, as the audit log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditKey {
    /// The key's alias.
    pub alias: String,
    /// The key's KCV (hex), when known.
    pub kcv: Option<String>,
}

/// One audited operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who asked (the authenticated caller name).
    pub caller: String,
    /// The operation's API name (e.g. `GenerateMac`).
    pub operation: String,
    /// Keys used, in request order.
    pub keys: Vec<AuditKey>,
    /// The PAN masked by [`mask_pan`], when the operation had one.
    pub pan_masked: Option<String>,
    /// `OK` or the error code.
    pub outcome: String,
}

/// Masks a PAN to its first 6 and last 4 digits (PCI DSS 3.4); anything shorter than 11
/// characters is masked whole. Non-digits are masked too.
#[must_use]
pub fn mask_pan(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let shown = n >= 11 && (i < 6 || i >= n - 4) && c.is_ascii_digit();
            if shown { *c } else { '*' }
        })
        .collect()
}

/// The open audit log.
pub struct AuditLog {
    file: File,
    path: PathBuf,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .finish()
    }
}

impl AuditLog {
    /// Opens (creating) `audit.jsonl` in `data_dir` for appending.
    ///
    /// Errors: [`AuditError::Io`].
    pub fn open(data_dir: &Path) -> Result<Self, AuditError> {
        let path = data_dir.join(AUDIT_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Self { file, path })
    }

    /// The log's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` as one JSON line stamped with the current UTC time, then fsyncs.
    ///
    /// Errors: [`AuditError::Io`].
    pub fn append(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        let keys: Vec<_> = entry
            .keys
            .iter()
            .map(|k| {
                // An alias no key can have is caller text (perhaps a pasted key or PAN): not logged.
                let alias = if crate::keystore::alias_is_valid(&k.alias) {
                    k.alias.as_str()
                } else {
                    "(invalid alias)"
                };
                json!({"alias": alias, "kcv": k.kcv})
            })
            .collect();
        let mut line = json!({
            "time_utc": crate::keystore::utc_now(),
            "caller": entry.caller,
            "operation": entry.operation,
            "keys": keys,
            "pan": entry.pan_masked,
            "outcome": entry.outcome,
        })
        .to_string();
        line.push('\n');
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(line.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_masking_keeps_first_six_and_last_four() {
        assert_eq!(mask_pan("6214830112345678"), "621483******5678");
        assert_eq!(mask_pan("4000123456789"), "400012***6789");
        assert_eq!(mask_pan("1234"), "****");
    }

    #[test]
    fn lines_are_json_and_fsynced_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(dir.path()).unwrap();
        for op in ["GenerateMac", "VerifyMac"] {
            log.append(&AuditEntry {
                caller: "teller".into(),
                operation: op.into(),
                keys: vec![AuditKey {
                    alias: "mac-1".into(),
                    kcv: Some("ABCDEF".into()),
                }],
                pan_masked: None,
                outcome: "OK".into(),
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(AUDIT_FILE)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["operation"], "VerifyMac");
        assert_eq!(lines[0]["keys"][0]["kcv"], "ABCDEF");
    }
}
