//! Key attributes: algorithm, TR-31 key usage, mode of use, exportability, state, and the
//! header that the LMK seal binds. Codes follow ANSI X9.143-2022 / ASC X9 TR-31:2018 §A.5
//! (header fields); numeric codes are the standard's proprietary space and are ours.

use std::fmt;

use zeroize::Zeroizing;

/// A key's algorithm and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// Double-length triple DES (16 bytes, K1‖K2).
    Tdes2,
    /// Triple-length triple DES (24 bytes).
    Tdes3,
    /// AES-128 (16 bytes).
    Aes128,
    /// AES-256 (32 bytes).
    Aes256,
    /// SM4 (GB/T 32907-2016, 16 bytes).
    Sm4,
    /// HMAC-SHA-256 key (32 bytes).
    HmacSha256,
    /// SM2 key pair (GB/T 32918; 32-byte private scalar stored).
    Sm2,
    /// ECDSA P-256 key pair (FIPS 186-4; PKCS#8 document stored).
    EcdsaP256,
}

impl KeyAlgorithm {
    /// Every algorithm, for parsing and listing.
    pub const ALL: [Self; 8] = [
        Self::Tdes2,
        Self::Tdes3,
        Self::Aes128,
        Self::Aes256,
        Self::Sm4,
        Self::HmacSha256,
        Self::Sm2,
        Self::EcdsaP256,
    ];

    /// The stable name used in the API and the journal (e.g. `"TDES_2KEY"`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Tdes2 => "TDES_2KEY",
            Self::Tdes3 => "TDES_3KEY",
            Self::Aes128 => "AES_128",
            Self::Aes256 => "AES_256",
            Self::Sm4 => "SM4",
            Self::HmacSha256 => "HMAC_SHA256",
            Self::Sm2 => "SM2",
            Self::EcdsaP256 => "ECC_NIST_P256",
        }
    }

    /// Parses [`KeyAlgorithm::name`]; `None` if unknown.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Clear key length in bytes for symmetric keys; `None` for key pairs.
    #[must_use]
    pub fn symmetric_len(self) -> Option<usize> {
        match self {
            Self::Tdes2 | Self::Aes128 | Self::Sm4 => Some(16),
            Self::Tdes3 => Some(24),
            Self::Aes256 | Self::HmacSha256 => Some(32),
            Self::Sm2 | Self::EcdsaP256 => None,
        }
    }

    /// The TR-31 algorithm byte (X9.143 Table 5): `T` TDES, `A` AES, `H` HMAC, `E` elliptic
    /// curve; SM4 has no standard code, so it takes the proprietary numeric code `1`.
    #[must_use]
    pub fn tr31_code(self) -> u8 {
        match self {
            Self::Tdes2 | Self::Tdes3 => b'T',
            Self::Aes128 | Self::Aes256 => b'A',
            Self::Sm4 => b'1',
            Self::HmacSha256 => b'H',
            Self::Sm2 | Self::EcdsaP256 => b'E',
        }
    }

    /// The symmetric algorithm for a TR-31 algorithm byte and a clear key length.
    #[must_use]
    pub fn from_tr31(code: u8, key_len: usize) -> Option<Self> {
        match (code, key_len) {
            (b'T', 16) => Some(Self::Tdes2),
            (b'T', 24) => Some(Self::Tdes3),
            (b'A', 16) => Some(Self::Aes128),
            (b'A', 32) => Some(Self::Aes256),
            (b'1', 16) => Some(Self::Sm4),
            (b'H', 32) => Some(Self::HmacSha256),
            _ => None,
        }
    }
}

/// TR-31 key usage (X9.143 Table 6), plus two proprietary numeric codes for the social security
/// card authentication model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyUsage {
    /// `B0` base derivation key (DUKPT BDK).
    B0,
    /// `D0` symmetric data encryption key.
    D0,
    /// `D1` asymmetric key pair for data encryption (X9.143; here SM2 public-key encryption).
    D1,
    /// `E0` EMV issuer master key for application cryptograms (MK-AC).
    E0,
    /// `E1` EMV issuer master key for secure messaging confidentiality (MK-SMC).
    E1,
    /// `E2` EMV issuer master key for secure messaging integrity (MK-SMI).
    E2,
    /// `K0` key encryption / wrapping key.
    K0,
    /// `K1` TR-31 key block protection key (KBPK).
    K1,
    /// `M1` ISO 9797-1 MAC algorithm 1 key.
    M1,
    /// `M3` ISO 9797-1 MAC algorithm 3 (retail MAC) key.
    M3,
    /// `M6` ISO 9797-1:2011 MAC algorithm 5 (CMAC) key.
    M6,
    /// `M7` HMAC key.
    M7,
    /// `P0` PIN encryption key.
    P0,
    /// `S0` asymmetric key pair for digital signature.
    S0,
    /// `V1` PIN verification key, IBM 3624.
    V1,
    /// `V2` PIN verification key, Visa PVV.
    V2,
    /// `10` (proprietary): SSC 3rd-generation internal-authentication master key; the card's
    /// K_INT = SM4 diversification with the 卡识别码 (model, not verified against the MOHRSS spec).
    SscInternalAuth,
    /// `11` (proprietary): SSC 3rd-generation external-authentication master key (RKSSSE, key
    /// id 0A); the card's K_EXT = SM4 diversification with the 卡识别码 (model, not verified).
    SscExternalAuth,
}

impl KeyUsage {
    /// Every usage, for parsing.
    pub const ALL: [Self; 18] = [
        Self::B0,
        Self::D0,
        Self::D1,
        Self::E0,
        Self::E1,
        Self::E2,
        Self::K0,
        Self::K1,
        Self::M1,
        Self::M3,
        Self::M6,
        Self::M7,
        Self::P0,
        Self::S0,
        Self::V1,
        Self::V2,
        Self::SscInternalAuth,
        Self::SscExternalAuth,
    ];

    /// The two-character TR-31 code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::B0 => "B0",
            Self::D0 => "D0",
            Self::D1 => "D1",
            Self::E0 => "E0",
            Self::E1 => "E1",
            Self::E2 => "E2",
            Self::K0 => "K0",
            Self::K1 => "K1",
            Self::M1 => "M1",
            Self::M3 => "M3",
            Self::M6 => "M6",
            Self::M7 => "M7",
            Self::P0 => "P0",
            Self::S0 => "S0",
            Self::V1 => "V1",
            Self::V2 => "V2",
            Self::SscInternalAuth => "10",
            Self::SscExternalAuth => "11",
        }
    }

    /// Parses a two-character code; `None` if not supported here.
    #[must_use]
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.code() == code)
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// TR-31 mode of use (X9.143 Table 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ModeOfUse {
    /// `B` both encrypt and decrypt / wrap and unwrap.
    B,
    /// `C` both generate and verify.
    C,
    /// `D` decrypt / unwrap only.
    D,
    /// `E` encrypt / wrap only.
    E,
    /// `G` generate only.
    G,
    /// `N` no special restrictions beyond the usage.
    N,
    /// `S` signature only.
    S,
    /// `T` both sign and decrypt.
    T,
    /// `V` verify only.
    V,
    /// `X` derive other keys.
    X,
    /// `Y` create key variants.
    Y,
}

impl ModeOfUse {
    /// Every mode, for parsing.
    pub const ALL: [Self; 11] = [
        Self::B,
        Self::C,
        Self::D,
        Self::E,
        Self::G,
        Self::N,
        Self::S,
        Self::T,
        Self::V,
        Self::X,
        Self::Y,
    ];

    /// The one-character code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::B => b'B',
            Self::C => b'C',
            Self::D => b'D',
            Self::E => b'E',
            Self::G => b'G',
            Self::N => b'N',
            Self::S => b'S',
            Self::T => b'T',
            Self::V => b'V',
            Self::X => b'X',
            Self::Y => b'Y',
        }
    }

    /// Parses a one-character code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }
}

/// TR-31 exportability (X9.143 Table 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exportability {
    /// `E` exportable under a trusted key.
    Exportable,
    /// `N` not exportable.
    NonExportable,
    /// `S` sensitive: exportable under an untrusted key.
    Sensitive,
}

impl Exportability {
    /// The one-character code.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Exportable => b'E',
            Self::NonExportable => b'N',
            Self::Sensitive => b'S',
        }
    }

    /// Parses a one-character code.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            b'E' => Some(Self::Exportable),
            b'N' => Some(Self::NonExportable),
            b'S' => Some(Self::Sensitive),
            _ => None,
        }
    }
}

/// Lifecycle state of a stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Usable.
    Enabled,
    /// Kept but refused by every operation until enabled again.
    Disabled,
    /// Deleted: the material is dropped from memory; the alias may be reused.
    Deleted,
}

impl KeyState {
    /// The stable name (`ENABLED`, `DISABLED`, `DELETED`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
            Self::Deleted => "DELETED",
        }
    }

    /// Parses [`KeyState::name`].
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Enabled, Self::Disabled, Self::Deleted]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

/// Longest alias accepted, in characters.
pub const ALIAS_LEN_MAX: usize = 64;

/// Whether `alias` is 1..=64 characters of `A-Z a-z 0-9 . _ - /`.
#[must_use]
pub fn alias_is_valid(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= ALIAS_LEN_MAX
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

/// The attributes bound to a stored key by the LMK seal's additional authenticated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    /// The key's name in the store (see [`alias_is_valid`]).
    pub alias: String,
    /// Algorithm and length.
    pub algorithm: KeyAlgorithm,
    /// TR-31 key usage.
    pub usage: KeyUsage,
    /// TR-31 mode of use.
    pub mode: ModeOfUse,
    /// TR-31 key version number: two ASCII alphanumerics, `"00"` when unused.
    pub version: [u8; 2],
    /// TR-31 exportability.
    pub exportability: Exportability,
}

impl KeyHeader {
    /// The additional authenticated data of the key's LMK seal: a version tag and each field
    /// length-prefixed, so no two headers share an encoding.
    #[must_use]
    pub fn aad(&self) -> Vec<u8> {
        let mut out = b"hsm-key-v1".to_vec();
        let fields: [&[u8]; 6] = [
            self.alias.as_bytes(),
            self.algorithm.name().as_bytes(),
            self.usage.code().as_bytes(),
            &[self.mode.code()],
            &self.version,
            &[self.exportability.code()],
        ];
        for field in fields {
            // Every field is at most ALIAS_LEN_MAX bytes, so one length byte suffices.
            out.push(u8::try_from(field.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(field);
        }
        out
    }

    /// The key version number as text.
    #[must_use]
    pub fn version_str(&self) -> String {
        String::from_utf8_lossy(&self.version).into_owned()
    }
}

/// What the store tells about a key: header, check value, creation time and state. Never key
/// material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata {
    /// The header bound to the key.
    pub header: KeyHeader,
    /// Key check value, 3 bytes (see [`crate::keystore::key_check_value`]).
    pub kcv: [u8; 3],
    /// Creation time, RFC 3339 UTC (e.g. `2026-01-02T03:04:05Z`).
    pub created_utc: String,
    /// Lifecycle state.
    pub state: KeyState,
}

impl KeyMetadata {
    /// The KCV as 6 upper-case hex characters.
    #[must_use]
    pub fn kcv_hex(&self) -> String {
        hex::encode_upper(self.kcv)
    }
}

/// Clear key material inside the crate. `Debug` shows nothing; the bytes are zeroized on drop
/// and readable only inside this crate (there is no public API returning clear key bytes).
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// Takes ownership of clear key bytes (input direction only).
    #[must_use]
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// The clear bytes (crate-internal).
    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never for a stored key).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({} bytes, redacted)", self.0.len())
    }
}
