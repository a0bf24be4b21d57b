//! The virtual card images of `fixtures/cards/` and the facts the demo needs from them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A virtual card image.
pub struct CardImage {
    /// The image file.
    pub path: PathBuf,
    /// Its `label` (e.g. `beijing-2g`).
    pub label: String,
    /// The holder's PIN (test cards only).
    pub pin: String,
    /// The national SSC authentication masters (external, internal) of a 3.00 image.
    pub national_masters: Option<(String, String)>,
    /// The PBOC application's PAN.
    pub pan: String,
    /// `tdes` or `sm4`.
    pub pboc_algorithm: String,
    /// The issuer master key for AC (test key), hex.
    pub issuer_master_key: String,
}

/// Loads every `*.toml` image of `dir`, sorted by file name.
pub fn load_cards(dir: &Path) -> Result<Vec<CardImage>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut cards = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let t: toml::Table = text
            .parse()
            .with_context(|| format!("{}", path.display()))?;
        let field = |table: &str, key: &str| -> Result<String> {
            t.get(table)
                .and_then(|v| v.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("{}: [{table}] {key} missing", path.display()))
        };
        let national_masters = match (
            field("keys", "ssse_external_auth_master"),
            field("keys", "ssse_internal_auth_master"),
        ) {
            (Ok(e), Ok(i)) => Some((e, i)),
            _ => None,
        };
        cards.push(CardImage {
            label: t
                .get("label")
                .and_then(|v| v.as_str())
                .unwrap_or("card")
                .to_owned(),
            pin: field("pin", "value")?,
            national_masters,
            pan: field("pboc", "pan")?,
            pboc_algorithm: field("pboc", "algorithm")?,
            issuer_master_key: field("pboc", "issuer_master_key")?,
            path,
        });
    }
    if cards.is_empty() {
        bail!("no card images in {}", dir.display());
    }
    Ok(cards)
}

/// The card labelled `label`.
pub fn by_label<'a>(cards: &'a [CardImage], label: &str) -> Result<&'a CardImage> {
    cards
        .iter()
        .find(|c| c.label == label)
        .with_context(|| format!("no card image labelled {label} in fixtures/cards"))
}
