//! The partner operations' SQL: consent tokens, the card status register and card links,
//! settlement status reads (the medical tables of migrations/*/0003_medical.sql, read only), the
//! webhook outbox and the settlement feed. One text per query for SQLite and PostgreSQL.

use crate::medical::{PersonRecord, PersonVault};
use crate::store::{Store, dispatch};

use super::error::{PartnerError, Result};

/// A consent token as stored (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredConsent {
    pub app_id: String,
    pub use_number: String,
    pub operation: String,
    pub psn_no: String,
    pub card_no_sha256: Vec<u8>,
    pub expires_at_ms: i64,
    pub used: bool,
}

/// A settlement's status from the medical tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettlementRow {
    pub setl_id: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub fixmedins_code: String,
    pub insuplc_admdvs: i64,
    pub setl_date: String,
    pub medfee_sumamt_fen: i64,
    pub fund_pay_sumamt_fen: i64,
    pub acct_pay_fen: i64,
    pub psn_cash_pay_fen: i64,
    /// `C` cancelled, `R` reversed, none if it stands.
    pub cancel_kind: Option<String>,
    /// The ledger posting's commit order (the feed's cursor).
    pub seq: i64,
}

/// A webhook row due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DueWebhook {
    pub event_id: String,
    pub app_id: String,
    pub event_type: String,
    pub body: String,
    pub attempts: i64,
    pub webhook_url: Option<String>,
}

/// A new webhook row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewWebhook {
    pub event_id: String,
    pub app_id: String,
    pub event_type: &'static str,
    pub body: String,
}

type SettlementTuple = (
    String,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
);

const SETTLEMENT_SELECT: &str = "SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, \
     s.insuplc_admdvs, s.setl_date, s.medfee_sumamt_fen, s.fund_pay_sumamt_fen, s.acct_pay_fen, \
     s.psn_cash_pay_fen, c.kind, p.seq FROM settlements s \
     JOIN postings p ON p.id = s.posting_id \
     LEFT JOIN settlement_cancels c ON c.setl_id = s.setl_id";

fn settlement_of(t: SettlementTuple) -> SettlementRow {
    SettlementRow {
        setl_id: t.0,
        mdtrt_id: t.1,
        psn_no: t.2,
        fixmedins_code: t.3,
        insuplc_admdvs: t.4,
        setl_date: t.5,
        medfee_sumamt_fen: t.6,
        fund_pay_sumamt_fen: t.7,
        acct_pay_fen: t.8,
        psn_cash_pay_fen: t.9,
        cancel_kind: t.10,
        seq: t.11,
    }
}

/// The INSERT of one webhook row (an event id seen before is skipped).
const WEBHOOK_INSERT: &str = "INSERT INTO partner_webhooks (event_id, app_id, event_type, body, \
     created_at_ms, state, attempts, next_at_ms) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $5) \
     ON CONFLICT DO NOTHING";

/// A card's lookup keys (1-3: keyed, legacy; `PersonVault::lookups`) as the three parameters
/// of a fixed `IN ($1, $2, $3)`, the last one repeated where there are fewer (an empty list
/// gives three empty keys, which match nothing: every stored key is 32 bytes).
fn card_keys(card_hashes: &[[u8; 32]]) -> [Vec<u8>; 3] {
    let key = |i: usize| {
        card_hashes
            .get(i)
            .or(card_hashes.last())
            .map(|hash| hash.to_vec())
            .unwrap_or_default()
    };
    [key(0), key(1), key(2)]
}

impl Store {
    /// The person holding card `card_no` (the persons table's card lookup keys, `vault`), if
    /// exactly one does. Errors: database, `Corrupt` (a record that does not open here).
    pub(crate) async fn partner_person_by_card(
        &self,
        vault: &PersonVault,
        card_no: &str,
    ) -> Result<Option<PersonRecord>> {
        let found = self
            .persons_by_lookups(&vault.lookups("card", card_no), true)
            .await?;
        match found.as_slice() {
            [psn_no] => self.partner_person(vault, psn_no).await,
            _ => Ok(None),
        }
    }

    /// The person with this psn_no, if any. Errors: database, `Corrupt`.
    pub(crate) async fn partner_person(
        &self,
        vault: &PersonVault,
        psn_no: &str,
    ) -> Result<Option<PersonRecord>> {
        let row = self.person_record(psn_no).await?;
        row.map(|record| {
            vault
                .decode(psn_no, &record)
                .map_err(|_| PartnerError::Corrupt("persons.record"))
        })
        .transpose()
    }

    /// Whether the card's latest status row says `lost`, the card named by any of its lookup
    /// keys (`PersonVault::lookups`: keyed, then the legacy unkeyed one), so a status written
    /// before the keys were installed still counts; the latest row across them wins (one
    /// statement: one snapshot).
    pub(crate) async fn partner_card_lost(&self, card_hashes: &[[u8; 32]]) -> Result<bool> {
        let keys = card_keys(card_hashes);
        let row: Option<(String,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT status FROM card_status_events WHERE card_no_sha256 IN ($1, $2, $3) \
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(keys[0].clone())
            .bind(keys[1].clone())
            .bind(keys[2].clone())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.is_some_and(|(status,)| status == "lost"))
    }

    /// Appends a status row for a card and, in the same transaction, the webhook rows `events`
    /// (the `card.lost` notices to the applications linked to the card).
    pub(crate) async fn partner_card_status(
        &self,
        card_no_sha256: &[u8; 32],
        status: &str,
        by: &str,
        events: &[NewWebhook],
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let tx_ref = &mut tx;
        dispatch!(tx_ref, conn => {
            sqlx::query(
                "INSERT INTO card_status_events (card_no_sha256, status, at_ms, by_account) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(card_no_sha256.to_vec())
            .bind(status)
            .bind(now_ms)
            .bind(by)
            .execute(&mut **conn)
            .await?;
            for row in events {
                sqlx::query(WEBHOOK_INSERT)
                    .bind(&row.event_id)
                    .bind(&row.app_id)
                    .bind(row.event_type)
                    .bind(&row.body)
                    .bind(now_ms)
                    .execute(&mut **conn)
                    .await?;
            }
        });
        tx.commit().await?;
        Ok(())
    }

    /// Applications linked to a card (they verified it with consent) that hold a grant of
    /// `webhook.card` and are approved: (app_id, card_ref, card_no_masked), one per application
    /// (its first link) whichever of the card's lookup keys (`card_hashes`) the link was made
    /// under.
    pub(crate) async fn partner_card_watchers(
        &self,
        card_hashes: &[[u8; 32]],
    ) -> Result<Vec<(String, String, String)>> {
        let keys = card_keys(card_hashes);
        let rows: Vec<(String, String, String)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT l.app_id, l.card_ref, l.card_no_masked FROM partner_card_links l \
                 JOIN partner_apps a ON a.app_id = l.app_id AND a.state = 'approved' \
                 WHERE l.card_no_sha256 IN ($1, $2, $3) AND EXISTS (SELECT 1 FROM partner_scopes s \
                 WHERE s.app_id = l.app_id AND s.operation = 'webhook.card' AND s.granted = 1) \
                 ORDER BY l.app_id, l.first_at_ms",
            )
            .bind(keys[0].clone())
            .bind(keys[1].clone())
            .bind(keys[2].clone())
            .fetch_all(pool)
            .await?
        });
        let mut watchers: Vec<(String, String, String)> = Vec::with_capacity(rows.len());
        for row in rows {
            // Rows come by application, its first link first.
            if watchers.last().is_none_or(|last| last.0 != row.0) {
                watchers.push(row);
            }
        }
        Ok(watchers)
    }

    /// The reference an application already holds for a card (its first link under any of the
    /// card's lookup keys), if it verified the card before.
    pub(crate) async fn partner_card_link_ref(
        &self,
        app_id: &str,
        card_hashes: &[[u8; 32]],
    ) -> Result<Option<String>> {
        let keys = card_keys(card_hashes);
        let row: Option<(String,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT card_ref FROM partner_card_links WHERE app_id = $1 \
                 AND card_no_sha256 IN ($2, $3, $4) ORDER BY first_at_ms LIMIT 1",
            )
            .bind(app_id)
            .bind(keys[0].clone())
            .bind(keys[1].clone())
            .bind(keys[2].clone())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(card_ref,)| card_ref))
    }

    /// Links an application to a card it verified (kept once).
    pub(crate) async fn partner_card_link(
        &self,
        app_id: &str,
        card_no_sha256: &[u8; 32],
        card_ref: &str,
        card_no_masked: &str,
        now_ms: i64,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_card_links (app_id, card_no_sha256, card_ref, \
                 card_no_masked, first_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(app_id)
            .bind(card_no_sha256.to_vec())
            .bind(card_ref)
            .bind(card_no_masked)
            .bind(now_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stores a consent token's hash and binding.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn partner_consent_issue(
        &self,
        token_sha256: &[u8; 32],
        consent: &StoredConsent,
        channel: &str,
        issued_by: &str,
        now_ms: i64,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_consents (token_sha256, app_id, use_number, operation, \
                 psn_no, card_no_sha256, channel, issued_by, issued_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(token_sha256.to_vec())
            .bind(&consent.app_id)
            .bind(&consent.use_number)
            .bind(&consent.operation)
            .bind(&consent.psn_no)
            .bind(consent.card_no_sha256.clone())
            .bind(channel)
            .bind(issued_by)
            .bind(now_ms)
            .bind(consent.expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A consent by its token's hash, with whether it was used.
    pub(crate) async fn partner_consent(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<StoredConsent>> {
        type Row = (String, String, String, String, Vec<u8>, i64, Option<i64>);
        let row: Option<Row> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT c.app_id, c.use_number, c.operation, c.psn_no, c.card_no_sha256, \
                 c.expires_at_ms, u.used_at_ms FROM partner_consents c \
                 LEFT JOIN partner_consent_uses u ON u.token_sha256 = c.token_sha256 \
                 WHERE c.token_sha256 = $1",
            )
            .bind(token_sha256.to_vec())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|r| StoredConsent {
            app_id: r.0,
            use_number: r.1,
            operation: r.2,
            psn_no: r.3,
            card_no_sha256: r.4,
            expires_at_ms: r.5,
            used: r.6.is_some(),
        }))
    }

    /// Consumes a consent: true if this call used it, false if it had been used already (the
    /// primary key decides, also between processes).
    pub(crate) async fn partner_consent_use(
        &self,
        token_sha256: &[u8; 32],
        now_ms: i64,
    ) -> Result<bool> {
        let done = dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_consent_uses (token_sha256, used_at_ms) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(token_sha256.to_vec())
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// One settlement by `setl_id`, with its cancellation if any.
    pub(crate) async fn partner_settlement(&self, setl_id: &str) -> Result<Option<SettlementRow>> {
        let sql = format!("{SETTLEMENT_SELECT} WHERE s.setl_id = $1");
        let row: Option<SettlementTuple> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(setl_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(settlement_of))
    }

    /// Settlements whose posting's seq is above `after_seq` and at most `up_to_seq`, in seq order,
    /// at most `limit`.
    pub(crate) async fn partner_settlements_between(
        &self,
        after_seq: i64,
        up_to_seq: i64,
        limit: i64,
    ) -> Result<Vec<SettlementRow>> {
        let sql =
            format!("{SETTLEMENT_SELECT} WHERE p.seq > $1 AND p.seq <= $2 ORDER BY p.seq LIMIT $3");
        let rows: Vec<SettlementTuple> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after_seq)
                .bind(up_to_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(settlement_of).collect())
    }

    /// Approved applications holding a grant of `operation` (any use).
    pub(crate) async fn partner_subscribers(&self, operation: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT DISTINCT a.app_id FROM partner_apps a JOIN partner_scopes s \
                 ON s.app_id = a.app_id AND s.operation = $1 AND s.granted = 1 \
                 WHERE a.state = 'approved' ORDER BY a.app_id",
            )
            .bind(operation)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// A feed's cursor (0 when new).
    pub(crate) async fn partner_feed_cursor(&self, feed: &str) -> Result<i64> {
        let row: Option<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT seq FROM partner_feeds WHERE feed = $1")
                .bind(feed)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map_or(0, |(seq,)| seq))
    }

    /// Adds webhook rows (an event id seen before is skipped) and moves the feed's cursor forward
    /// (never back: two processes' rounds may overlap), in one transaction. Returns the rows added.
    pub(crate) async fn partner_feed_advance(
        &self,
        feed: &str,
        seq: i64,
        rows: &[NewWebhook],
        now_ms: i64,
    ) -> Result<u64> {
        let upsert = "INSERT INTO partner_feeds (feed, seq) VALUES ($1, $2) \
                      ON CONFLICT (feed) DO UPDATE SET seq = CASE \
                      WHEN excluded.seq > partner_feeds.seq THEN excluded.seq \
                      ELSE partner_feeds.seq END";
        let mut tx = self.begin_write().await?;
        let tx_ref = &mut tx;
        let added = dispatch!(tx_ref, conn => {
            let mut added = 0;
            for row in rows {
                added += sqlx::query(WEBHOOK_INSERT)
                    .bind(&row.event_id)
                    .bind(&row.app_id)
                    .bind(row.event_type)
                    .bind(&row.body)
                    .bind(now_ms)
                    .execute(&mut **conn)
                    .await?
                    .rows_affected();
            }
            sqlx::query(upsert)
                .bind(feed)
                .bind(seq)
                .execute(&mut **conn)
                .await?;
            added
        });
        tx.commit().await?;
        Ok(added)
    }

    /// Pending webhook rows due at `now_ms`, oldest first, at most `limit`, with their
    /// application's current URL.
    pub(crate) async fn partner_webhooks_due(
        &self,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<DueWebhook>> {
        type Row = (String, String, String, String, i64, Option<String>);
        let rows: Vec<Row> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT w.event_id, w.app_id, w.event_type, w.body, w.attempts, a.webhook_url \
                 FROM partner_webhooks w JOIN partner_apps a ON a.app_id = w.app_id \
                 WHERE w.state = 'pending' AND w.next_at_ms <= $1 \
                 ORDER BY w.next_at_ms, w.event_id LIMIT $2",
            )
            .bind(now_ms)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| DueWebhook {
                event_id: r.0,
                app_id: r.1,
                event_type: r.2,
                body: r.3,
                attempts: r.4,
                webhook_url: r.5,
            })
            .collect())
    }

    /// Records a delivery attempt: delivered, or retried at `next_at_ms`, or failed for good.
    pub(crate) async fn partner_webhook_attempt(
        &self,
        event_id: &str,
        state: &str,
        attempts: i64,
        next_at_ms: i64,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let delivered = (state == "delivered").then_some(now_ms);
        dispatch!(self, pool => {
            sqlx::query(
                "UPDATE partner_webhooks SET state = $1, attempts = $2, next_at_ms = $3, \
                 last_error = $4, delivered_at_ms = $5 WHERE event_id = $6",
            )
            .bind(state)
            .bind(attempts)
            .bind(next_at_ms)
            .bind(error)
            .bind(delivered)
            .bind(event_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The webhook rows of an application, newest first (operators and tests):
    /// (event_id, event_type, state, attempts, body).
    pub(crate) async fn partner_webhooks_of(
        &self,
        app_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, String, String, i64, String)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT event_id, event_type, state, attempts, body FROM partner_webhooks \
                 WHERE app_id = $1 ORDER BY created_at_ms DESC, event_id LIMIT $2",
            )
            .bind(app_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }))
    }
}
