//! TR-31 key block header: parsing with validation, and serialisation.
//!
//! Layout (ANSI X9.143-2022 §6.2, ASC X9 TR-31:2018 §A.5): version ID (1), key block length
//! (4 digits, the whole ASCII block), key usage (2), algorithm (1), mode of use (1), key
//! version number (2), exportability (1), number of optional blocks (2 digits), reserved `00`
//! (2), then the optional blocks: ID (2 alphanumerics), length (2 hex digits counting ID and
//! length; `00` means extended: 2 hex digits giving the length of the length, then the length in
//! that many hex digits), data (printable ASCII). A `PB` block pads the header to a multiple of
//! the cipher block.

use super::Tr31Error;

/// Length of the fixed header part, in characters.
pub const FIXED_HEADER_LEN: usize = 16;
/// Most optional blocks (a 2-digit count).
pub const OPTIONAL_BLOCKS_MAX: usize = 99;
/// Longest key block accepted (a 4-digit length).
pub const KEY_BLOCK_LEN_MAX: usize = 9999;

/// TR-31 key block version ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tr31Version {
    /// `A`: TDES key variant binding (deprecated; same as C).
    A,
    /// `B`: TDES key derivation binding (CMAC-derived KBEK/KBAK).
    B,
    /// `C`: TDES key variant binding (KBEK = KBPK ⊕ 45.., KBMK = KBPK ⊕ 4D..).
    C,
    /// `D`: AES key derivation binding.
    D,
}

impl Tr31Version {
    /// The version ID character.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::A => b'A',
            Self::B => b'B',
            Self::C => b'C',
            Self::D => b'D',
        }
    }

    /// Parses a version ID character.
    #[must_use]
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            b'A' => Some(Self::A),
            b'B' => Some(Self::B),
            b'C' => Some(Self::C),
            b'D' => Some(Self::D),
            _ => None,
        }
    }

    /// Cipher block length in bytes (8 for TDES versions, 16 for D).
    #[must_use]
    pub fn block_len(self) -> usize {
        if self == Self::D { 16 } else { 8 }
    }

    /// MAC length in bytes (4 for A/C, 8 for B, 16 for D).
    #[must_use]
    pub fn mac_len(self) -> usize {
        match self {
            Self::A | Self::C => 4,
            Self::B => 8,
            Self::D => 16,
        }
    }
}

/// One optional block (ID and printable ASCII data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalBlock {
    /// Two alphanumeric characters, e.g. `KS` (DUKPT KSN), `KC` (KCV of the wrapped key),
    /// `KP` (KCV of the KBPK), `TS` (time stamp), `PB` (padding).
    pub id: [u8; 2],
    /// The block's data.
    pub data: String,
}

/// A parsed TR-31 header. Codes are kept as received; the key store maps them to its types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tr31Header {
    /// Version ID.
    pub version: Tr31Version,
    /// Key usage, two alphanumerics (e.g. `P0`).
    pub usage: [u8; 2],
    /// Algorithm (e.g. `T`, `A`).
    pub algorithm: u8,
    /// Mode of use (e.g. `E`).
    pub mode: u8,
    /// Key version number, two alphanumerics (`00` when unused).
    pub key_version: [u8; 2],
    /// Exportability (`E`, `N` or `S`).
    pub exportability: u8,
    /// Optional blocks in order, the `PB` padding block excluded.
    pub blocks: Vec<OptionalBlock>,
}

impl Tr31Header {
    /// The data of the first optional block with `id`.
    #[must_use]
    pub fn block(&self, id: &[u8; 2]) -> Option<&str> {
        self.blocks
            .iter()
            .find(|b| &b.id == id)
            .map(|b| b.data.as_str())
    }

    /// The key usage as text.
    #[must_use]
    pub fn usage_str(&self) -> String {
        String::from_utf8_lossy(&self.usage).into_owned()
    }

    /// Serialises the header for a block of `total_len` characters, appending a `PB` block so
    /// the header is a multiple of the version's block length.
    ///
    /// Errors: [`Tr31Error::Header`] if a block is too long or there are too many blocks.
    pub fn serialise(&self, total_len: usize) -> Result<String, Tr31Error> {
        let blocks = self.serialise_blocks()?;
        let mut out = String::with_capacity(FIXED_HEADER_LEN + blocks.1.len());
        out.push(char::from(self.version.code()));
        out.push_str(&format!("{total_len:04}"));
        out.push_str(&String::from_utf8_lossy(&self.usage));
        out.push(char::from(self.algorithm));
        out.push(char::from(self.mode));
        out.push_str(&String::from_utf8_lossy(&self.key_version));
        out.push(char::from(self.exportability));
        out.push_str(&format!("{:02}", blocks.0));
        out.push_str("00");
        out.push_str(&blocks.1);
        Ok(out)
    }

    /// Length in characters of the serialised header.
    ///
    /// Errors: as [`Tr31Header::serialise`].
    pub fn serialised_len(&self) -> Result<usize, Tr31Error> {
        Ok(FIXED_HEADER_LEN + self.serialise_blocks()?.1.len())
    }

    fn serialise_blocks(&self) -> Result<(usize, String), Tr31Error> {
        let mut out = String::new();
        for b in &self.blocks {
            let len = 4 + b.data.len();
            if len <= 0xFF {
                out.push_str(&format!("{}{len:02X}", String::from_utf8_lossy(&b.id)));
            } else if len + 6 <= 0xFFFF {
                // Extended form: `00`, length of length `02` (bytes), then 4 hex digits.
                out.push_str(&format!(
                    "{}0002{:04X}",
                    String::from_utf8_lossy(&b.id),
                    len + 6
                ));
            } else {
                return Err(Tr31Error::Header {
                    reason: "an optional block is too long",
                });
            }
            out.push_str(&b.data);
        }
        let mut count = self.blocks.len();
        // The header enters the MAC as ASCII, one byte per character: align to the cipher block.
        let block_chars = self.version.block_len();
        let rem = (FIXED_HEADER_LEN + out.len()) % block_chars;
        if rem != 0 {
            let mut pad = block_chars - rem;
            while pad < 4 {
                pad += block_chars;
            }
            out.push_str(&format!("PB{pad:02X}"));
            out.push_str(&"0".repeat(pad - 4));
            count += 1;
        }
        if count > OPTIONAL_BLOCKS_MAX {
            return Err(Tr31Error::Header {
                reason: "more than 99 optional blocks",
            });
        }
        Ok((count, out))
    }
}

fn hex_number(text: &[u8]) -> Option<usize> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    usize::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

fn field(block: &[u8], range: std::ops::Range<usize>) -> &[u8] {
    block.get(range).unwrap_or_default()
}

/// Parses and validates the header at the start of `block` (a whole key block); returns the
/// header and its length in characters (fixed part plus optional blocks).
///
/// Errors: [`Tr31Error::Header`], [`Tr31Error::UnsupportedVersion`],
/// [`Tr31Error::InvalidField`], [`Tr31Error::OptionalBlock`].
pub fn parse_header(block: &[u8]) -> Result<(Tr31Header, usize), Tr31Error> {
    if block.len() < FIXED_HEADER_LEN {
        return Err(Tr31Error::Header {
            reason: "shorter than the 16-character fixed header",
        });
    }
    let version = Tr31Version::from_code(block[0]).ok_or(Tr31Error::UnsupportedVersion {
        version: char::from(block[0]).escape_default().to_string(),
    })?;
    let alnum = |r: std::ops::Range<usize>, name: &'static str| {
        let f = field(block, r);
        if f.iter().all(u8::is_ascii_alphanumeric) {
            Ok(f)
        } else {
            Err(Tr31Error::InvalidField { field: name })
        }
    };
    let usage = alnum(5..7, "key usage")?;
    let algorithm = alnum(7..8, "algorithm")?;
    let mode = alnum(8..9, "mode of use")?;
    let key_version = alnum(9..11, "key version number")?;
    let exportability = field(block, 11..12);
    if !matches!(exportability, [b'E' | b'N' | b'S']) {
        return Err(Tr31Error::InvalidField {
            field: "exportability",
        });
    }
    let count = field(block, 12..14);
    if !count.iter().all(u8::is_ascii_digit) {
        return Err(Tr31Error::InvalidField {
            field: "number of optional blocks",
        });
    }
    if field(block, 14..16) != b"00" {
        return Err(Tr31Error::InvalidField { field: "reserved" });
    }
    let count = usize::from(count[0] - b'0') * 10 + usize::from(count[1] - b'0');
    let mut blocks = Vec::new();
    let mut at = FIXED_HEADER_LEN;
    for index in 0..count {
        let bad = |reason: &'static str| Tr31Error::OptionalBlock { index, reason };
        let id = field(block, at..at + 2);
        if id.len() != 2 || !id.iter().all(u8::is_ascii_alphanumeric) {
            return Err(bad("block ID is not 2 alphanumeric characters"));
        }
        let id = [id[0], id[1]];
        let mut len = hex_number(field(block, at + 2..at + 4))
            .ok_or(bad("block length is not 2 hex digits"))?;
        let mut data_at = at + 4;
        if len == 0 {
            let len_len = hex_number(field(block, at + 4..at + 6))
                .ok_or(bad("length of length is not 2 hex digits"))?;
            // The length of the length counts bytes: the length takes twice as many hex digits.
            if len_len == 0 || len_len > 2 {
                return Err(bad("length of length must be 1 or 2 bytes"));
            }
            len = hex_number(field(block, at + 6..at + 6 + 2 * len_len))
                .ok_or(bad("extended length is not hex"))?;
            data_at = at + 6 + 2 * len_len;
        }
        if len < data_at - at {
            return Err(bad("block length does not cover its ID and length"));
        }
        let end = at + len;
        let data = block
            .get(data_at..end)
            .ok_or(bad("block data runs past the key block"))?;
        if !data.iter().all(|b| (0x20..0x7F).contains(b)) {
            return Err(bad("block data is not printable ASCII"));
        }
        if &id != b"PB" {
            blocks.push(OptionalBlock {
                id,
                data: String::from_utf8_lossy(data).into_owned(),
            });
        }
        at = end;
    }
    Ok((
        Tr31Header {
            version,
            usage: [usage[0], usage[1]],
            algorithm: algorithm[0],
            mode: mode[0],
            key_version: [key_version[0], key_version[1]],
            exportability: exportability[0],
            blocks,
        },
        at,
    ))
}
