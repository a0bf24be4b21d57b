//! The difference between two versions of the directory, per use: added, changed (with the names
//! of the fields that differ) or removed. An import stores these as the version's changes.

use std::collections::BTreeMap;

use super::csv_file::{CSV_HEADER, row_fields};
use super::model::{CardUse, UseNumber};

/// What happened to one use between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// New in this version.
    Added,
    /// Present before and after, some fields differ.
    Changed,
    /// Present before, gone now.
    Removed,
}

impl ChangeKind {
    /// The stored code: `added`, `changed`, `removed`.
    pub fn code(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Changed => "changed",
            ChangeKind::Removed => "removed",
        }
    }

    /// Parses the stored code.
    pub fn parse(text: &str) -> Option<ChangeKind> {
        [ChangeKind::Added, ChangeKind::Changed, ChangeKind::Removed]
            .into_iter()
            .find(|kind| kind.code() == text)
    }
}

/// The change of one use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseChange {
    /// The use's number.
    pub number: UseNumber,
    /// Added, changed or removed.
    pub kind: ChangeKind,
    /// Names of the fields that differ (CSV column names); every field for added and removed.
    pub fields: Vec<&'static str>,
    /// The use before (none when added).
    pub before: Option<CardUse>,
    /// The use after (none when removed).
    pub after: Option<CardUse>,
}

/// Changes from `old` to `new`, ordered by number. Empty when the two are the same.
pub fn diff(old: &[CardUse], new: &[CardUse]) -> Vec<UseChange> {
    let mut pairs: BTreeMap<UseNumber, (Option<&CardUse>, Option<&CardUse>)> = BTreeMap::new();
    for card_use in old {
        pairs.entry(card_use.number.clone()).or_default().0 = Some(card_use);
    }
    for card_use in new {
        pairs.entry(card_use.number.clone()).or_default().1 = Some(card_use);
    }
    let columns: Vec<&'static str> = CSV_HEADER.split(',').collect();
    pairs
        .into_iter()
        .filter_map(|(number, pair)| {
            let (kind, fields) = match pair {
                (None, Some(_)) => (ChangeKind::Added, columns.clone()),
                (Some(_), None) => (ChangeKind::Removed, columns.clone()),
                (Some(before), Some(after)) if before != after => {
                    let (b, a) = (row_fields(before), row_fields(after));
                    let fields = columns
                        .iter()
                        .zip(b.iter().zip(a.iter()))
                        .filter(|(_, (b, a))| b != a)
                        .map(|(name, _)| *name)
                        .collect();
                    (ChangeKind::Changed, fields)
                }
                _ => return None,
            };
            Some(UseChange {
                number,
                kind,
                fields,
                before: pair.0.cloned(),
                after: pair.1.cloned(),
            })
        })
        .collect()
}
