//! Card sign-in (实名认证, 单点登录), personal data at rest, and the card-use trail (用卡轨迹):
//! issue 8, the holder's side of the platform.
//!
//! - Sign-in ([`signin`]): the node issues a fresh single-use challenge (an 8-byte terminal random,
//!   60 s); the card answers INTERNAL AUTHENTICATE over `过程因子 ‖ random` (the model of
//!   docs/ssc-auth-model.md: 过程因子 = the last 8 bytes of the 卡识别码); the **hsm** recomputes
//!   the answer with the internal-authentication master (usage `10`) and compares. The PIN, when
//!   a service needs it, is verified at the card by the terminal (the agent), which attests it:
//!   the terminal is authenticated by the gateway's `x-tif-*` check, so `acr` `card+pin` is the
//!   word of a registered terminal, not a cryptographic proof (the card's answer does not cover
//!   the PIN state in this model).
//! - Tokens ([`token`]): a compact ES256 JWS signed by the hsm, verified with the public key by
//!   any service ([`Identity::verify`], the [`api::HolderAuth`] extractor) or partner (JWKS).
//!   Each token is a session row: sign-out revokes it; a card reported lost revokes every
//!   session of that card, in the same transaction that marks the card and writes the outbox
//!   event `card_lost` ([`session`]).
//! - Personal data ([`pii`], [`reads`]): names, ID numbers and person numbers encrypted with
//!   AES-256-GCM under a data key the hsm wraps; keyed hashes (HMAC-SHA-256) where only matching
//!   is needed; every operator or partner read is a row the holder lists.
//! - Trail ([`trail`]): one row per use of a card; the holder lists their own; operators get
//!   aggregates, or one person's trail with a reason that is itself audited.
//!
//! Storage: the ledger's database (migrations/*/0500_identity.sql), one SQL text for both
//! databases through the crate's `dispatch!`.

pub mod api;
pub mod error;
pub mod pii;
pub mod reads;
pub mod session;
pub mod signin;
pub mod token;
pub mod trail;

use std::sync::{Arc, Mutex};

use hsm::ops::Hsm;
use ring::rand::{SecureRandom, SystemRandom};

use crate::Ledger;
use crate::store::Store;
use crate::writer::WriteGate;

pub use error::{IdentityError, Result};
pub use pii::DataKeys;
pub use session::{HolderSession, LostOutcome};
pub use signin::{Challenge, IssuedToken, SignIn};
pub use token::{Claims, TokenKey};
pub use trail::{TrailEvent, TrailKind};

/// Settings of the identity service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityOptions {
    /// The tokens' `iss`.
    pub issuer: String,
    /// The tokens' `aud`.
    pub audience: String,
    /// Token life, seconds (900: a kiosk session, short enough that a stolen token is of
    /// little use; revocation covers the rest).
    pub token_ttl_s: i64,
    /// Challenge life, ms.
    pub challenge_ttl_ms: i64,
    /// The name this node gives itself in the hsm's audit log.
    pub hsm_caller: String,
    /// The hsm alias of the SSC internal-authentication master key (usage `10`).
    pub internal_auth_alias: String,
    /// The hsm alias of the token signing key (created if missing).
    pub token_key_alias: String,
    /// The hsm alias of the personal-data KEK (created if missing).
    pub kek_alias: String,
    /// This node's region (6 digits): where sign-ins here happen, for the trail.
    pub node_admdvs: String,
}

impl Default for IdentityOptions {
    fn default() -> IdentityOptions {
        IdentityOptions {
            issuer: "ssc-platform".to_owned(),
            audience: "ssc-platform".to_owned(),
            token_ttl_s: 900,
            challenge_ttl_ms: 60_000,
            hsm_caller: "settlement-identity".to_owned(),
            internal_auth_alias: "ssc-int-auth".to_owned(),
            token_key_alias: "identity-token".to_owned(),
            kek_alias: "identity-pii-kek".to_owned(),
            node_admdvs: "000000".to_owned(),
        }
    }
}

/// The identity service over the ledger's database and the hsm.
#[derive(Debug)]
pub struct Identity {
    store: Store,
    gate: WriteGate,
    hsm: Arc<Mutex<Hsm>>,
    options: IdentityOptions,
    token_key: TokenKey,
    keys: Arc<DataKeys>,
    vault: crate::medical::PersonVault,
}

impl Identity {
    /// Opens the service: the token key and the KEK are created in the hsm when missing, the
    /// personal-data keys are created (first start) or unwrapped. The internal-authentication
    /// master must already be in the hsm (key ceremony); without it every sign-in is refused
    /// with `hsm_unavailable`.
    ///
    /// Errors: `Hsm`, `Corrupt("identity_data_keys")` (keys wrapped by another KEK), database.
    pub async fn open(
        ledger: &Ledger,
        hsm: Arc<Mutex<Hsm>>,
        options: IdentityOptions,
    ) -> Result<Identity> {
        let store = ledger.store().clone();
        let token_key = TokenKey::open(&hsm, &options.hsm_caller, &options.token_key_alias)?;
        let keys =
            Arc::new(DataKeys::open(&store, &hsm, &options.hsm_caller, &options.kek_alias).await?);
        Ok(Identity {
            store,
            gate: ledger.write_gate(),
            hsm,
            options,
            token_key,
            keys,
            vault: ledger.person_vault().clone(),
        })
    }

    /// The settings.
    pub fn options(&self) -> &IdentityOptions {
        &self.options
    }

    /// The personal-data keys (for modules that store their own personal data).
    pub fn data_keys(&self) -> &DataKeys {
        &self.keys
    }

    /// The personal-data keys, shared (`medical::seal_persons` installs them for the persons
    /// table).
    pub fn shared_data_keys(&self) -> Arc<DataKeys> {
        self.keys.clone()
    }

    /// The token verification key as a JWK Set (RFC 7517 §5).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.token_key.jwk()] })
    }
}

/// Now, Unix milliseconds UTC.
pub(crate) fn now_ms() -> i64 {
    crate::medical::ids::now_ms()
}

/// The Asia/Shanghai business day of a time, `yyyy-MM-dd`.
pub(crate) fn business_day(unix_ms: i64) -> String {
    crate::medical::ids::format_date(unix_ms)
}

/// A time-ordered 32-hex-digit id: 13 hex digits of the Unix ms, 19 random hex digits.
/// Errors: `Hsm("no system randomness")`.
pub(crate) fn ordered_id(unix_ms: i64) -> Result<String> {
    let mut random = [0u8; 10];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| IdentityError::Hsm("no system randomness".into()))?;
    let mut id = format!("{:013x}", unix_ms.max(0));
    id.push_str(&hex::encode(random)[..19]);
    Ok(id)
}

/// A random 32-hex-digit id (sessions, challenges). Errors: `Hsm("no system randomness")`.
pub(crate) fn random_id() -> Result<String> {
    let mut random = [0u8; 16];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| IdentityError::Hsm("no system randomness".into()))?;
    Ok(hex::encode(random))
}
