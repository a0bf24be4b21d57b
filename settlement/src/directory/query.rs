//! Reading the directory: a [`Snapshot`] (one version's uses and their search index), filters
//! (category, mode, channel, region, status; OR within one filter, AND across filters), the text
//! query, and paging by an opaque cursor bound to the version it was issued for.

use super::model::{CardUse, Category, Channel, Region, Status, UsageMode, UseNumber};
use super::search::SearchIndex;
use super::store::VersionInfo;

/// Default page size.
pub const LIST_LIMIT_DEFAULT: u32 = 20;
/// Largest page size.
pub const LIST_LIMIT_MAX: u32 = 100;

/// One version of the directory, as served.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The version (none while nothing was ever imported).
    pub version: Option<VersionInfo>,
    /// The uses, in number order.
    pub uses: Vec<CardUse>,
    /// The search index over `uses`.
    pub index: SearchIndex,
}

/// Which uses to list. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Any of these categories.
    pub categories: Vec<Category>,
    /// Has any of these usage modes.
    pub modes: Vec<UsageMode>,
    /// Offered through any of these channels.
    pub channels: Vec<Channel>,
    /// Serves a person in any of these regions ([`Region::covers`]: national uses serve every
    /// region, a province's serve its cities).
    pub regions: Vec<Region>,
    /// Only this status.
    pub status: Option<Status>,
    /// Chinese full-text query (results ranked by score, then number).
    pub query: Option<String>,
}

impl Filter {
    fn keeps(&self, card_use: &CardUse) -> bool {
        let any = |wanted: bool, empty: bool| empty || wanted;
        any(
            self.categories.contains(&card_use.category),
            self.categories.is_empty(),
        ) && any(
            self.modes.iter().any(|m| card_use.modes.contains(m)),
            self.modes.is_empty(),
        ) && any(
            self.channels.iter().any(|c| card_use.channels.contains(c)),
            self.channels.is_empty(),
        ) && any(
            self.regions
                .iter()
                .any(|wanted| card_use.regions.iter().any(|live| live.covers(*wanted))),
            self.regions.is_empty(),
        ) && self.status.is_none_or(|status| status == card_use.status)
    }
}

/// A position in a result list, valid for one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The version the cursor was issued for (0 for an empty directory).
    pub version: i64,
    /// How many results come before the page.
    pub offset: usize,
}

impl Cursor {
    /// The opaque text form: lowercase hex of `v{version}.{offset}`.
    pub fn encode(self) -> String {
        hex::encode(format!("v{}.{}", self.version, self.offset))
    }

    /// Reads the text form; none if it was not made by [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() > 64 {
            return None;
        }
        let bytes = hex::decode(text).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (version, offset) = text.strip_prefix('v')?.split_once('.')?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(version) || !all_digits(offset) {
            return None;
        }
        Some(Cursor {
            version: version.parse().ok()?,
            offset: offset.parse().ok()?,
        })
    }
}

/// One page of results.
#[derive(Debug)]
pub struct Page<'a> {
    /// How many uses match in all.
    pub total: usize,
    /// This page's uses.
    pub items: Vec<&'a CardUse>,
    /// The cursor of the next page, none on the last.
    pub next: Option<Cursor>,
}

impl Snapshot {
    /// The version number (0 for an empty directory).
    pub fn version_number(&self) -> i64 {
        self.version.as_ref().map_or(0, |v| v.version)
    }

    /// One use by number.
    pub fn get(&self, number: &UseNumber) -> Option<&CardUse> {
        self.uses
            .binary_search_by(|card_use| card_use.number.cmp(number))
            .ok()
            .and_then(|position| self.uses.get(position))
    }

    /// The uses matching `filter`, from `offset`, at most `limit` (callers clamp it to
    /// [`LIST_LIMIT_MAX`]).
    pub fn list(&self, filter: &Filter, offset: usize, limit: u32) -> Page<'_> {
        let positions: Vec<usize> = match filter.query.as_deref() {
            Some(query) => self
                .index
                .search(query)
                .into_iter()
                .map(|(position, _)| position)
                .collect(),
            None => (0..self.uses.len()).collect(),
        };
        let matching: Vec<&CardUse> = positions
            .into_iter()
            .filter_map(|position| self.uses.get(position))
            .filter(|card_use| filter.keeps(card_use))
            .collect();
        let total = matching.len();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let items: Vec<&CardUse> = matching.into_iter().skip(offset).take(limit).collect();
        let end = offset.saturating_add(items.len());
        let next = (end < total).then_some(Cursor {
            version: self.version_number(),
            offset: end,
        });
        Page { total, items, next }
    }
}
