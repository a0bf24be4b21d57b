//! The region set and routing table, loaded from a data file (`fixtures/regions/regions.toml`):
//! which node serves which divisions (admdvs prefixes), where it listens, each region's advance
//! fund (预付金) and the per-pair request-signing keys. Adding a fourth region is a new
//! `[[region]]` block plus its `[[link]]` keys: no code change.
//!
//! Source: medical-settlement.md §2 (division codes: a province's prefix covers its cities) and
//! §3.1 (先预付后清算: the advance).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ids::Admdvs;

use super::RegionError;

/// Most regions in one file.
pub const REGIONS_MAX: usize = 64;
/// Most bytes of a regions file.
pub const REGIONS_FILE_BYTES_MAX: u64 = 256 * 1024;
/// Length of a pair key, bytes (HMAC-SHA256 key).
pub const LINK_KEY_LEN: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRegion {
    admdvs: String,
    name: String,
    url: String,
    serves: Vec<String>,
    advance_fen: i64,
    alert_pct: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLink {
    a: String,
    b: String,
    key_hex: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    region: Vec<FileRegion>,
    #[serde(default)]
    link: Vec<FileLink>,
}

/// One region node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The node's division (the province-level code, e.g. 130000 for Hebei).
    pub admdvs: Admdvs,
    /// Display name.
    pub name: String,
    /// Base URL of the node (`http://127.0.0.1:18110`), no trailing slash.
    pub url: String,
    /// Division-code prefixes this node is the insured node for (`"13"` covers 130100).
    pub serves: Vec<String>,
    /// The advance fund 预付金 this region keeps with each treating region, fen.
    pub advance_fen: i64,
    /// Alert when a treating region's claims on this region reach this percentage of the advance.
    pub alert_pct: u8,
}

/// A pair key, zeroised on drop, never printed.
#[derive(Clone)]
pub struct LinkKey(pub(crate) Zeroizing<Vec<u8>>);

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// The loaded region set.
#[derive(Debug, Clone)]
pub struct Regions {
    regions: Vec<Region>,
    keys: BTreeMap<(u32, u32), LinkKey>,
}

fn bad(reason: impl Into<String>) -> RegionError {
    RegionError::Config(reason.into())
}

impl Regions {
    /// Loads and checks a regions file. Errors: `Config` (unreadable, too large, malformed,
    /// duplicate region, bad URL, bad key, link to an unknown region).
    pub fn load(path: &Path) -> Result<Regions, RegionError> {
        let size = std::fs::metadata(path)
            .map_err(|e| bad(format!("{}: {e}", path.display())))?
            .len();
        if size > REGIONS_FILE_BYTES_MAX {
            return Err(bad("regions file too large"));
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Regions::parse(&text)
    }

    /// Parses a regions file's text. Errors as `load`.
    pub fn parse(text: &str) -> Result<Regions, RegionError> {
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.region.is_empty() || file.region.len() > REGIONS_MAX {
            return Err(bad(format!("1..={REGIONS_MAX} regions")));
        }
        let mut regions: Vec<Region> = Vec::new();
        for r in file.region {
            let admdvs = Admdvs::parse(&r.admdvs).map_err(|e| bad(e.to_string()))?;
            if regions.iter().any(|x| x.admdvs == admdvs) {
                return Err(bad(format!("region {admdvs} twice")));
            }
            if !(r.url.starts_with("http://") || r.url.starts_with("https://")) {
                return Err(bad(format!("region {admdvs}: url must be http(s)://")));
            }
            if r.serves.is_empty()
                || r.serves
                    .iter()
                    .any(|p| p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(bad(format!(
                    "region {admdvs}: serves = 1..6-digit prefixes"
                )));
            }
            if r.advance_fen < 0 || r.alert_pct > 100 {
                return Err(bad(format!(
                    "region {admdvs}: advance_fen >= 0, alert_pct <= 100"
                )));
            }
            regions.push(Region {
                admdvs,
                name: r.name,
                url: r.url.trim_end_matches('/').to_owned(),
                serves: r.serves,
                advance_fen: r.advance_fen,
                alert_pct: r.alert_pct,
            });
        }
        let mut keys = BTreeMap::new();
        for link in file.link {
            let a = Admdvs::parse(&link.a).map_err(|e| bad(e.to_string()))?;
            let b = Admdvs::parse(&link.b).map_err(|e| bad(e.to_string()))?;
            if !regions.iter().any(|r| r.admdvs == a) || !regions.iter().any(|r| r.admdvs == b) {
                return Err(bad(format!("link {a}-{b} names an unknown region")));
            }
            let key = Zeroizing::new(
                hex::decode(link.key_hex.trim()).map_err(|_| bad(format!("link {a}-{b}: key")))?,
            );
            if key.len() != LINK_KEY_LEN {
                return Err(bad(format!(
                    "link {a}-{b}: key must be {LINK_KEY_LEN} bytes"
                )));
            }
            keys.insert(pair(a, b), LinkKey(key));
        }
        Ok(Regions { regions, keys })
    }

    /// All regions, in file order.
    pub fn all(&self) -> &[Region] {
        &self.regions
    }

    /// The region node with division `admdvs`.
    pub fn get(&self, admdvs: Admdvs) -> Option<&Region> {
        self.regions.iter().find(|r| r.admdvs == admdvs)
    }

    /// The node that is the insured node for division `insured` (longest matching prefix).
    pub fn route(&self, insured: Admdvs) -> Option<&Region> {
        let code = insured.to_string();
        self.regions
            .iter()
            .flat_map(|r| r.serves.iter().map(move |p| (p, r)))
            .filter(|(p, _)| code.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, r)| r)
    }

    /// The signing key between two nodes (either order).
    pub(crate) fn key(&self, a: Admdvs, b: Admdvs) -> Option<&LinkKey> {
        self.keys.get(&pair(a, b))
    }
}

fn pair(a: Admdvs, b: Admdvs) -> (u32, u32) {
    let (a, b) = (a.code(), b.code());
    (a.min(b), a.max(b))
}
