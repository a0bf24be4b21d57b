//! The registry's SQL (migrations/*/0400_partner.sql), written once for SQLite and PostgreSQL
//! through the crate's `dispatch!`: partners, applications, keys, scopes, nonces and the audit.
//! The operations' SQL (consents, cards, settlements, webhooks) is in `store_ops.rs`.

use crate::directory::UseNumber;
use crate::store::{Store, Tx, dispatch};

use super::error::{ApiError, PartnerError, Result};
use super::model::{
    AppId, AppState, Application, Credential, KeyAlgorithm, KeyId, Operation, PartnerCode,
    PartnerKind, Scope,
};

/// A registration as the registry writes it (checked by the API layer).
#[derive(Debug, Clone)]
pub struct Registration {
    /// The partner's code.
    pub partner_code: PartnerCode,
    /// The partner's name.
    pub partner_name: String,
    /// The partner's kind.
    pub partner_kind: PartnerKind,
    /// The application's name.
    pub app_name: String,
    /// Requested scopes (at least one, at most `SCOPES_MAX`, no repeats).
    pub scopes: Vec<Scope>,
    /// The credential's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The checked public point `04‖X‖Y`.
    pub public_key: [u8; 65],
    /// SM2 distinguishing ID (empty for ECDSA).
    pub sm2_id: String,
    /// Webhook URL, if any.
    pub webhook_url: Option<String>,
}

/// What an operator decides about an application.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Approve, granting these scopes (each must have been requested) and setting the partner's
    /// rate limit when given (calls per minute, burst).
    Approve {
        /// Scopes granted.
        granted: Vec<Scope>,
        /// New rate limit of the partner.
        rate: Option<(u32, u32)>,
    },
    /// Reject a pending application.
    Reject,
    /// Suspend an approved application.
    Suspend,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Order of writing.
    pub seq: i64,
    /// When, Unix ms UTC.
    pub at_ms: i64,
    /// Who called: a key id, `issuer:<paas id>`, `operator:<account>` or `public` (`-` for a
    /// key id header that was not one).
    pub caller: String,
    /// The application, when known.
    pub app_id: Option<String>,
    /// The partner.
    pub partner_code: Option<String>,
    /// The operation (`card.verify`, `settlement.status`, `app.read`, `register` ...).
    pub operation: String,
    /// The directory use the call was for.
    pub use_number: Option<String>,
    /// The scope it ran under (`use:operation`).
    pub scope: Option<String>,
    /// The person concerned, as SHA-256("ssc-partner-subject-v1\0" ‖ psn_no); never in clear.
    pub subject_sha256: Option<Vec<u8>>,
    /// `ok` or the error code returned.
    pub result: String,
    /// The HTTP status returned.
    pub http_status: u16,
}

/// Default rate limit of a new partner: calls per minute.
pub const RATE_PER_MINUTE_DEFAULT: u32 = 600;
/// Default burst of a new partner.
pub const BURST_DEFAULT: u32 = 20;
/// Most audit rows one read returns.
pub const AUDIT_PAGE_MAX: u32 = 500;
/// Most applications one listing returns.
pub const APPS_PAGE_MAX: u32 = 200;

type AppRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
);
/// (use_number, operation, granted 0/1).
type ScopeRow = (String, String, i64);

const APP_SELECT: &str = "SELECT a.app_id, a.partner_code, p.name, p.kind, a.name, a.state, \
                          a.webhook_url, p.rate_per_minute, p.burst, a.created_at_ms \
                          FROM partner_apps a JOIN partners p ON p.partner_code = a.partner_code";

fn corrupt(what: &'static str) -> PartnerError {
    PartnerError::Corrupt(what)
}

fn scope_of(use_number: &str, operation: &str) -> Result<Scope> {
    Ok(Scope {
        use_number: UseNumber::parse(use_number).map_err(|_| corrupt("partner_scopes"))?,
        operation: Operation::parse(operation).ok_or(corrupt("partner_scopes"))?,
    })
}

fn app_of(row: AppRow, scopes: Vec<ScopeRow>) -> Result<Application> {
    let mut requested = Vec::new();
    let mut granted = Vec::new();
    for (use_number, operation, is_granted) in scopes {
        let scope = scope_of(&use_number, &operation)?;
        if is_granted == 1 {
            granted.push(scope.clone());
        }
        requested.push(scope);
    }
    requested.sort();
    granted.sort();
    Ok(Application {
        app_id: AppId::parse(&row.0).ok_or(corrupt("partner_apps.app_id"))?,
        partner_code: PartnerCode::parse(&row.1).ok_or(corrupt("partners.partner_code"))?,
        partner_name: row.2,
        partner_kind: PartnerKind::parse(&row.3).ok_or(corrupt("partners.kind"))?,
        name: row.4,
        state: AppState::parse(&row.5).ok_or(corrupt("partner_apps.state"))?,
        webhook_url: row.6,
        requested,
        granted,
        rate_per_minute: u32::try_from(row.7).map_err(|_| corrupt("partners.rate"))?,
        burst: u32::try_from(row.8).map_err(|_| corrupt("partners.burst"))?,
        created_at_ms: row.9,
    })
}

fn u32_i64(value: u32) -> i64 {
    i64::from(value)
}

impl Store {
    /// Registers an application (and its partner on first use) as `pending`, with its key and
    /// requested scopes, in one transaction. Errors: `Ok(Err(PartnerMismatch))` if the partner
    /// code exists with another name or kind (nothing written); database errors.
    pub(crate) async fn partner_register(
        &self,
        reg: &Registration,
        app_id: &AppId,
        key_id: &KeyId,
        now_ms: i64,
    ) -> Result<std::result::Result<(), ApiError>> {
        let mut tx = self.begin_write().await?;
        let written = register_in(&mut tx, reg, app_id, key_id, now_ms).await;
        match written {
            Ok(Ok(())) => {
                tx.commit().await?;
                Ok(Ok(()))
            }
            other => {
                tx.rollback().await?;
                other
            }
        }
    }

    /// One application with its scopes, if it exists.
    pub(crate) async fn partner_app(&self, app_id: &AppId) -> Result<Option<Application>> {
        let sql = format!("{APP_SELECT} WHERE a.app_id = $1");
        let scopes_sql =
            "SELECT use_number, operation, granted FROM partner_scopes WHERE app_id = $1";
        let found: Option<(AppRow, Vec<ScopeRow>)> = dispatch!(self, pool => {
            match sqlx::query_as::<_, AppRow>(sqlx::AssertSqlSafe(sql))
                .bind(app_id.as_str())
                .fetch_optional(pool)
                .await?
            {
                None => None,
                Some(row) => {
                    let scopes = sqlx::query_as(scopes_sql)
                        .bind(app_id.as_str())
                        .fetch_all(pool)
                        .await?;
                    Some((row, scopes))
                }
            }
        });
        found.map(|(row, scopes)| app_of(row, scopes)).transpose()
    }

    /// Applications in `state` (all when `None`), oldest first, at most `limit`.
    pub(crate) async fn partner_apps(
        &self,
        state: Option<AppState>,
        limit: u32,
    ) -> Result<Vec<Application>> {
        let sql = format!(
            "{APP_SELECT} WHERE ($1 = '' OR a.state = $1) ORDER BY a.created_at_ms, a.app_id \
             LIMIT $2"
        );
        let rows: Vec<AppRow> = dispatch!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(state.map_or("", AppState::code))
                .bind(i64::from(limit.clamp(1, APPS_PAGE_MAX)))
                .fetch_all(pool)
                .await?
        });
        let mut apps = Vec::with_capacity(rows.len());
        for row in rows {
            let app_id = AppId::parse(&row.0).ok_or(corrupt("partner_apps.app_id"))?;
            let scopes: Vec<ScopeRow> = dispatch!(self, pool => {
                sqlx::query_as(
                    "SELECT use_number, operation, granted FROM partner_scopes WHERE app_id = $1",
                )
                .bind(app_id.as_str())
                .fetch_all(pool)
                .await?
            });
            apps.push(app_of(row, scopes)?);
        }
        Ok(apps)
    }

    /// The credential with this key id, if any.
    pub(crate) async fn partner_credential(&self, key_id: &KeyId) -> Result<Option<Credential>> {
        let row: Option<(String, String, Vec<u8>, String, String)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT app_id, algorithm, public_key, sm2_id, state FROM partner_keys \
                 WHERE key_id = $1",
            )
            .bind(key_id.as_str())
            .fetch_optional(pool)
            .await?
        });
        let Some((app_id, algorithm, public_key, sm2_id, state)) = row else {
            return Ok(None);
        };
        Ok(Some(Credential {
            key_id: key_id.clone(),
            app_id: AppId::parse(&app_id).ok_or(corrupt("partner_keys.app_id"))?,
            algorithm: KeyAlgorithm::parse(&algorithm).ok_or(corrupt("partner_keys.algorithm"))?,
            public_key: <[u8; 65]>::try_from(public_key.as_slice())
                .map_err(|_| corrupt("partner_keys.public_key"))?,
            sm2_id,
            active: state == "active",
        }))
    }

    /// Applies an operator's decision in one transaction, with an event row naming `by`.
    /// Errors: `Ok(Err(AppNotFound | BadTransition | BadScope))` (nothing written); database.
    pub(crate) async fn partner_decide(
        &self,
        app_id: &AppId,
        decision: &Decision,
        by: &str,
        now_ms: i64,
    ) -> Result<std::result::Result<(), ApiError>> {
        let mut tx = self.begin_write().await?;
        let written = decide_in(&mut tx, app_id, decision, by, now_ms).await;
        match written {
            Ok(Ok(())) => {
                tx.commit().await?;
                Ok(Ok(()))
            }
            other => {
                tx.rollback().await?;
                other
            }
        }
    }

    /// Revokes a key (operator `by`), with an event row on its application. Returns the
    /// application, none if no such key. Revoking twice is harmless.
    pub(crate) async fn partner_revoke_key(
        &self,
        key_id: &KeyId,
        by: &str,
        now_ms: i64,
    ) -> Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let tx_ref = &mut tx;
        let app_id: Option<String> = dispatch!(tx_ref, conn => {
            let found: Option<(String,)> =
                sqlx::query_as("SELECT app_id FROM partner_keys WHERE key_id = $1")
                    .bind(key_id.as_str())
                    .fetch_optional(&mut **conn)
                    .await?;
            if let Some((app_id,)) = &found {
                sqlx::query("UPDATE partner_keys SET state = 'revoked' WHERE key_id = $1")
                    .bind(key_id.as_str())
                    .execute(&mut **conn)
                    .await?;
                sqlx::query(
                    "INSERT INTO partner_app_events (app_id, at_ms, by_account, action, detail) \
                     VALUES ($1, $2, $3, 'key_revoked', $4)",
                )
                .bind(app_id)
                .bind(now_ms)
                .bind(by)
                .bind(serde_json::json!({ "key_id": key_id.as_str() }).to_string())
                .execute(&mut **conn)
                .await?;
            }
            found.map(|(app_id,)| app_id)
        });
        tx.commit().await?;
        Ok(app_id)
    }

    /// Records a nonce of a key until `expires_at_ms`; false if it was already recorded (a
    /// replay).
    pub(crate) async fn partner_nonce_fresh(
        &self,
        key_id: &KeyId,
        nonce: &str,
        expires_at_ms: i64,
    ) -> Result<bool> {
        let done = dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_nonces (key_id, nonce, expires_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(key_id.as_str())
            .bind(nonce)
            .bind(expires_at_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Forgets nonces whose window has passed (they can no longer be replayed: their timestamp
    /// is refused first).
    pub(crate) async fn partner_nonces_purge(&self, now_ms: i64) -> Result<u64> {
        Ok(dispatch!(self, pool => {
            sqlx::query("DELETE FROM partner_nonces WHERE expires_at_ms < $1")
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Appends one audit row (its `seq` is assigned by the database).
    pub(crate) async fn partner_audit_write(&self, record: &AuditRecord) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO partner_audit (at_ms, caller, app_id, partner_code, operation, \
                 use_number, scope, subject_sha256, result, http_status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(record.at_ms)
            .bind(&record.caller)
            .bind(record.app_id.as_deref())
            .bind(record.partner_code.as_deref())
            .bind(&record.operation)
            .bind(record.use_number.as_deref())
            .bind(record.scope.as_deref())
            .bind(record.subject_sha256.as_deref())
            .bind(&record.result)
            .bind(i64::from(record.http_status))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Audit rows, newest first, of one application when given, older than `before` when given.
    pub(crate) async fn partner_audit_read(
        &self,
        app_id: Option<&AppId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        type Row = (
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            String,
            i64,
        );
        let rows: Vec<Row> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT seq, at_ms, caller, app_id, partner_code, operation, use_number, scope, \
                 subject_sha256, result, http_status FROM partner_audit \
                 WHERE ($1 = '' OR app_id = $1) AND seq < $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(app_id.map_or("", AppId::as_str))
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.clamp(1, AUDIT_PAGE_MAX)))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.0,
                    at_ms: r.1,
                    caller: r.2,
                    app_id: r.3,
                    partner_code: r.4,
                    operation: r.5,
                    use_number: r.6,
                    scope: r.7,
                    subject_sha256: r.8,
                    result: r.9,
                    http_status: u16::try_from(r.10).map_err(|_| corrupt("partner_audit"))?,
                })
            })
            .collect()
    }
}

async fn register_in(
    tx: &mut Tx,
    reg: &Registration,
    app_id: &AppId,
    key_id: &KeyId,
    now_ms: i64,
) -> Result<std::result::Result<(), ApiError>> {
    let lock = tx.lock_suffix();
    let sql = format!("SELECT name, kind FROM partners WHERE partner_code = $1{lock}");
    let existing: Option<(String, String)> = dispatch!(tx, conn => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(reg.partner_code.as_str())
            .fetch_optional(&mut **conn)
            .await?
    });
    match existing {
        Some((name, kind)) if name != reg.partner_name || kind != reg.partner_kind.code() => {
            return Ok(Err(ApiError::PartnerMismatch));
        }
        Some(_) => {}
        None => dispatch!(tx, conn => {
            sqlx::query(
                "INSERT INTO partners (partner_code, name, kind, rate_per_minute, burst, \
                 created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(reg.partner_code.as_str())
            .bind(&reg.partner_name)
            .bind(reg.partner_kind.code())
            .bind(u32_i64(RATE_PER_MINUTE_DEFAULT))
            .bind(u32_i64(BURST_DEFAULT))
            .bind(now_ms)
            .execute(&mut **conn)
            .await?;
        }),
    }
    let detail = serde_json::json!({
        "requested": reg.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "key_id": key_id.as_str(),
        "algorithm": reg.algorithm.code(),
    })
    .to_string();
    dispatch!(tx, conn => {
        sqlx::query(
            "INSERT INTO partner_apps (app_id, partner_code, name, state, webhook_url, \
             created_at_ms, updated_at_ms) VALUES ($1, $2, $3, 'pending', $4, $5, $5)",
        )
        .bind(app_id.as_str())
        .bind(reg.partner_code.as_str())
        .bind(&reg.app_name)
        .bind(reg.webhook_url.as_deref())
        .bind(now_ms)
        .execute(&mut **conn)
        .await?;
        sqlx::query(
            "INSERT INTO partner_keys (key_id, app_id, algorithm, public_key, sm2_id, state, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
        )
        .bind(key_id.as_str())
        .bind(app_id.as_str())
        .bind(reg.algorithm.code())
        .bind(reg.public_key.to_vec())
        .bind(&reg.sm2_id)
        .bind(now_ms)
        .execute(&mut **conn)
        .await?;
        for scope in &reg.scopes {
            sqlx::query(
                "INSERT INTO partner_scopes (app_id, use_number, operation, granted) \
                 VALUES ($1, $2, $3, 0)",
            )
            .bind(app_id.as_str())
            .bind(scope.use_number.as_str())
            .bind(scope.operation.code())
            .execute(&mut **conn)
            .await?;
        }
        sqlx::query(
            "INSERT INTO partner_app_events (app_id, at_ms, by_account, action, detail) \
             VALUES ($1, $2, 'partner', 'registered', $3)",
        )
        .bind(app_id.as_str())
        .bind(now_ms)
        .bind(&detail)
        .execute(&mut **conn)
        .await?;
    });
    Ok(Ok(()))
}

async fn decide_in(
    tx: &mut Tx,
    app_id: &AppId,
    decision: &Decision,
    by: &str,
    now_ms: i64,
) -> Result<std::result::Result<(), ApiError>> {
    let lock = tx.lock_suffix();
    let sql = format!("SELECT state, partner_code FROM partner_apps WHERE app_id = $1{lock}");
    let found: Option<(String, String)> = dispatch!(tx, conn => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(app_id.as_str())
            .fetch_optional(&mut **conn)
            .await?
    });
    let Some((state, partner_code)) = found else {
        return Ok(Err(ApiError::AppNotFound));
    };
    let state = AppState::parse(&state).ok_or(corrupt("partner_apps.state"))?;
    let (to, action) = match (decision, state) {
        (Decision::Approve { .. }, AppState::Pending | AppState::Suspended) => {
            (AppState::Approved, "approved")
        }
        (Decision::Reject, AppState::Pending) => (AppState::Rejected, "rejected"),
        (Decision::Suspend, AppState::Approved) => (AppState::Suspended, "suspended"),
        _ => return Ok(Err(ApiError::BadTransition)),
    };
    let mut detail = serde_json::json!({ "from": state.code() });
    if let Decision::Approve { granted, rate } = decision {
        let requested: Vec<(String, String)> = dispatch!(tx, conn => {
            sqlx::query_as("SELECT use_number, operation FROM partner_scopes WHERE app_id = $1")
                .bind(app_id.as_str())
                .fetch_all(&mut **conn)
                .await?
        });
        let all_requested = granted.iter().all(|scope| {
            requested.iter().any(|(u, o)| {
                u == scope.use_number.as_str() && o.as_str() == scope.operation.code()
            })
        });
        if !all_requested {
            return Ok(Err(ApiError::BadScope));
        }
        detail["granted"] = granted.iter().map(ToString::to_string).collect();
        dispatch!(tx, conn => {
            sqlx::query("UPDATE partner_scopes SET granted = 0 WHERE app_id = $1")
                .bind(app_id.as_str())
                .execute(&mut **conn)
                .await?;
            for scope in granted {
                sqlx::query(
                    "UPDATE partner_scopes SET granted = 1 WHERE app_id = $1 AND use_number = $2 \
                     AND operation = $3",
                )
                .bind(app_id.as_str())
                .bind(scope.use_number.as_str())
                .bind(scope.operation.code())
                .execute(&mut **conn)
                .await?;
            }
        });
        if let Some((per_minute, burst)) = rate {
            detail["rate_per_minute"] = (*per_minute).into();
            detail["burst"] = (*burst).into();
            dispatch!(tx, conn => {
                sqlx::query(
                    "UPDATE partners SET rate_per_minute = $1, burst = $2 WHERE partner_code = $3",
                )
                .bind(u32_i64(*per_minute))
                .bind(u32_i64(*burst))
                .bind(&partner_code)
                .execute(&mut **conn)
                .await?;
            });
        }
    }
    dispatch!(tx, conn => {
        sqlx::query("UPDATE partner_apps SET state = $1, updated_at_ms = $2 WHERE app_id = $3")
            .bind(to.code())
            .bind(now_ms)
            .bind(app_id.as_str())
            .execute(&mut **conn)
            .await?;
        sqlx::query(
            "INSERT INTO partner_app_events (app_id, at_ms, by_account, action, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(app_id.as_str())
        .bind(now_ms)
        .bind(by)
        .bind(action)
        .bind(detail.to_string())
        .execute(&mut **conn)
        .await?;
    });
    Ok(Ok(()))
}
