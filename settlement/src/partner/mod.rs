//! The partner platform (issue 8): departments, banks and certified third parties build on the
//! card through one signed API.
//!
//! - Registry ([`model`], `store.rs`): a partner registers an APPLICATION against directory uses
//!   with a public key (SM2 or ECDSA P-256) and the scopes it asks for (an [`Operation`] on a
//!   [`UseNumber`]); an operator approves it, granting all or some scopes and the partner's rate
//!   limit; every decision is an event row naming the operator.
//! - Signed requests ([`canonical`], [`auth`]): each call is signed over a canonical request;
//!   the `hsm` crate checks the signature; stale timestamps and replayed nonces are refused; each
//!   refusal has a stable code ([`ApiError`]). Rate limits per partner ([`ratelimit`]) answer 429
//!   with `Retry-After`.
//! - Operations ([`ops`]): consent tokens issued by a terminal agent or kiosk after the holder's
//!   PIN (or by the e-card), single use, short-lived, bound to one application and scope; card
//!   status and identity verification with that consent (ID number and name masked unless the
//!   scope `card.identity` is granted); settlement status from the medical tables; the card status
//!   register (reported lost).
//! - Webhooks ([`webhook`]): `settlement.done` (a feed over the settlements table) and
//!   `card.lost` (written with the status change) go through an outbox, delivered with retries
//!   and exponential backoff, signed with the platform's SM2 key held by the `hsm` key store.
//! - Audit: every call (who, operation, use, scope, result, HTTP status) is one row of
//!   `partner_audit`; the person concerned only as a domain-separated SHA-256 of the psn_no ([`subject_ref`]).
//! - HTTP ([`api`]): the partner API under `/api/partner/v1`, its OpenAPI document.
//!
//! Storage: the ledger's database (SQLite or PostgreSQL, migrations/*/0400_partner.sql).

pub mod api;
pub mod auth;
pub mod canonical;
pub mod error;
pub mod model;
pub mod ops;
pub mod ratelimit;
mod store;
mod store_ops;
pub mod webhook;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::Ledger;
use crate::directory::{Directory, UseNumber};
use crate::service::{Gateway, GatewayConfig};
use crate::store::Store;

pub use error::{ApiError, ErrorBody, PartnerError, Result};
pub use model::{
    AppId, AppState, Application, Credential, KeyAlgorithm, KeyId, Operation, PartnerCode,
    PartnerKind, Scope,
};
pub use store::{
    APPS_PAGE_MAX, AUDIT_PAGE_MAX, AuditRecord, BURST_DEFAULT, Decision, RATE_PER_MINUTE_DEFAULT,
    Registration,
};
pub use webhook::{WebhookOptions, WebhookSigner};

/// Settings of the partner platform.
#[derive(Debug, Clone)]
pub struct PartnerOptions {
    /// Largest accepted |now − X-SSC-Timestamp|, ms.
    pub skew_ms_max: i64,
    /// Longest consent token life, seconds.
    pub consent_ttl_s_max: u32,
    /// Consent token life when the issuer names none, seconds.
    pub consent_ttl_s_default: u32,
    /// Largest request body, bytes.
    pub body_bytes_max: usize,
    /// Operator accounts: `(account, bearer token)`; tokens of at least 16 characters.
    pub operators: Vec<(String, String)>,
    /// Who may issue consent tokens (terminal agents, kiosks, the e-card service): the
    /// gateway's `x-tif-*` callers. With no callers, consent issuing is refused.
    pub consent_issuers: GatewayConfig,
    /// Webhook delivery.
    pub webhooks: WebhookOptions,
}

impl Default for PartnerOptions {
    fn default() -> PartnerOptions {
        PartnerOptions {
            skew_ms_max: 300_000,
            consent_ttl_s_max: 300,
            consent_ttl_s_default: 120,
            body_bytes_max: 16 * 1024,
            operators: Vec::new(),
            consent_issuers: GatewayConfig::default(),
            webhooks: WebhookOptions::default(),
        }
    }
}

/// Shortest operator token, characters.
pub const OPERATOR_TOKEN_LEN_MIN: usize = 16;

/// The partner platform over one database.
#[derive(Debug)]
pub struct PartnerPlatform {
    store: Store,
    /// How the persons table is stored (shared with the ledger's other readers).
    vault: crate::medical::PersonVault,
    directory: Arc<Directory>,
    options: PartnerOptions,
    issuers: Gateway,
    limits: ratelimit::PartnerLimits,
    signer: Option<WebhookSigner>,
    http: reqwest::Client,
    /// The settlement feed's mark waiting to become its horizon, and when it was taken
    /// (`webhook`, `Store::postings_mark`).
    feed_mark: std::sync::Mutex<Option<(crate::store::PostingsMark, std::time::Instant)>>,
}

/// Now, Unix milliseconds UTC.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The audit's reference of a person: SHA-256("ssc-partner-subject-v1\0" ‖ psn_no), so the
/// audit can be listed for the holder (their psn_no) without an ID number or name in it.
pub fn subject_ref(psn_no: &str) -> [u8; 32] {
    Sha256::digest([b"ssc-partner-subject-v1\0".as_slice(), psn_no.as_bytes()].concat()).into()
}

/// An application's pseudonymous reference of a card, as made where no personal-data keys are
/// installed (the legacy form): 32 hex digits of SHA-256("ssc-partner-card-v1\0" ‖ app_id ‖
/// "\0" ‖ card_no). Two applications get different references for one card; `card.lost`
/// webhooks carry it. With keys installed the platform makes it keyed instead
/// (`PartnerPlatform::card_ref_for`), since a card number is short enough to enumerate; a
/// reference an application already holds is kept (`partner_card_links`).
pub fn card_ref(app_id: &AppId, card_no: &str) -> String {
    let digest = Sha256::digest(
        [
            b"ssc-partner-card-v1\0".as_slice(),
            app_id.as_str().as_bytes(),
            b"\0",
            card_no.as_bytes(),
        ]
        .concat(),
    );
    hex::encode(digest.get(..16).unwrap_or_default())
}

impl PartnerPlatform {
    /// A new reference of `card_no` for `app_id`: 32 hex digits of HMAC-SHA-256 under the
    /// personal-data HMAC key of ("partner-card-ref", app_id ‖ 0 ‖ card_no) when keys are
    /// installed, else the legacy [`card_ref`].
    fn card_ref_for(&self, app_id: &AppId, card_no: &str) -> String {
        let value = format!("{}\0{card_no}", app_id.as_str());
        match self.vault.keyed("partner-card-ref", &value) {
            Some(tag) => hex::encode(tag.get(..16).unwrap_or_default()),
            None => card_ref(app_id, card_no),
        }
    }

    /// The platform in the ledger's database (its migrations ran when the ledger opened), over
    /// the directory its scopes refer to; `signer` signs webhooks (none: webhooks stay in the
    /// outbox until one is configured).
    pub fn new(
        ledger: &Ledger,
        directory: Arc<Directory>,
        options: PartnerOptions,
        signer: Option<WebhookSigner>,
    ) -> PartnerPlatform {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(
                options.webhooks.request_timeout_ms,
            ))
            .build()
            .unwrap_or_default();
        PartnerPlatform {
            store: ledger.store().clone(),
            vault: ledger.person_vault().clone(),
            directory,
            issuers: Gateway::new(options.consent_issuers.clone()),
            options,
            limits: ratelimit::PartnerLimits::default(),
            signer,
            http,
            feed_mark: std::sync::Mutex::new(None),
        }
    }

    /// The settings.
    pub fn options(&self) -> &PartnerOptions {
        &self.options
    }

    /// The webhook signer, if configured.
    pub fn signer(&self) -> Option<&WebhookSigner> {
        self.signer.as_ref()
    }

    /// Whether `use_number` is in the directory's current version. Errors: database.
    pub async fn use_exists(&self, use_number: &UseNumber) -> Result<bool> {
        let snapshot = self
            .directory
            .current()
            .await
            .map_err(|e| PartnerError::Corrupt(directory_error(&e)))?;
        Ok(snapshot.get(use_number).is_some())
    }

    /// One application. Errors: database, corrupt rows.
    pub async fn application(&self, app_id: &AppId) -> Result<Option<Application>> {
        self.store.partner_app(app_id).await
    }

    /// Applications in `state` (all when `None`), oldest first, at most `limit`
    /// (≤ [`APPS_PAGE_MAX`]). Errors: database, corrupt rows.
    pub async fn applications(
        &self,
        state: Option<AppState>,
        limit: u32,
    ) -> Result<Vec<Application>> {
        self.store.partner_apps(state, limit).await
    }

    /// Registers an application as `pending`; returns its id and its key's id.
    /// Errors: `Ok(Err(PartnerMismatch))`; database.
    pub async fn register(
        &self,
        registration: &Registration,
    ) -> Result<std::result::Result<(AppId, KeyId), ApiError>> {
        let app_id = AppId::generate()?;
        let key_id = KeyId::generate()?;
        Ok(self
            .store
            .partner_register(registration, &app_id, &key_id, now_ms())
            .await?
            .map(|()| (app_id, key_id)))
    }

    /// Applies an operator's decision (`by`: the operator account).
    /// Errors: `Ok(Err(AppNotFound | BadTransition | BadScope))`; database.
    pub async fn decide(
        &self,
        app_id: &AppId,
        decision: &Decision,
        by: &str,
    ) -> Result<std::result::Result<(), ApiError>> {
        self.store
            .partner_decide(app_id, decision, by, now_ms())
            .await
    }

    /// Revokes a credential: requests signed with it are refused with `key_revoked` from now
    /// on. Returns its application, none if the key id is unknown. Errors: database.
    pub async fn revoke_key(&self, key_id: &KeyId, by: &str) -> Result<Option<AppId>> {
        let app = self.store.partner_revoke_key(key_id, by, now_ms()).await?;
        app.map(|id| AppId::parse(&id).ok_or(PartnerError::Corrupt("partner_keys.app_id")))
            .transpose()
    }

    /// Appends an audit row. Errors: database.
    pub async fn audit(&self, record: &AuditRecord) -> Result<()> {
        self.store.partner_audit_write(record).await
    }

    /// Audit rows, newest first (of one application when given), older than `before`.
    /// Errors: database.
    pub async fn audit_rows(
        &self,
        app_id: Option<&AppId>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        self.store.partner_audit_read(app_id, before, limit).await
    }

    /// The operator account whose bearer token this is (constant-time comparison).
    pub fn operator(&self, token: &str) -> Option<&str> {
        self.options
            .operators
            .iter()
            .find(|(_, known)| {
                known.len() >= OPERATOR_TOKEN_LEN_MIN
                    && known.len() == token.len()
                    && known
                        .bytes()
                        .zip(token.bytes())
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            })
            .map(|(account, _)| account.as_str())
    }
}

fn directory_error(error: &crate::directory::DirectoryError) -> &'static str {
    tracing::error!(%error, "directory read failed");
    "directory"
}
