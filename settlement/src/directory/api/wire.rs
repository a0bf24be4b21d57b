//! JSON shapes of the public directory API, converted from the domain types at the edge (the
//! domain types are not `Serialize`).

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use crate::directory::diff::UseChange;
use crate::directory::model::{CardUse, Channel, Region};
use crate::directory::regions::region_label;
use crate::directory::store::VersionInfo;

/// A code with the label shown to people.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Labelled {
    /// Stable code (API parameter value), e.g. `e-card`, `120000`, `national`.
    pub code: String,
    /// Chinese label, e.g. 电子社保卡, 天津市, 全国.
    pub label: String,
}

fn channel(channel: Channel) -> Labelled {
    Labelled {
        code: channel.code().to_owned(),
        label: channel.label().to_owned(),
    }
}

fn region(region: Region) -> Labelled {
    Labelled {
        code: region.code(),
        label: region_label(region),
    }
}

/// One use of the card.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UseOut {
    /// Stable number.
    pub number: String,
    /// Category: 就业创业, 社会保险, 劳动关系, 人事人才, 医疗保障, 金融服务 or 公共服务.
    pub category: String,
    /// Name.
    pub name: String,
    /// Usage modes (用卡方式): 身份凭证, 信息记录, 自助查询, 就医结算, 缴费, 待遇领取, 金融支付.
    pub modes: Vec<String>,
    /// Channels (window, kiosk, web, app, e-card) with labels.
    pub channels: Vec<Labelled>,
    /// Regions where live (`national` or a 6-digit code) with labels; empty: not known.
    pub regions: Vec<Labelled>,
    /// Platform operations that serve it, `service:name`.
    pub operations: Vec<String>,
    /// `sourced` (named by the public document at `source_url`) or `illustrative` (an example
    /// only, not part of any official list).
    pub status: String,
    /// The public document naming the use.
    pub source_url: String,
    /// Where our references discuss it.
    pub source_ref: String,
    /// What the source says, and what is this project's own classification.
    pub note: String,
}

impl From<&CardUse> for UseOut {
    fn from(card_use: &CardUse) -> UseOut {
        UseOut {
            number: card_use.number.to_string(),
            category: card_use.category.label().to_owned(),
            name: card_use.name.clone(),
            modes: card_use
                .modes
                .iter()
                .map(|m| m.label().to_owned())
                .collect(),
            channels: card_use.channels.iter().copied().map(channel).collect(),
            regions: card_use.regions.iter().copied().map(region).collect(),
            operations: card_use
                .operations
                .iter()
                .map(|o| o.as_str().to_owned())
                .collect(),
            status: card_use.status.code().to_owned(),
            source_url: card_use.source_url.clone(),
            source_ref: card_use.source_ref.clone(),
            note: card_use.note.clone(),
        }
    }
}

/// One page of the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListOut {
    /// The directory version the page comes from (0: nothing imported yet).
    pub version: i64,
    /// How many uses match in all.
    pub total: usize,
    /// This page's uses.
    pub items: Vec<UseOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One value of a filter with the number of uses that have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    /// Parameter value.
    pub code: String,
    /// Chinese label.
    pub label: String,
    /// Uses that have it.
    pub count: usize,
}

/// The filter values with counts, for building a search form.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetsOut {
    /// Directory version (0: nothing imported yet).
    pub version: i64,
    /// When that version was imported, RFC 3339 UTC; absent for version 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Uses in the directory.
    pub total: usize,
    /// Categories (all seven, with zero counts too).
    pub categories: Vec<FacetValue>,
    /// Usage modes (all seven).
    pub modes: Vec<FacetValue>,
    /// Channels (all five).
    pub channels: Vec<FacetValue>,
    /// Regions named by at least one use; each count is what `region=` would select (national
    /// uses and a province's uses count for its cities too).
    pub regions: Vec<FacetValue>,
    /// Statuses.
    pub statuses: Vec<FacetValue>,
}

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-05-01T08:00:00.123Z`).
pub fn utc(at_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// One version of the directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionOut {
    /// 1, 2, 3 ... in import order.
    pub version: i64,
    /// When the import committed, RFC 3339 UTC.
    pub at: String,
    /// The operator account that imported.
    pub by: String,
    /// SHA-256 of the imported file, hex.
    pub file_sha256: String,
    /// Uses added.
    pub added: i64,
    /// Uses changed.
    pub changed: i64,
    /// Uses removed.
    pub removed: i64,
    /// Uses in the directory after this version.
    pub uses_total: i64,
}

impl From<&VersionInfo> for VersionOut {
    fn from(info: &VersionInfo) -> VersionOut {
        VersionOut {
            version: info.version,
            at: utc(info.at_ms),
            by: info.by.clone(),
            file_sha256: info.file_sha256.clone(),
            added: info.added,
            changed: info.changed,
            removed: info.removed,
            uses_total: info.uses_total,
        }
    }
}

/// The list of versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsOut {
    /// Versions.
    pub items: Vec<VersionOut>,
    /// Pass as `before` for older versions; absent when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// The change of one use in a version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeOut {
    /// The use's number.
    pub number: String,
    /// `added`, `changed` or `removed`.
    pub kind: String,
    /// CSV column names that differ.
    pub fields: Vec<String>,
    /// The use before (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<UseOut>,
    /// The use after (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<UseOut>,
}

impl From<&UseChange> for ChangeOut {
    fn from(change: &UseChange) -> ChangeOut {
        ChangeOut {
            number: change.number.to_string(),
            kind: change.kind.code().to_owned(),
            fields: change.fields.iter().map(|f| (*f).to_owned()).collect(),
            before: change.before.as_ref().map(UseOut::from),
            after: change.after.as_ref().map(UseOut::from),
        }
    }
}

/// One version with its per-use changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionDetailOut {
    /// The version.
    #[serde(flatten)]
    pub version: VersionOut,
    /// The changes, by number.
    pub changes: Vec<ChangeOut>,
}
