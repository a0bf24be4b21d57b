//! Reads of a holder's personal data: each read by an operator or a partner is first written to
//! `identity_pii_reads` (who, which fields, why, when), then performed; the holder lists these
//! rows with their token. A read that cannot be audited does not happen.
//!
//! Matching needs no decryption: an operator or partner who has an ID number finds the holder
//! by its keyed hash (`certno_hmac`); the clear data is decrypted only for the fields read.

use serde::Serialize;

use super::error::{IdentityError, Result};
use super::trail::TrailKind;
use super::{Identity, now_ms, ordered_id};
use crate::directory::Category;
use crate::store::dispatch;

/// Longest reason, characters.
pub const REASON_CHARS_MAX: usize = 400;
/// Most read-log rows one page returns.
pub const READS_PAGE_MAX: u32 = 200;

/// One audited read, as the holder sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PiiRead {
    /// Time-ordered id.
    pub read_id: String,
    /// `operator` or `partner`.
    pub reader_kind: String,
    /// The operator account or partner id.
    pub reader: String,
    /// Fields read (comma-separated).
    pub fields: String,
    /// The reason given.
    pub reason: String,
    /// Unix ms.
    pub at_ms: i64,
}

/// What an operator sees of a holder after an audited read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderRecord {
    /// The pseudonym.
    pub holder_id: String,
    /// 人员编号.
    pub psn_no: String,
    /// 姓名.
    pub name: String,
    /// 证件号码, masked to the first 6 and last 4 characters.
    pub certno_masked: String,
    /// 参保地.
    pub insuplc_admdvs: i64,
}

/// What the holder sees of themself (masked: a kiosk screen may be watched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolderProfile {
    /// The pseudonym.
    pub holder_id: String,
    /// 姓名, the first character and `*` for the rest.
    pub name_masked: String,
    /// 证件号码, the first 6 and last 4 characters.
    pub certno_masked: String,
    /// 参保地.
    pub insuplc_admdvs: i64,
}

/// `110101********1234`: the first 6 and last 4 characters, `*` between.
pub fn mask_certno(certno: &str) -> String {
    let chars: Vec<char> = certno.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let keep_tail = chars.len() - 4;
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= keep_tail { *c } else { '*' })
        .collect()
}

/// `赵**`: the first character and `*` for each other.
pub fn mask_name(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| if i == 0 { c } else { '*' })
        .collect()
}

type HolderRow = (Vec<u8>, Vec<u8>, Vec<u8>, i64);

impl Identity {
    /// Writes one audited read. Errors: `ReasonRequired`, `BadField`, database.
    pub(crate) async fn audit_read(
        &self,
        holder_id: &str,
        reader_kind: &str,
        reader: &str,
        fields: &str,
        reason: &str,
    ) -> Result<String> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > REASON_CHARS_MAX {
            return Err(IdentityError::ReasonRequired);
        }
        if reader.is_empty() || reader.len() > 64 {
            return Err(IdentityError::BadField {
                field: "reader",
                reason: "must be 1..=64 bytes",
            });
        }
        let now = now_ms();
        let read_id = ordered_id(now)?;
        let _turn = self.gate.enter().await;
        dispatch!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO identity_pii_reads (read_id, holder_id, reader_kind, reader, fields, \
                 reason, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&read_id)
            .bind(holder_id)
            .bind(reader_kind)
            .bind(reader)
            .bind(fields)
            .bind(reason)
            .bind(now)
            .execute(pool)
            .await?;
        });
        tracing::info!(holder = %holder_id, reader_kind, reader, fields, "personal data read");
        Ok(read_id)
    }

    async fn holder_row(&self, holder_id: &str) -> Result<HolderRow> {
        let row: Option<HolderRow> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT psn_no_ct, name_ct, certno_ct, insuplc_admdvs FROM identity_holders \
                 WHERE holder_id = $1",
            )
            .bind(holder_id)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or(IdentityError::NotFound)
    }

    /// The holder whose ID number is `certno`, found by keyed hash (no decryption).
    /// Errors: `NotFound`, database.
    pub async fn holder_by_certno(&self, certno: &str) -> Result<String> {
        let hash = self.keys.keyed_hash("certno", certno);
        let row: Option<(String,)> = dispatch!(&self.store, pool => {
            sqlx::query_as("SELECT holder_id FROM identity_holders WHERE certno_hmac = $1 LIMIT 1")
                .bind(hash.as_slice())
                .fetch_optional(pool)
                .await?
        });
        row.map(|(holder,)| holder).ok_or(IdentityError::NotFound)
    }

    /// An operator reads a holder's record (person number, name, masked ID number): audited
    /// first with `reason`. Errors: `ReasonRequired`, `NotFound`, `Corrupt`, database.
    pub async fn operator_read(
        &self,
        holder_id: &str,
        operator: &str,
        reason: &str,
    ) -> Result<HolderRecord> {
        let (psn_no_ct, name_ct, certno_ct, insuplc_admdvs) = self.holder_row(holder_id).await?;
        self.audit_read(
            holder_id,
            "operator",
            operator,
            "psn_no,name,certno",
            reason,
        )
        .await?;
        let certno = self.keys.open_text(&certno_ct, "certno", holder_id)?;
        Ok(HolderRecord {
            holder_id: holder_id.to_owned(),
            psn_no: self.keys.open_text(&psn_no_ct, "psn_no", holder_id)?,
            name: self.keys.open_text(&name_ct, "name", holder_id)?,
            certno_masked: mask_certno(&certno),
            insuplc_admdvs,
        })
    }

    /// A partner checks, with the holder's consent, that the holder is the person with ID
    /// number `certno` and name `name`: matched by keyed hash and by the decrypted name,
    /// audited (fields `certno,name`) and recorded in the trail (kind `partner_verification`,
    /// `request_id` makes it idempotent). Returns whether both match; nothing else is disclosed.
    ///
    /// Errors: `ReasonRequired` (`purpose`), `NotFound`, `Corrupt`, database.
    pub async fn partner_verify_identity(
        &self,
        holder_id: &str,
        certno: &str,
        name: &str,
        partner: &str,
        purpose: &str,
        request_id: &str,
    ) -> Result<bool> {
        let (_, name_ct, _, insuplc_admdvs) = self.holder_row(holder_id).await?;
        self.audit_read(holder_id, "partner", partner, "certno,name", purpose)
            .await?;
        let hash = self.keys.keyed_hash("certno", certno);
        // Matching on the keyed hash in SQL: the hash reveals nothing, so equality need not
        // be constant-time.
        let matched: Option<(i64,)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT CAST(1 AS BIGINT) FROM identity_holders WHERE holder_id = $1 AND certno_hmac = $2",
            )
            .bind(holder_id)
            .bind(hash.as_slice())
            .fetch_optional(pool)
            .await?
        });
        let certno_matches = matched.is_some();
        let name_matches = self.keys.open_text(&name_ct, "name", holder_id)? == name;
        self.record_use(
            TrailKind::PartnerVerification,
            request_id,
            holder_id,
            insuplc_admdvs,
            Category::Public,
            partner,
        )
        .await?;
        Ok(certno_matches && name_matches)
    }

    /// The holder's own profile, masked (not an audited read: the holder is the reader).
    /// Errors: `NotFound`, `Corrupt`, database.
    pub async fn holder_profile(&self, holder_id: &str) -> Result<HolderProfile> {
        let (_, name_ct, certno_ct, insuplc_admdvs) = self.holder_row(holder_id).await?;
        Ok(HolderProfile {
            holder_id: holder_id.to_owned(),
            name_masked: mask_name(&self.keys.open_text(&name_ct, "name", holder_id)?),
            certno_masked: mask_certno(&self.keys.open_text(&certno_ct, "certno", holder_id)?),
            insuplc_admdvs,
        })
    }

    /// Reads of the holder's data by others, newest first, at most `limit` (clamped to
    /// 1..=[`READS_PAGE_MAX`]). Errors: database.
    pub async fn holder_reads(&self, holder_id: &str, limit: u32) -> Result<Vec<PiiRead>> {
        let rows: Vec<(String, String, String, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT read_id, reader_kind, reader, fields, reason, at_ms FROM identity_pii_reads \
                 WHERE holder_id = $1 ORDER BY read_id DESC LIMIT $2",
            )
            .bind(holder_id)
            .bind(i64::from(limit.clamp(1, READS_PAGE_MAX)))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(read_id, reader_kind, reader, fields, reason, at_ms)| PiiRead {
                    read_id,
                    reader_kind,
                    reader,
                    fields,
                    reason,
                    at_ms,
                },
            )
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_the_edges() {
        assert_eq!(mask_certno("120101198805121236"), "120101********1236");
        assert_eq!(mask_certno("12345"), "*****");
        assert_eq!(mask_name("赵文博"), "赵**");
        assert_eq!(mask_name(""), "");
    }
}
