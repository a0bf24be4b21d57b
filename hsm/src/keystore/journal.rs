//! The key store's append-only journal file: one LMK-sealed record per change, fsync'd before
//! the change is acknowledged.
//!
//! Layout: a 16-byte file header `"HSMKEYS" 0x01` ‖ LMK KCV (3 bytes) ‖ 5 zero bytes, then
//! records `len (u32, big-endian)` ‖ `nonce ‖ ciphertext ‖ tag` (AES-256-GCM under the LMK,
//! additional data `"hsm-journal-v1"` ‖ record sequence number as u64 big-endian, so records
//! can be neither altered, reordered nor dropped from the middle).
//!
//! Crash rule: a write is a prefix of the record at the end of the file. On open, replay stops
//! at the first incomplete record (short length field, short payload, or an all-zero tail left
//! by a filesystem that extended the file before writing it), and the file is cut back to the
//! last whole record. A whole record that fails authentication is tampering, not a crash, and
//! refuses the open.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::KeyStoreError;
use crate::lmk::{Lmk, SEAL_OVERHEAD};

/// File name of the journal inside the data directory.
pub const JOURNAL_FILE: &str = "keys.journal";
/// Largest record payload accepted, in bytes.
pub const RECORD_LEN_MAX: usize = 64 * 1024;
/// Largest journal file accepted on open, in bytes.
pub const JOURNAL_LEN_MAX: u64 = 256 * 1024 * 1024;
const MAGIC: &[u8; 8] = b"HSMKEYS\x01";
const FILE_HEADER_LEN: usize = 16;

/// An open journal positioned at its end.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    next_seq: u64,
    /// Set when a failed append could not be rolled back: the file may end in a partial frame,
    /// so no further record may follow it until the store is reopened (which cuts the tail).
    poisoned: bool,
}

/// What replay found.
pub(crate) struct Replay {
    /// Record plaintexts in order.
    pub records: Vec<Zeroizing<Vec<u8>>>,
    /// Bytes cut from a torn tail (0 when the file ended cleanly).
    pub torn_tail_len: u64,
}

fn record_aad(seq: u64) -> Vec<u8> {
    let mut aad = b"hsm-journal-v1".to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    aad
}

impl Journal {
    /// Opens (creating if absent) the journal in `dir` and replays it.
    ///
    /// Errors: `Io`, `NotAJournal`, `WrongLmk` (the file's LMK KCV differs), `Tampered`
    /// (a whole record fails authentication), `JournalTooLarge`.
    pub(crate) fn open(dir: &Path, lmk: &Lmk) -> Result<(Self, Replay), KeyStoreError> {
        let path = dir.join(JOURNAL_FILE);
        let io = |source| KeyStoreError::Io {
            path: path.clone(),
            source,
        };
        if !path.exists() {
            create(dir, &path, lmk).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len > JOURNAL_LEN_MAX {
            return Err(KeyStoreError::JournalTooLarge { len });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        if bytes.len() < FILE_HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(KeyStoreError::NotAJournal { path });
        }
        let journal_kcv = [bytes[8], bytes[9], bytes[10]];
        if journal_kcv != lmk.kcv() {
            return Err(KeyStoreError::WrongLmk {
                journal_kcv: hex::encode_upper(journal_kcv),
                lmk_kcv: lmk.kcv_hex(),
            });
        }
        let mut records = Vec::new();
        let mut offset = FILE_HEADER_LEN;
        let mut seq = 0u64;
        let torn_at = loop {
            let rest = &bytes[offset..];
            if rest.is_empty() {
                break None;
            }
            if rest.iter().all(|&b| b == 0) || rest.len() < 4 {
                break Some(offset);
            }
            let record_len =
                usize::try_from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
                    .unwrap_or(usize::MAX);
            if !(SEAL_OVERHEAD..=RECORD_LEN_MAX).contains(&record_len) {
                return Err(KeyStoreError::Tampered { seq, offset });
            }
            let Some(sealed) = rest.get(4..4 + record_len) else {
                break Some(offset);
            };
            let plain = lmk
                .open(&record_aad(seq), sealed)
                .map_err(|_| KeyStoreError::Tampered { seq, offset })?;
            records.push(plain);
            offset += 4 + record_len;
            seq += 1;
        };
        let mut torn_tail_len = 0;
        if let Some(cut) = torn_at {
            let cut = u64::try_from(cut).unwrap_or(u64::MAX);
            torn_tail_len = len.saturating_sub(cut);
            file.set_len(cut).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Self {
                file,
                path,
                next_seq: seq,
                poisoned: false,
            },
            Replay {
                records,
                torn_tail_len,
            },
        ))
    }

    /// Seals `plaintext` as the next record, appends it and fsyncs the file.
    ///
    /// Errors: `Io`, `Lmk` (random generator), `RecordTooLarge`.
    pub(crate) fn append(&mut self, lmk: &Lmk, plaintext: &[u8]) -> Result<(), KeyStoreError> {
        let sealed = lmk.seal(&record_aad(self.next_seq), plaintext)?;
        if sealed.len() > RECORD_LEN_MAX {
            return Err(KeyStoreError::RecordTooLarge { len: sealed.len() });
        }
        let len = u32::try_from(sealed.len())
            .map_err(|_| KeyStoreError::RecordTooLarge { len: sealed.len() })?;
        let mut frame = Vec::with_capacity(4 + sealed.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&sealed);
        let path = self.path.clone();
        let io = |source| KeyStoreError::Io { path, source };
        if self.poisoned {
            return Err(io(std::io::Error::other(
                "an earlier journal write failed and could not be undone; reopen the key store",
            )));
        }
        let end = self
            .file
            .stream_position()
            .map_err(io_error_for(&self.path))?;
        let written = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Not acknowledged. Cut the partial frame so that the next record follows the last
            // good one: left in place, a reopen would read it as tampering, or cut the records
            // acknowledged after it as a torn tail.
            let rollback = self
                .file
                .set_len(end)
                .and_then(|()| self.file.seek(SeekFrom::Start(end)))
                .and_then(|_| self.file.sync_data());
            self.poisoned = rollback.is_err();
            return Err(io(source));
        }
        self.next_seq += 1;
        Ok(())
    }
}

fn io_error_for(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the file header to a temporary file, fsyncs it, renames it into place and fsyncs the
/// directory, so a crash never leaves a half-written header.
fn create(dir: &Path, path: &Path, lmk: &Lmk) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
    let mut header = [0u8; FILE_HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..11].copy_from_slice(&lmk.kcv());
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&header)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
