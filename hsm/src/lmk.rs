//! The local master key (LMK): the one AES-256 key under which every stored key is sealed.
//!
//! The LMK is loaded from the `HSM_LMK_HEX` environment variable (64 hex characters) or from a
//! file holding the same hex (mode 0600 or stricter: a file readable by group or others is
//! refused). It never lives in the repository. Sealing is AES-256-GCM (`ring`, NIST SP 800-38D)
//! with a fresh random 96-bit nonce per seal and caller-supplied additional authenticated data,
//! so a stored key cannot be moved to another header and a wrong LMK is detected by the tag,
//! never turned into garbage keys. The LMK's check value (KCV) is the first 3 bytes of
//! AES-CMAC(LMK, 16 zero bytes) (ANSI X9.24-1:2017 CMAC KCV), shown at start-up.

use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Name of the environment variable holding the LMK as 64 hex characters.
pub const LMK_ENV: &str = "HSM_LMK_HEX";
/// LMK length in bytes (AES-256).
pub const LMK_LEN: usize = 32;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext: nonce (12) + tag (16).
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Largest LMK file accepted, in bytes (64 hex characters plus whitespace).
pub const LMK_FILE_LEN_MAX: u64 = 256;

/// A failure to load the LMK or to seal/open under it. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmkError {
    /// The environment variable is not set.
    #[error("the LMK is not configured: set {LMK_ENV} or pass --lmk-file")]
    NotConfigured,
    /// The hex text is not exactly 64 hex characters (the text is never echoed).
    #[error(
        "the LMK must be {expected_chars} hex characters; got {actual_chars} characters{detail}"
    )]
    BadHex {
        /// Characters expected (64).
        expected_chars: usize,
        /// Characters received, after trimming whitespace.
        actual_chars: usize,
        /// Extra detail ("" or ", with a non-hex character").
        detail: &'static str,
    },
    /// The LMK file could not be read.
    #[error("cannot read the LMK file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The LMK file is readable or writable by group or others (must be 0600 or stricter).
    #[error("the LMK file {path} has mode {mode:o}; it must be 0600 or stricter")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The LMK file is larger than [`LMK_FILE_LEN_MAX`].
    #[error("the LMK file {path} is {len} bytes; at most {LMK_FILE_LEN_MAX} expected")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
    /// A sealed value failed authentication: wrong LMK, or the value or its header was altered.
    #[error("authentication under the LMK failed (wrong LMK or altered data)")]
    Authentication,
}

/// The local master key. `Debug` shows only its KCV.
pub struct Lmk {
    key: LessSafeKey,
    kcv: [u8; 3],
    rng: SystemRandom,
}

impl std::fmt::Debug for Lmk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lmk").field("kcv", &self.kcv_hex()).finish()
    }
}

impl Lmk {
    /// Builds the LMK from 32 raw bytes.
    ///
    /// Errors: [`LmkError::Authentication`] only if `ring` or the CMAC refuses the key, which
    /// they do not for 32 bytes.
    pub fn from_bytes(bytes: &[u8; LMK_LEN]) -> Result<Self, LmkError> {
        let kcv_full =
            crate::mac::cmac_aes(bytes, &[0u8; 16]).map_err(|_| LmkError::Authentication)?;
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| LmkError::Authentication)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            kcv: [kcv_full[0], kcv_full[1], kcv_full[2]],
            rng: SystemRandom::new(),
        })
    }

    /// Parses 64 hex characters (either case, surrounding whitespace ignored).
    ///
    /// Errors: [`LmkError::BadHex`] naming the length only.
    pub fn from_hex(text: &str) -> Result<Self, LmkError> {
        let text = text.trim();
        let bad = |detail| LmkError::BadHex {
            expected_chars: 2 * LMK_LEN,
            actual_chars: text.chars().count(),
            detail,
        };
        if text.len() != 2 * LMK_LEN {
            return Err(bad(""));
        }
        let mut bytes = Zeroizing::new([0u8; LMK_LEN]);
        hex::decode_to_slice(text, bytes.as_mut_slice())
            .map_err(|_| bad(", with a non-hex character"))?;
        Self::from_bytes(&bytes)
    }

    /// Reads the LMK from [`LMK_ENV`].
    ///
    /// Errors: [`LmkError::NotConfigured`], [`LmkError::BadHex`].
    pub fn from_env() -> Result<Self, LmkError> {
        let text = Zeroizing::new(std::env::var(LMK_ENV).map_err(|_| LmkError::NotConfigured)?);
        Self::from_hex(&text)
    }

    /// Reads the LMK from a file of 64 hex characters whose mode must be 0600 or stricter.
    ///
    /// Errors: [`LmkError::Io`], [`LmkError::Permissions`], [`LmkError::FileTooLarge`],
    /// [`LmkError::BadHex`].
    pub fn from_file(path: &Path) -> Result<Self, LmkError> {
        let io = |source| LmkError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        check_mode(path, &meta)?;
        if meta.len() > LMK_FILE_LEN_MAX {
            return Err(LmkError::FileTooLarge {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io)?);
        Self::from_hex(&text)
    }

    /// The LMK's 3-byte check value.
    #[must_use]
    pub fn kcv(&self) -> [u8; 3] {
        self.kcv
    }

    /// The LMK's check value as 6 upper-case hex characters.
    #[must_use]
    pub fn kcv_hex(&self) -> String {
        hex::encode_upper(self.kcv)
    }

    /// Seals `plaintext` with `aad`: returns nonce (12) ‖ ciphertext ‖ tag (16).
    ///
    /// Errors: [`LmkError::Random`].
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, LmkError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| LmkError::Random)?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| LmkError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value made by [`Lmk::seal`] with the same `aad`.
    ///
    /// Errors: [`LmkError::Authentication`] (wrong LMK, altered value or altered AAD).
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, LmkError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(LmkError::Authentication);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| LmkError::Authentication)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| LmkError::Authentication)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), LmkError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(LmkError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), LmkError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LMK_A: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let lmk = Lmk::from_hex(LMK_A).unwrap();
        let sealed = lmk.seal(b"header-1", b"secret").unwrap();
        assert_eq!(sealed.len(), 6 + SEAL_OVERHEAD);
        assert_eq!(
            lmk.open(b"header-1", &sealed).unwrap().as_slice(),
            b"secret"
        );
        assert!(matches!(
            lmk.open(b"header-2", &sealed),
            Err(LmkError::Authentication)
        ));
        let other = Lmk::from_hex(&LMK_A.replace("1F", "1E")).unwrap();
        assert!(matches!(
            other.open(b"header-1", &sealed),
            Err(LmkError::Authentication)
        ));
    }

    #[test]
    fn kcv_is_aes_cmac_of_zero_block() {
        // ANSI X9.143:2021 8.1 publishes KCV 08793E25AB for key 3F419E1CB7079442AA37474C2EFBF8B8.
        let k = hex::decode("3F419E1CB7079442AA37474C2EFBF8B8").unwrap();
        let full = crate::mac::cmac_aes(&k, &[0u8; 16]).unwrap();
        assert_eq!(hex::encode_upper(&full[..3]), "08793E");
        let lmk = Lmk::from_hex(LMK_A).unwrap();
        let full = crate::mac::cmac_aes(&hex::decode(LMK_A).unwrap(), &[0u8; 16]).unwrap();
        assert_eq!(lmk.kcv(), [full[0], full[1], full[2]]);
        assert_eq!(
            format!("{lmk:?}"),
            format!("Lmk {{ kcv: \"{}\" }}", lmk.kcv_hex())
        );
    }

    #[test]
    fn bad_hex_names_length_not_value() {
        let e = Lmk::from_hex("abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the LMK must be 64 hex characters; got 3 characters"
        );
        let e = Lmk::from_hex(&"zz".repeat(32)).unwrap_err();
        assert!(e.to_string().contains("non-hex"));
        assert!(!e.to_string().contains("zz"));
    }

    #[cfg(unix)]
    #[test]
    fn lmk_file_mode_is_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmk.hex");
        std::fs::write(&path, LMK_A).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            Lmk::from_file(&path),
            Err(LmkError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Lmk::from_file(&path).is_ok());
    }
}
