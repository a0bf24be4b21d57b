//! The directory's SQL (migrations/*/0200_directory.sql), written once for SQLite and PostgreSQL
//! through the crate's `dispatch!`: load the current uses, list versions and their changes, and
//! commit an import as a new version in one transaction.

use crate::store::{Store, dispatch};

use super::csv_file::{LIST_SEPARATOR, parse_fields, row_fields};
use super::diff::{ChangeKind, UseChange, diff};
use super::error::{DirectoryError, Result};
use super::model::{CardUse, UseNumber};

/// One version of the directory: who imported what, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// 1, 2, 3 ... in import order.
    pub version: i64,
    /// Commit time, Unix milliseconds UTC.
    pub at_ms: i64,
    /// The operator account that imported.
    pub by: String,
    /// SHA-256 of the imported file, lowercase hex.
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

const USE_COLUMNS: &str = "number, category, name, modes, channels, regions, operations, status, \
                           source_url, source_ref, note";
const VERSION_COLUMNS: &str =
    "version, at_ms, by_account, file_sha256, added, changed, removed, uses_total";

type UseRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);
type VersionRow = (i64, i64, String, String, i64, i64, i64, i64);

fn use_of(row: UseRow) -> Result<CardUse> {
    let fields = [
        row.0.as_str(),
        &row.1,
        &row.2,
        &row.3,
        &row.4,
        &row.5,
        &row.6,
        &row.7,
        &row.8,
        &row.9,
        &row.10,
    ];
    parse_fields(&fields).map_err(|_| DirectoryError::Corrupt("directory_uses"))
}

fn version_of(row: VersionRow) -> VersionInfo {
    VersionInfo {
        version: row.0,
        at_ms: row.1,
        by: row.2,
        file_sha256: row.3,
        added: row.4,
        changed: row.5,
        removed: row.6,
        uses_total: row.7,
    }
}

fn stored_row(card_use: Option<&CardUse>) -> Result<Option<String>> {
    card_use
        .map(|card_use| serde_json::to_string(&row_fields(card_use)))
        .transpose()
        .map_err(|_| DirectoryError::Corrupt("directory_changes row"))
}

fn row_from_json(text: Option<String>) -> Result<Option<CardUse>> {
    let Some(text) = text else { return Ok(None) };
    let fields: Vec<String> = serde_json::from_str(&text)
        .map_err(|_| DirectoryError::Corrupt("directory_changes row"))?;
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    parse_fields(&fields)
        .map(Some)
        .map_err(|_| DirectoryError::Corrupt("directory_changes row"))
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new version was committed with these changes.
    NewVersion(VersionInfo),
    /// The file equals the current directory: no version was made (the current one is given,
    /// none if the directory is empty).
    Unchanged(Option<VersionInfo>),
}

impl Store {
    /// The latest version, if any.
    pub(crate) async fn directory_latest(&self) -> Result<Option<VersionInfo>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM directory_versions ORDER BY version DESC LIMIT 1"
        );
        let row: Option<VersionRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_optional(pool).await?
        });
        Ok(row.map(version_of))
    }

    /// The current uses, in number order.
    pub(crate) async fn directory_uses(&self) -> Result<Vec<CardUse>> {
        let sql = format!("SELECT {USE_COLUMNS} FROM directory_uses");
        let rows: Vec<UseRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        let mut uses = rows.into_iter().map(use_of).collect::<Result<Vec<_>>>()?;
        uses.sort_by(|a, b| a.number.cmp(&b.number));
        Ok(uses)
    }

    /// Versions, newest first, at most `limit`, older than `before` when given.
    pub(crate) async fn directory_versions(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<VersionInfo>> {
        let sql = format!(
            "SELECT {VERSION_COLUMNS} FROM directory_versions WHERE version < $1 \
             ORDER BY version DESC LIMIT $2"
        );
        let before = before.unwrap_or(i64::MAX);
        let rows: Vec<VersionRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(version_of).collect())
    }

    /// One version and its changes (by number), none if there is no such version.
    pub(crate) async fn directory_version(
        &self,
        version: i64,
    ) -> Result<Option<(VersionInfo, Vec<UseChange>)>> {
        let sql = format!("SELECT {VERSION_COLUMNS} FROM directory_versions WHERE version = $1");
        let changes_sql = "SELECT number, kind, fields, before_row, after_row \
                           FROM directory_changes WHERE version = $1";
        type ChangeRow = (String, String, String, Option<String>, Option<String>);
        let (info, rows): (Option<VersionRow>, Vec<ChangeRow>) = dispatch!(self, pool => {
            let info = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(version)
                .fetch_optional(pool)
                .await?;
            let rows = sqlx::query_as(changes_sql).bind(version).fetch_all(pool).await?;
            (info, rows)
        });
        let Some(info) = info else { return Ok(None) };
        let columns: Vec<&'static str> = super::csv_file::CSV_HEADER.split(',').collect();
        let mut changes = Vec::with_capacity(rows.len());
        for (number, kind, fields, before, after) in rows {
            let corrupt = || DirectoryError::Corrupt("directory_changes");
            changes.push(UseChange {
                number: UseNumber::parse(&number).map_err(|_| corrupt())?,
                kind: ChangeKind::parse(&kind).ok_or_else(corrupt)?,
                fields: fields
                    .split(LIST_SEPARATOR)
                    .map(|field| columns.iter().copied().find(|c| *c == field))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(corrupt)?,
                before: row_from_json(before)?,
                after: row_from_json(after)?,
            });
        }
        changes.sort_by(|a, b| a.number.cmp(&b.number));
        Ok(Some((version_of(info), changes)))
    }

    /// Replaces the directory with `uses` as a new version, in one transaction (`BEGIN
    /// IMMEDIATE` on SQLite). Errors: `Concurrent` if another import took the version number.
    pub(crate) async fn directory_import(
        &self,
        uses: &[CardUse],
        by: &str,
        file_sha256: &str,
        at_ms: i64,
    ) -> Result<ImportOutcome> {
        let mut tx = self.begin_write().await?;
        let outcome = import_in(&mut tx, uses, by, file_sha256, at_ms).await;
        match outcome {
            Ok(ImportOutcome::NewVersion(info)) => match tx.commit().await {
                Ok(()) => Ok(ImportOutcome::NewVersion(info)),
                Err(error) => Err(concurrent_or(error)),
            },
            other => {
                // Nothing to keep: an unchanged import or a failure writes nothing.
                tx.rollback().await?;
                other
            }
        }
    }
}

/// A unique violation on the version number means another import won the race.
fn concurrent_or(error: sqlx::Error) -> DirectoryError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => DirectoryError::Concurrent,
        _ => DirectoryError::Database(error),
    }
}

async fn import_in(
    tx: &mut crate::store::Tx,
    uses: &[CardUse],
    by: &str,
    file_sha256: &str,
    at_ms: i64,
) -> Result<ImportOutcome> {
    let lock = tx.lock_suffix();
    let latest_sql = format!(
        "SELECT {VERSION_COLUMNS} FROM directory_versions ORDER BY version DESC LIMIT 1{lock}"
    );
    let uses_sql = format!("SELECT {USE_COLUMNS} FROM directory_uses{lock}");
    let (latest, rows): (Option<VersionRow>, Vec<UseRow>) = dispatch!(tx, conn => {
        let latest = sqlx::query_as(sqlx::AssertSqlSafe(latest_sql))
            .fetch_optional(&mut **conn)
            .await?;
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(uses_sql))
            .fetch_all(&mut **conn)
            .await?;
        (latest, rows)
    });
    let latest = latest.map(version_of);
    let mut current = rows.into_iter().map(use_of).collect::<Result<Vec<_>>>()?;
    current.sort_by(|a, b| a.number.cmp(&b.number));
    let changes = diff(&current, uses);
    if changes.is_empty() {
        return Ok(ImportOutcome::Unchanged(latest));
    }
    let count = |kind: ChangeKind| {
        i64::try_from(changes.iter().filter(|c| c.kind == kind).count()).unwrap_or(i64::MAX)
    };
    let info = VersionInfo {
        version: latest.as_ref().map_or(1, |latest| latest.version + 1),
        at_ms,
        by: by.to_owned(),
        file_sha256: file_sha256.to_owned(),
        added: count(ChangeKind::Added),
        changed: count(ChangeKind::Changed),
        removed: count(ChangeKind::Removed),
        uses_total: i64::try_from(uses.len()).unwrap_or(i64::MAX),
    };
    let mut change_rows = Vec::with_capacity(changes.len());
    for change in &changes {
        let before = stored_row(change.before.as_ref())?;
        let after = stored_row(change.after.as_ref())?;
        change_rows.push((change, before, after));
    }
    write_version(tx, &info, &change_rows)
        .await
        .map_err(concurrent_or)?;
    Ok(ImportOutcome::NewVersion(info))
}

async fn write_version(
    tx: &mut crate::store::Tx,
    info: &VersionInfo,
    change_rows: &[(&UseChange, Option<String>, Option<String>)],
) -> std::result::Result<(), sqlx::Error> {
    dispatch!(tx, conn => {
        sqlx::query(
            "INSERT INTO directory_versions (version, at_ms, by_account, file_sha256, added, \
             changed, removed, uses_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(info.version)
        .bind(info.at_ms)
        .bind(&info.by)
        .bind(&info.file_sha256)
        .bind(info.added)
        .bind(info.changed)
        .bind(info.removed)
        .bind(info.uses_total)
        .execute(&mut **conn)
        .await?;
        for (change, before, after) in change_rows {
            sqlx::query(
                "INSERT INTO directory_changes (version, number, kind, fields, before_row, \
                 after_row) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(info.version)
            .bind(change.number.as_str())
            .bind(change.kind.code())
            .bind(change.fields.join(&LIST_SEPARATOR.to_string()))
            .bind(before.as_deref())
            .bind(after.as_deref())
            .execute(&mut **conn)
            .await?;
            sqlx::query("DELETE FROM directory_uses WHERE number = $1")
                .bind(change.number.as_str())
                .execute(&mut **conn)
                .await?;
            if let Some(after) = &change.after {
                let [number, category, name, modes, channels, regions, operations, status,
                     source_url, source_ref, note] = row_fields(after);
                sqlx::query(
                    "INSERT INTO directory_uses (number, category, name, modes, channels, \
                     regions, operations, status, source_url, source_ref, note, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(number)
                .bind(category)
                .bind(name)
                .bind(modes)
                .bind(channels)
                .bind(regions)
                .bind(operations)
                .bind(status)
                .bind(source_url)
                .bind(source_ref)
                .bind(note)
                .bind(info.version)
                .execute(&mut **conn)
                .await?;
            }
        }
    });
    Ok(())
}
