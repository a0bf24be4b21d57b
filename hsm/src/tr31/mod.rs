//! TR-31 key blocks (ANSI X9.143-2022; ASC X9 TR-31:2018): the only way keys enter or leave
//! the store in a transportable form.
//!
//! - Version `D` (AES KBPK): KBEK/KBAK derived with AES-CMAC over
//!   `counter ‖ usage (0000 enc / 0001 MAC) ‖ 00 ‖ algorithm (0002 AES-128, 0003 AES-192,
//!   0004 AES-256) ‖ length in bits` (X9.143 §7.3.2, NIST SP 800-108 counter mode); the MAC is
//!   AES-CMAC(KBAK, header ‖ clear key data), 16 bytes, and is the IV of AES-CBC encryption of the
//!   key data.
//! - Version `B` (TDES KBPK): the same with TDES-CMAC and algorithm 0000 (2-key) / 0001 (3-key),
//!   8-byte MAC.
//! - Versions `C` and `A` (TDES variant binding): KBEK = KBPK ⊕ `45..`, KBMK = KBPK ⊕ `4D..`; key
//!   data TDES-CBC encrypted with the first 8 header characters as IV; MAC = first 4 bytes of
//!   the TDES CBC-MAC (ISO 9797-1 algorithm 1) over header ‖ encrypted key data.
//!
//! Key data = key length in bits (2 bytes) ‖ key ‖ random padding; export masks the key length by
//! padding every key to the version's longest key (24 bytes TDES, 32 bytes AES). MACs are compared
//! in constant time. The clear key is only ever returned inside the crate.

mod header;

use ring::rand::SecureRandom;
use zeroize::Zeroizing;

pub use header::{
    FIXED_HEADER_LEN, KEY_BLOCK_LEN_MAX, OPTIONAL_BLOCKS_MAX, OptionalBlock, Tr31Header,
    Tr31Version, parse_header,
};

use crate::keystore::{KeyAlgorithm, SecretKey};
use crate::primitives::BlockAlgorithm;

/// A key block that cannot be parsed, authenticated or produced. Messages name the problem and
/// never carry key material or key-block ciphertext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tr31Error {
    /// The block is not printable ASCII or the header is structurally wrong.
    #[error("TR-31 header: {reason}")]
    Header {
        /// What is wrong.
        reason: &'static str,
    },
    /// The version ID is not A, B, C or D.
    #[error("TR-31 version ID '{version}' is not supported (A, B, C, D)")]
    UnsupportedVersion {
        /// The version character received (escaped).
        version: String,
    },
    /// A fixed header field has an invalid value.
    #[error("TR-31 header field '{field}' is invalid")]
    InvalidField {
        /// The field's name.
        field: &'static str,
    },
    /// An optional block is malformed.
    #[error("TR-31 optional block {index}: {reason}")]
    OptionalBlock {
        /// Zero-based index of the block.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The 4-digit length field differs from the block's length.
    #[error("TR-31 length field says {declared} characters, the block has {actual}")]
    LengthMismatch {
        /// Length in the header (or `None` if not 4 digits: reported as 0).
        declared: usize,
        /// Length received.
        actual: usize,
    },
    /// The block, header or key data is not a multiple of the cipher block, or too short.
    #[error("TR-31 {part} has a bad length: {reason}")]
    Layout {
        /// Which part.
        part: &'static str,
        /// The rule broken.
        reason: &'static str,
    },
    /// The key data or the MAC is not hex.
    #[error("TR-31 {part} is not hex")]
    NotHex {
        /// Which part (`"encrypted key data"` or `"MAC"`).
        part: &'static str,
    },
    /// The MAC does not verify: wrong KBPK, or the header, key data or MAC was altered.
    #[error("TR-31 key block MAC does not verify (wrong KBPK or altered block)")]
    MacMismatch,
    /// The KBPK's algorithm does not fit the version (D needs AES; A, B, C need TDES).
    #[error("TR-31 version {version} needs a {needed} KBPK")]
    KbpkAlgorithm {
        /// The version ID.
        version: char,
        /// The algorithm family needed.
        needed: &'static str,
    },
    /// The decrypted key length field is impossible (after a valid MAC: a sender bug).
    #[error("TR-31 decrypted key length of {bits} bits is invalid")]
    KeyLength {
        /// The length field, in bits.
        bits: usize,
    },
    /// The wrapped key's algorithm and length are not supported by the key store.
    #[error("TR-31 algorithm '{algorithm}' with a {len_bytes}-byte key is not supported")]
    UnsupportedKey {
        /// The header's algorithm character.
        algorithm: char,
        /// The key length in bytes.
        len_bytes: usize,
    },
    /// The key usage, mode of use or exportability is not supported by the key store.
    #[error("TR-31 {field} '{value}' is not supported")]
    Unsupported {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The `KC` optional block's KCV differs from the unwrapped key's KCV.
    #[error("TR-31 KC block KCV does not match the unwrapped key")]
    KcBlockMismatch,
    /// The key to wrap is longer than the KBPK (X9.143: the KBPK must be at least as strong).
    #[error("TR-31: a {key_len}-byte key cannot be wrapped under a {kbpk_len}-byte KBPK")]
    KeyLongerThanKbpk {
        /// Key length in bytes.
        key_len: usize,
        /// KBPK length in bytes.
        kbpk_len: usize,
    },
    /// A crypto construction failed (key lengths, random generator).
    #[error(transparent)]
    Crypto(#[from] crate::error::Error),
}

/// A derived key pair (KBEK, KBAK or KBMK).
type KeyPair = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// Derives (KBEK, KBAK) for version B or D, or (KBEK, KBMK) for A/C.
fn derive(version: Tr31Version, kbpk: &[u8]) -> Result<KeyPair, Tr31Error> {
    match version {
        Tr31Version::A | Tr31Version::C => {
            let kbek: Vec<u8> = kbpk.iter().map(|b| b ^ 0x45).collect();
            let kbmk: Vec<u8> = kbpk.iter().map(|b| b ^ 0x4D).collect();
            Ok((Zeroizing::new(kbek), Zeroizing::new(kbmk)))
        }
        Tr31Version::B => {
            let (algo, bits, calls): ([u8; 2], [u8; 2], u8) = match kbpk.len() {
                16 => ([0, 0], [0x00, 0x80], 2),
                24 => ([0, 1], [0x00, 0xC0], 3),
                _ => {
                    return Err(Tr31Error::KbpkAlgorithm {
                        version: 'B',
                        needed: "2-key or 3-key TDES",
                    });
                }
            };
            let mut enc = Zeroizing::new(Vec::new());
            let mut mac = Zeroizing::new(Vec::new());
            for counter in 1..=calls {
                let input = |usage: u8| [counter, 0, usage, 0, algo[0], algo[1], bits[0], bits[1]];
                enc.extend_from_slice(&crate::mac::cmac_tdes(kbpk, &input(0))?);
                mac.extend_from_slice(&crate::mac::cmac_tdes(kbpk, &input(1))?);
            }
            Ok((enc, mac))
        }
        Tr31Version::D => {
            let (algo, bits, calls): (u8, [u8; 2], u8) = match kbpk.len() {
                16 => (2, [0x00, 0x80], 1),
                24 => (3, [0x00, 0xC0], 2),
                32 => (4, [0x01, 0x00], 2),
                _ => {
                    return Err(Tr31Error::KbpkAlgorithm {
                        version: 'D',
                        needed: "AES",
                    });
                }
            };
            let mut enc = Zeroizing::new(Vec::new());
            let mut mac = Zeroizing::new(Vec::new());
            for counter in 1..=calls {
                let input = |usage: u8| [counter, 0, usage, 0, 0, algo, bits[0], bits[1]];
                enc.extend_from_slice(&crate::mac::cmac_aes(kbpk, &input(0))?);
                mac.extend_from_slice(&crate::mac::cmac_aes(kbpk, &input(1))?);
            }
            enc.truncate(kbpk.len());
            mac.truncate(kbpk.len());
            Ok((enc, mac))
        }
    }
}

fn cipher(version: Tr31Version) -> BlockAlgorithm {
    if version == Tr31Version::D {
        BlockAlgorithm::Aes
    } else {
        BlockAlgorithm::Tdes
    }
}

fn check_kbpk(version: Tr31Version, kbpk_algorithm: KeyAlgorithm) -> Result<(), Tr31Error> {
    let ok = match version {
        Tr31Version::D => matches!(kbpk_algorithm, KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256),
        _ => matches!(kbpk_algorithm, KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3),
    };
    if ok {
        Ok(())
    } else {
        Err(Tr31Error::KbpkAlgorithm {
            version: char::from(version.code()),
            needed: if version == Tr31Version::D {
                "AES"
            } else {
                "TDES"
            },
        })
    }
}

/// MAC over `header ‖ data` for the version (A/C: over encrypted data; B/D: over clear data).
fn mac(
    version: Tr31Version,
    kbak: &[u8],
    header: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, Tr31Error> {
    let mut input = Zeroizing::new(Vec::with_capacity(header.len() + data.len()));
    input.extend_from_slice(header);
    input.extend_from_slice(data);
    Ok(match version {
        Tr31Version::A | Tr31Version::C => {
            let full = crate::mac::mac_alg1(
                BlockAlgorithm::Tdes,
                kbak,
                &input,
                crate::mac::Padding::Method1,
            )?;
            full.get(..4).unwrap_or_default().to_vec()
        }
        Tr31Version::B => crate::mac::cmac_tdes(kbak, &input)?.to_vec(),
        Tr31Version::D => crate::mac::cmac_aes(kbak, &input)?.to_vec(),
    })
}

/// Unwraps `block` under the KBPK (crate-internal: the clear key never leaves the crate).
///
/// Checks, in order: printable ASCII; header; length field = block length; alignment; hex;
/// KBPK algorithm for the version; MAC (constant time); key length field; `KC` block if present.
///
/// Errors: every [`Tr31Error`] variant names its check.
pub(crate) fn unwrap(
    kbpk_algorithm: KeyAlgorithm,
    kbpk: &SecretKey,
    block: &str,
) -> Result<(Tr31Header, SecretKey), Tr31Error> {
    let bytes = block.as_bytes();
    if !bytes.iter().all(|b| (0x20..0x7F).contains(b)) {
        return Err(Tr31Error::Header {
            reason: "the key block is not printable ASCII",
        });
    }
    if bytes.len() > KEY_BLOCK_LEN_MAX {
        return Err(Tr31Error::Layout {
            part: "key block",
            reason: "longer than 9999 characters",
        });
    }
    let (header, header_len) = parse_header(bytes)?;
    let declared = std::str::from_utf8(&bytes[1..5])
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<usize>().ok());
    if declared != Some(bytes.len()) {
        return Err(Tr31Error::LengthMismatch {
            declared: declared.unwrap_or(0),
            actual: bytes.len(),
        });
    }
    let version = header.version;
    let block_len = version.block_len();
    if header_len % block_len != 0 {
        return Err(Tr31Error::Layout {
            part: "header",
            reason: "not a multiple of the cipher block",
        });
    }
    let mac_chars = 2 * version.mac_len();
    let body = &bytes[header_len..];
    if body.len() < mac_chars + 4 * block_len {
        return Err(Tr31Error::Layout {
            part: "encrypted key data",
            reason: "shorter than two cipher blocks",
        });
    }
    let (data_hex, mac_hex) = body.split_at(body.len() - mac_chars);
    let received_mac = hex::decode(mac_hex).map_err(|_| Tr31Error::NotHex { part: "MAC" })?;
    let enc = hex::decode(data_hex).map_err(|_| Tr31Error::NotHex {
        part: "encrypted key data",
    })?;
    if enc.len() % block_len != 0 {
        return Err(Tr31Error::Layout {
            part: "encrypted key data",
            reason: "not a multiple of the cipher block",
        });
    }
    check_kbpk(version, kbpk_algorithm)?;
    let (kbek, kbak) = derive(version, kbpk.expose())?;
    let header_bytes = &bytes[..header_len];
    let clear = match version {
        Tr31Version::A | Tr31Version::C => {
            let computed = mac(version, &kbak, header_bytes, &enc)?;
            crate::mac::verify_truncated(&computed, &received_mac)
                .map_err(|_| Tr31Error::MacMismatch)?;
            Zeroizing::new(crate::primitives::cbc_decrypt(
                cipher(version),
                &kbek,
                &bytes[..8],
                &enc,
            )?)
        }
        Tr31Version::B | Tr31Version::D => {
            let clear = Zeroizing::new(crate::primitives::cbc_decrypt(
                cipher(version),
                &kbek,
                &received_mac,
                &enc,
            )?);
            let computed = mac(version, &kbak, header_bytes, &clear)?;
            if computed.len() != received_mac.len() {
                return Err(Tr31Error::MacMismatch);
            }
            crate::mac::verify_truncated(&computed, &received_mac)
                .map_err(|_| Tr31Error::MacMismatch)?;
            clear
        }
    };
    let bits = usize::from(u16::from_be_bytes([clear[0], clear[1]]));
    let key_len = bits / 8;
    if bits % 64 != 0 || key_len == 0 || 2 + key_len > clear.len() {
        return Err(Tr31Error::KeyLength { bits });
    }
    let key = SecretKey::new(Zeroizing::new(clear[2..2 + key_len].to_vec()));
    let algorithm =
        KeyAlgorithm::from_tr31(header.algorithm, key_len).ok_or(Tr31Error::UnsupportedKey {
            algorithm: char::from(header.algorithm),
            len_bytes: key_len,
        })?;
    if let Some(kc) = header.block(b"KC") {
        check_kc_block(algorithm, &key, kc)?;
    }
    Ok((header, key))
}

/// Checks a `KC` optional block: KCV algorithm (`00` legacy: encrypt a zero block; `01`:
/// CMAC of a zero block) then at least 2 bytes of KCV in hex (X9.143 §6.3.6, Table 19).
fn check_kc_block(algorithm: KeyAlgorithm, key: &SecretKey, kc: &str) -> Result<(), Tr31Error> {
    let k = key.expose();
    let full: Vec<u8> = match (kc.get(..2), algorithm) {
        (Some("00"), KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3) => {
            crate::primitives::tdes_encrypt_block(k, &[0u8; 8])?.to_vec()
        }
        (Some("00"), KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256) => {
            crate::primitives::aes_encrypt_block(k, &[0u8; 16])?.to_vec()
        }
        (Some("01"), KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3) => {
            crate::mac::cmac_tdes(k, &[0u8; 8])?.to_vec()
        }
        (Some("01"), KeyAlgorithm::Aes128 | KeyAlgorithm::Aes256) => {
            crate::mac::cmac_aes(k, &[0u8; 16])?.to_vec()
        }
        (Some("00" | "01"), _) => crate::keystore::key_check_value(algorithm, key)
            .map_err(|_| Tr31Error::KcBlockMismatch)?
            .to_vec(),
        _ => {
            return Err(Tr31Error::OptionalBlock {
                index: 0,
                reason: "KC block KCV algorithm must be 00 or 01",
            });
        }
    };
    let given = crate::error::decode_hex(kc.get(2..).unwrap_or_default())
        .map_err(|_| Tr31Error::KcBlockMismatch)?;
    if given.len() < 2 || given.len() > full.len() || given[..] != full[..given.len()] {
        return Err(Tr31Error::KcBlockMismatch);
    }
    Ok(())
}

/// Longest key of a version's family, in bytes (export masks every key to this length).
fn masked_len(version: Tr31Version) -> usize {
    if version == Tr31Version::D { 32 } else { 24 }
}

/// Wraps `key` under the KBPK with random padding masking the key length.
///
/// `header.version` selects the method; the length field is computed. Errors:
/// [`Tr31Error::KbpkAlgorithm`], [`Tr31Error::KeyLongerThanKbpk`], crypto errors.
pub(crate) fn wrap(
    kbpk_algorithm: KeyAlgorithm,
    kbpk: &SecretKey,
    header: &Tr31Header,
    key: &SecretKey,
    rng: &dyn SecureRandom,
) -> Result<String, Tr31Error> {
    let block_len = header.version.block_len();
    let target = 2 + masked_len(header.version).max(key.len());
    let padded = target.div_ceil(block_len) * block_len;
    let mut pad = Zeroizing::new(vec![0u8; padded - 2 - key.len()]);
    rng.fill(&mut pad)
        .map_err(|_| crate::error::Error::Random)?;
    wrap_with_padding(kbpk_algorithm, kbpk, header, key.expose(), &pad)
}

/// Wraps a clear `key` with the given padding bytes (2 + key + padding must be whole cipher
/// blocks). Public so that tests and key ceremonies can build a block from a known key and
/// reproduce the standard's worked examples; it takes clear key material in and returns only
/// the protected block.
///
/// Errors: [`Tr31Error::Layout`] for a bad padding length, [`Tr31Error::KbpkAlgorithm`],
/// [`Tr31Error::KeyLongerThanKbpk`], crypto errors.
pub fn wrap_with_padding(
    kbpk_algorithm: KeyAlgorithm,
    kbpk: &SecretKey,
    header: &Tr31Header,
    key: &[u8],
    padding: &[u8],
) -> Result<String, Tr31Error> {
    let version = header.version;
    check_kbpk(version, kbpk_algorithm)?;
    if key.len() > kbpk.len() {
        return Err(Tr31Error::KeyLongerThanKbpk {
            key_len: key.len(),
            kbpk_len: kbpk.len(),
        });
    }
    let bits = u16::try_from(key.len() * 8).map_err(|_| Tr31Error::KeyLength {
        bits: key.len() * 8,
    })?;
    let mut clear = Zeroizing::new(Vec::with_capacity(2 + key.len() + padding.len()));
    clear.extend_from_slice(&bits.to_be_bytes());
    clear.extend_from_slice(key);
    clear.extend_from_slice(padding);
    if clear.len() % version.block_len() != 0 || clear.len() < 2 * version.block_len() {
        return Err(Tr31Error::Layout {
            part: "key data",
            reason: "key length + key + padding must be two or more whole cipher blocks",
        });
    }
    let total = header.serialised_len()? + 2 * clear.len() + 2 * version.mac_len();
    if total > KEY_BLOCK_LEN_MAX {
        return Err(Tr31Error::Layout {
            part: "key block",
            reason: "longer than 9999 characters",
        });
    }
    let head = header.serialise(total)?;
    let (kbek, kbak) = derive(version, kbpk.expose())?;
    let (enc, tag) = match version {
        Tr31Version::A | Tr31Version::C => {
            let enc = crate::primitives::cbc_encrypt(
                cipher(version),
                &kbek,
                &head.as_bytes()[..8],
                &clear,
            )?;
            let tag = mac(version, &kbak, head.as_bytes(), &enc)?;
            (enc, tag)
        }
        Tr31Version::B | Tr31Version::D => {
            let tag = mac(version, &kbak, head.as_bytes(), &clear)?;
            (
                crate::primitives::cbc_encrypt(cipher(version), &kbek, &tag, &clear)?,
                tag,
            )
        }
    };
    Ok(format!(
        "{head}{}{}",
        hex::encode_upper(enc),
        hex::encode_upper(tag)
    ))
}
