//! Sessions: token verification (signature, claims, expiry, revocation), sign-out, and the
//! lost-card report that revokes every session of the card and writes the `card_lost` event to
//! the outbox (`identity_events`) in the same transaction.

use serde::Serialize;

use super::error::{IdentityError, Result};
use super::token::Claims;
use super::{Identity, now_ms, ordered_id};
use crate::store::dispatch;

/// How far a token's `iat` may lie in the future (clock skew between nodes), seconds.
const IAT_SKEW_S: i64 = 60;
/// Most events returned by one [`Identity::events_after`] call.
pub const EVENTS_PAGE_MAX: u32 = 500;

/// A verified token: the claims of a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSession {
    /// The token's claims (signature, issuer, audience, times and session checked).
    pub claims: Claims,
}

impl HolderSession {
    /// The holder pseudonym.
    pub fn holder_id(&self) -> &str {
        &self.claims.sub
    }
}

/// What a lost-card report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostOutcome {
    /// False when the card number had been reported before (nothing changed).
    pub newly_reported: bool,
    /// Sessions (tokens) revoked by this report.
    pub sessions_revoked: u64,
    /// The outbox event written (`card_lost`), if newly reported.
    pub event_id: Option<String>,
}

/// One outbox event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityEvent {
    /// Time-ordered id (page with `after`).
    pub event_id: String,
    /// `card_lost`.
    pub kind: String,
    /// The holder pseudonym.
    pub holder_id: String,
    /// JSON without personal data.
    pub detail: serde_json::Value,
    /// Unix ms.
    pub created_at_ms: i64,
}

impl Identity {
    /// Verifies a token: form, ES256 signature by the hsm's key, `iss`, `aud`, `exp` (now <
    /// exp), `iat` (not in the future beyond 60 s), and its session neither revoked nor unknown.
    ///
    /// Errors: `TokenMissing`, `TokenInvalid`, `TokenExpired`, `TokenRevoked`, database.
    pub async fn verify(&self, token: &str) -> Result<HolderSession> {
        let claims = self.token_key.verify_signature(token)?;
        if claims.iss != self.options.issuer || claims.aud != self.options.audience {
            return Err(IdentityError::TokenInvalid);
        }
        let now_s = now_ms() / 1_000;
        if now_s >= claims.exp {
            return Err(IdentityError::TokenExpired);
        }
        if claims.iat > now_s + IAT_SKEW_S {
            return Err(IdentityError::TokenInvalid);
        }
        let row: Option<(String, Option<i64>)> = dispatch!(&self.store, pool => {
            sqlx::query_as("SELECT holder_id, revoked_at_ms FROM identity_sessions WHERE sid = $1")
                .bind(&claims.sid)
                .fetch_optional(pool)
                .await?
        });
        match row {
            None => Err(IdentityError::TokenInvalid),
            Some((holder, _)) if holder != claims.sub => Err(IdentityError::TokenInvalid),
            Some((_, Some(_))) => Err(IdentityError::TokenRevoked),
            Some((_, None)) => Ok(HolderSession { claims }),
        }
    }

    /// Signs out: the session's token is refused from now on (idempotent). Errors: database.
    pub async fn sign_out(&self, session: &HolderSession) -> Result<()> {
        let _turn = self.gate.enter().await;
        dispatch!(&self.store, pool => {
            sqlx::query(
                "UPDATE identity_sessions SET revoked_at_ms = $1, revoked_reason = 'signout' \
                 WHERE sid = $2 AND revoked_at_ms IS NULL",
            )
            .bind(now_ms())
            .bind(&session.claims.sid)
            .execute(pool)
            .await?;
        });
        tracing::info!(holder = %session.holder_id(), "signed out");
        Ok(())
    }

    /// True if the card (by keyed hash of its 卡识别码) or its card number was reported lost.
    pub(crate) async fn card_is_lost(
        &self,
        card_hmac: &[u8; 32],
        card_no_hmac: &[u8; 32],
    ) -> Result<bool> {
        let row: Option<(i64,)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT CAST(1 AS BIGINT) FROM identity_lost_cards WHERE card_no_hmac = $1 \
                 UNION ALL SELECT CAST(1 AS BIGINT) FROM identity_cards WHERE card_hmac = $2 AND status = 'L' \
                 LIMIT 1",
            )
            .bind(card_no_hmac.as_slice())
            .bind(card_hmac.as_slice())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.is_some())
    }

    /// Reports the card with number `card_no` (卡号) lost: the number is refused at sign-in from
    /// now on, every card row with it is marked lost, every live session of those cards is
    /// revoked, and a `card_lost` event is written to the outbox — one transaction. A repeat
    /// changes nothing. `reporter` is the terminal or operator account (audited in the row).
    ///
    /// Errors: `NotFound` (no insured person holds this card number: nothing written),
    /// `BadField` (card_no), database.
    pub async fn report_lost(&self, card_no: &str, reporter: &str) -> Result<LostOutcome> {
        check_card_no(card_no)?;
        let person = self.person_by_card_no(card_no).await.map_err(|e| match e {
            IdentityError::HolderUnknown => IdentityError::NotFound,
            other => other,
        })?;
        let holder_id = self.keys.holder_id(&person.psn_no);
        let card_no_hmac = self.keys.keyed_hash("card_no", card_no);
        let now = now_ms();
        let event_id = ordered_id(now)?;
        let _turn = self.gate.enter().await;
        let mut tx = self.store.begin_write().await?;
        let result: std::result::Result<LostOutcome, sqlx::Error> = async {
            Ok(dispatch!(&mut tx, conn => {
                let inserted = sqlx::query(
                    "INSERT INTO identity_lost_cards (card_no_hmac, reporter, reported_at_ms) \
                     VALUES ($1, $2, $3) ON CONFLICT (card_no_hmac) DO NOTHING",
                )
                .bind(card_no_hmac.as_slice())
                .bind(reporter)
                .bind(now)
                .execute(&mut **conn)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE identity_cards SET status = 'L', lost_at_ms = $1 \
                     WHERE card_no_hmac = $2 AND status = 'A'",
                )
                .bind(now)
                .bind(card_no_hmac.as_slice())
                .execute(&mut **conn)
                .await?;
                let revoked = sqlx::query(
                    "UPDATE identity_sessions SET revoked_at_ms = $1, revoked_reason = 'card_lost' \
                     WHERE revoked_at_ms IS NULL AND card_hmac IN \
                     (SELECT card_hmac FROM identity_cards WHERE card_no_hmac = $2)",
                )
                .bind(now)
                .bind(card_no_hmac.as_slice())
                .execute(&mut **conn)
                .await?
                .rows_affected();
                if inserted == 1 {
                    let detail = serde_json::json!({
                        "sessions_revoked": revoked,
                        "insuplc_admdvs": person.insuplc_admdvs,
                    });
                    sqlx::query(
                        "INSERT INTO identity_events (event_id, kind, holder_id, detail, \
                         created_at_ms) VALUES ($1, 'card_lost', $2, $3, $4)",
                    )
                    .bind(&event_id)
                    .bind(&holder_id)
                    .bind(detail.to_string())
                    .bind(now)
                    .execute(&mut **conn)
                    .await?;
                }
                LostOutcome {
                    newly_reported: inserted == 1,
                    sessions_revoked: revoked,
                    event_id: (inserted == 1).then(|| event_id.clone()),
                }
            }))
        }
        .await;
        match result {
            Ok(outcome) => {
                tx.commit().await?;
                tracing::info!(holder = %holder_id, revoked = outcome.sessions_revoked, "card reported lost");
                Ok(outcome)
            }
            Err(error) => {
                tx.rollback().await?;
                Err(error.into())
            }
        }
    }

    /// Outbox events after `after` (an `event_id`; none: from the start), oldest first, at most
    /// `limit` (clamped to 1..=[`EVENTS_PAGE_MAX`]). The partner platform's webhooks read here.
    /// Errors: `Corrupt("identity_events")`, database.
    pub async fn events_after(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<IdentityEvent>> {
        let rows: Vec<(String, String, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT event_id, kind, holder_id, detail, created_at_ms FROM identity_events \
                 WHERE event_id > $1 ORDER BY event_id LIMIT $2",
            )
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit.clamp(1, EVENTS_PAGE_MAX)))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(event_id, kind, holder_id, detail, created_at_ms)| {
                Ok(IdentityEvent {
                    event_id,
                    kind,
                    holder_id,
                    detail: serde_json::from_str(&detail)
                        .map_err(|_| IdentityError::Corrupt("identity_events"))?,
                    created_at_ms,
                })
            })
            .collect()
    }
}

/// A 卡号: 1..=20 ASCII letters or digits (refdata's rule). Errors: `BadField`.
pub(crate) fn check_card_no(card_no: &str) -> Result<()> {
    if card_no.is_empty()
        || card_no.len() > 20
        || !card_no.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(IdentityError::BadField {
            field: "card_no",
            reason: "must be 1..=20 ASCII letters or digits",
        });
    }
    Ok(())
}
