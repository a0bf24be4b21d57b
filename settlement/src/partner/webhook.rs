//! Webhooks: events for partners go through the `partner_webhooks` outbox and are POSTed to
//! the application's `webhook_url` until it answers 2xx, with exponential backoff between
//! attempts (`backoff_ms_base · 2^(attempt−1)`, capped at `backoff_ms_max`) and at most
//! `attempts_max` attempts, after which the row is `failed` (visible to operators).
//!
//! - `settlement.done`: the FEED scans the medical `settlements` table in the order of their
//!   ledger postings (`postings.seq`) from its cursor up to the postings' commit horizon, and
//!   writes one row per subscribed application (`webhook.settlement` granted) with the cursor
//!   move, in one transaction. On PostgreSQL a posting with a lower seq may commit after a higher
//!   one in another process, so each round takes a mark (`Store::postings_mark`: the last seq
//!   drawn, then the open transactions that drew one) and the next round reads up to it once
//!   none of those transactions is open: events leave one round (`tick_ms`) later, and a
//!   transaction that stays open holds the feed back (logged after 30 s), never makes it skip a
//!   settlement. The event id `settlement.done-<setl_id>-<app_id>` makes a round repeated by
//!   another process harmless.
//! - `card.lost`: written by `ops::set_card_status` in the status change's transaction.
//!
//! Every delivery is signed by the platform (our scheme `SSC-WEBHOOK-V1`): headers
//! `X-SSC-Event-Id`, `X-SSC-Event-Type`, `X-SSC-Timestamp` (Unix ms), `X-SSC-Key-Id` (the
//! platform key's alias) and `X-SSC-Signature`: SM2 r‖s hex (SM3, distinguishing ID
//! `1234567812345678`) over `SSC-WEBHOOK-V1\n<event id>\n<timestamp>\n<hex SHA-256 of body>`.
//! The key lives in the `hsm` key store (usage S0, never exported); partners fetch the public
//! key from `GET /api/partner/v1/webhook-key`.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use hsm::keystore::{Exportability, KeyAlgorithm as HsmAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use sha2::{Digest, Sha256};

use super::error::{PartnerError, Result};
use super::store_ops::NewWebhook;
use super::{PartnerPlatform, now_ms};

/// The feed's name in `partner_feeds`.
pub const SETTLEMENT_FEED: &str = "settlement.done";
/// SM2 distinguishing ID of webhook signatures (GM/T 0009 default).
pub const WEBHOOK_SM2_ID: &str = "1234567812345678";
/// How long the settlement feed waits on one mark before each round logs a warning.
const FEED_WAIT_WARN: Duration = Duration::from_secs(30);
/// The hsm caller name of the platform.
const HSM_CALLER: &str = "partner-platform";

/// Webhook delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// Period of the background round (feed, deliveries, nonce purge), ms.
    pub tick_ms: u64,
    /// Most deliveries per round.
    pub batch_max: i64,
    /// Most attempts per event.
    pub attempts_max: i64,
    /// Wait before the second attempt, ms; doubles each attempt.
    pub backoff_ms_base: i64,
    /// Longest wait between attempts, ms.
    pub backoff_ms_max: i64,
    /// Timeout of one POST, ms.
    pub request_timeout_ms: u64,
    /// Most settlements the feed reads per round.
    pub feed_batch_max: i64,
}

impl Default for WebhookOptions {
    fn default() -> WebhookOptions {
        WebhookOptions {
            tick_ms: 1_000,
            batch_max: 64,
            attempts_max: 10,
            backoff_ms_base: 2_000,
            backoff_ms_max: 3_600_000,
            request_timeout_ms: 5_000,
            feed_batch_max: 512,
        }
    }
}

/// ISO 8601 UTC with milliseconds, e.g. `2026-11-30T08:00:00.000Z`.
pub fn utc(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The platform's webhook signing key in an `hsm` key store (SM2, usage S0).
pub struct WebhookSigner {
    hsm: Mutex<hsm::ops::Hsm>,
    alias: String,
    public_key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSigner")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

impl WebhookSigner {
    /// Opens the key store in `dir` under `lmk` and takes the SM2 key `alias`, creating it
    /// (S0, sign, not exportable) if absent. Errors: `Hsm` (wrong LMK, store, alias).
    pub fn open(dir: &Path, lmk: hsm::lmk::Lmk, alias: &str) -> Result<WebhookSigner> {
        let hsm_error = |e: hsm::ops::HsmError| PartnerError::Hsm(e.to_string());
        let mut hsm = hsm::ops::Hsm::open(dir, lmk).map_err(hsm_error)?;
        if hsm.get_key(HSM_CALLER, alias).is_err() {
            hsm.create_key(
                HSM_CALLER,
                KeyHeader {
                    alias: alias.to_owned(),
                    algorithm: HsmAlgorithm::Sm2,
                    usage: KeyUsage::S0,
                    mode: ModeOfUse::S,
                    version: *b"00",
                    exportability: Exportability::NonExportable,
                },
            )
            .map_err(hsm_error)?;
        }
        let public_key = hsm.get_public_key(HSM_CALLER, alias).map_err(hsm_error)?;
        Ok(WebhookSigner {
            hsm: Mutex::new(hsm),
            alias: alias.to_owned(),
            public_key,
        })
    }

    /// The key's alias (the `X-SSC-Key-Id` of deliveries).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The public key `04‖X‖Y`, 65 bytes.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The text a delivery's signature covers.
    pub fn signed_text(event_id: &str, timestamp_ms: i64, body: &[u8]) -> String {
        format!(
            "SSC-WEBHOOK-V1\n{event_id}\n{timestamp_ms}\n{}",
            hex::encode(Sha256::digest(body))
        )
    }

    /// Signs a delivery: r‖s, 64 bytes. Errors: `Hsm`.
    pub fn sign(&self, event_id: &str, timestamp_ms: i64, body: &[u8]) -> Result<Vec<u8>> {
        let text = WebhookSigner::signed_text(event_id, timestamp_ms, body);
        let mut hsm = self.hsm.lock().unwrap_or_else(|p| p.into_inner());
        hsm.sign_data(HSM_CALLER, &self.alias, text.as_bytes(), WEBHOOK_SM2_ID)
            .map_err(|e| PartnerError::Hsm(e.to_string()))
    }
}

/// The wait before attempt `attempts + 1`, ms.
fn backoff_ms(options: &WebhookOptions, attempts: i64) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    options
        .backoff_ms_base
        .saturating_mul(1_i64 << exponent)
        .min(options.backoff_ms_max)
}

impl PartnerPlatform {
    /// One feed round: turns settlements committed since the cursor into `settlement.done`
    /// rows for the subscribed applications. Returns the rows added. Errors: database.
    pub async fn run_settlement_feed(&self) -> Result<u64> {
        let options = &self.options.webhooks;
        let Some(horizon) = self.feed_horizon().await? else {
            return Ok(0);
        };
        let cursor = self.store.partner_feed_cursor(SETTLEMENT_FEED).await?;
        let rows = self
            .store
            .partner_settlements_between(cursor, horizon, options.feed_batch_max)
            .await?;
        let Some(last) = rows.last().map(|r| r.seq) else {
            return Ok(0);
        };
        let subscribers = self.store.partner_subscribers("webhook.settlement").await?;
        let now = now_ms();
        let mut events = Vec::new();
        for row in &rows {
            for app_id in &subscribers {
                let event_id = format!("settlement.done-{}-{app_id}", row.setl_id);
                let body = serde_json::json!({
                    "event_id": event_id,
                    "event_type": "settlement.done",
                    "occurred_at": utc(now),
                    "setl_id": row.setl_id,
                    "mdtrt_id": row.mdtrt_id,
                    "fixmedins_code": row.fixmedins_code,
                    "insuplc_admdvs": format!("{:06}", row.insuplc_admdvs),
                    "setl_date": row.setl_date,
                    "medfee_sumamt": rust_decimal::Decimal::new(row.medfee_sumamt_fen, 2).to_string(),
                    "fund_pay_sumamt": rust_decimal::Decimal::new(row.fund_pay_sumamt_fen, 2).to_string(),
                    "acct_pay": rust_decimal::Decimal::new(row.acct_pay_fen, 2).to_string(),
                    "psn_cash_pay": rust_decimal::Decimal::new(row.psn_cash_pay_fen, 2).to_string(),
                })
                .to_string();
                events.push(NewWebhook {
                    event_id,
                    app_id: app_id.clone(),
                    event_type: "settlement.done",
                    body,
                });
            }
        }
        self.store
            .partner_feed_advance(SETTLEMENT_FEED, last.max(cursor), &events, now)
            .await
    }

    /// The highest seq the feed may read now: unbounded on SQLite; on PostgreSQL the mark an
    /// earlier round took, once none of the transactions open at it is open any more, else
    /// `None` (wait for a later round). Takes the next mark when the last one is settled.
    /// Errors: database.
    async fn feed_horizon(&self) -> Result<Option<i64>> {
        let pending = self
            .feed_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let settled = match pending {
            Some((mark, taken)) if self.store.any_open(&mark.open).await? => {
                let waited = taken.elapsed();
                if waited >= FEED_WAIT_WARN {
                    tracing::warn!(
                        waited_s = waited.as_secs(),
                        seq = mark.seq,
                        transactions = ?mark.open,
                        "settlement feed held back by transactions still open since they drew a \
                         posting seq (see pg_locks for these virtual transaction ids)"
                    );
                }
                return Ok(None);
            }
            Some((mark, _)) => Some(mark.seq),
            None => None,
        };
        let Some(next) = self.store.postings_mark().await? else {
            return Ok(Some(i64::MAX));
        };
        *self.feed_mark.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((next, std::time::Instant::now()));
        Ok(settled)
    }

    /// One delivery round: POSTs the due rows, records each attempt. Returns the rows
    /// delivered. Without a signer nothing is sent (rows wait). Errors: database.
    pub async fn deliver_webhooks(&self) -> Result<usize> {
        let Some(signer) = &self.signer else {
            return Ok(0);
        };
        let options = &self.options.webhooks;
        let due = self
            .store
            .partner_webhooks_due(now_ms(), options.batch_max)
            .await?;
        let mut delivered = 0;
        for row in due {
            let attempts = row.attempts.saturating_add(1);
            let outcome = match &row.webhook_url {
                None => Err("the application has no webhook_url".to_owned()),
                Some(url) => {
                    self.post(signer, url, &row.event_id, &row.event_type, &row.body)
                        .await
                }
            };
            let now = now_ms();
            match outcome {
                Ok(()) => {
                    delivered += 1;
                    self.store
                        .partner_webhook_attempt(
                            &row.event_id,
                            "delivered",
                            attempts,
                            now,
                            None,
                            now,
                        )
                        .await?;
                }
                Err(error) => {
                    let state = if attempts >= options.attempts_max {
                        "failed"
                    } else {
                        "pending"
                    };
                    tracing::info!(event_id = row.event_id, app_id = row.app_id, attempts, %error, "webhook not delivered");
                    let next = now.saturating_add(backoff_ms(options, attempts));
                    self.store
                        .partner_webhook_attempt(
                            &row.event_id,
                            state,
                            attempts,
                            next,
                            Some(&error),
                            now,
                        )
                        .await?;
                }
            }
        }
        Ok(delivered)
    }

    async fn post(
        &self,
        signer: &WebhookSigner,
        url: &str,
        event_id: &str,
        event_type: &str,
        body: &str,
    ) -> std::result::Result<(), String> {
        let timestamp = now_ms();
        let signature = signer
            .sign(event_id, timestamp, body.as_bytes())
            .map_err(|e| e.to_string())?;
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-ssc-event-id", event_id)
            .header("x-ssc-event-type", event_type)
            .header("x-ssc-timestamp", timestamp.to_string())
            .header("x-ssc-key-id", signer.alias())
            .header("x-ssc-signature", hex::encode(signature))
            .body(body.to_owned())
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", response.status().as_u16()))
        }
    }

    /// One background round: the feed, deliveries, and the purge of expired nonces. Errors are
    /// logged; the next round retries.
    pub async fn tick(&self) {
        if let Err(error) = self.run_settlement_feed().await {
            tracing::warn!(%error, "settlement feed round failed");
        }
        if let Err(error) = self.deliver_webhooks().await {
            tracing::warn!(%error, "webhook delivery round failed");
        }
        if let Err(error) = self.store.partner_nonces_purge(now_ms()).await {
            tracing::warn!(%error, "nonce purge failed");
        }
    }

    /// Runs [`PartnerPlatform::tick`] every `tick_ms` until the task is aborted.
    pub fn spawn_worker(platform: std::sync::Arc<PartnerPlatform>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let period = Duration::from_millis(platform.options.webhooks.tick_ms.max(10));
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                platform.tick().await;
            }
        })
    }

    /// The webhook rows of an application, newest first, at most `limit`:
    /// (event_id, event_type, state, attempts, body). Errors: database.
    pub async fn webhooks_of(
        &self,
        app_id: &super::AppId,
        limit: i64,
    ) -> Result<Vec<(String, String, String, i64, String)>> {
        self.store.partner_webhooks_of(app_id.as_str(), limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let options = WebhookOptions {
            backoff_ms_base: 100,
            backoff_ms_max: 1_000,
            ..WebhookOptions::default()
        };
        let waits: Vec<i64> = (1..=6).map(|a| backoff_ms(&options, a)).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn utc_text() {
        // 2026-11-30T00:00:00Z = 1795996800 s (Python: datetime(2026, 11, 30,
        // tzinfo=timezone.utc).timestamp()).
        assert_eq!(utc(1_795_996_800_000), "2026-11-30T00:00:00Z");
        assert_eq!(utc(1_795_996_800_123), "2026-11-30T00:00:00.123Z");
    }
}
