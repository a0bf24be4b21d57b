//! The sign-in flow: challenge, the card's answer checked by the hsm, the holder found by card
//! number, the session written, the token signed.
//!
//! Order matters: the challenge is consumed (single use, `UPDATE … WHERE used_at_ms IS NULL`)
//! BEFORE the answer is checked, so a wrong answer burns it and a recorded (challenge, answer)
//! pair never signs in twice. Every refusal writes nothing but that consumption.

use hsm::ops::HsmError;
use serde::Serialize;

use super::error::{IdentityError, Result};
use super::pii::lock_hsm;
use super::token::Claims;
use super::trail::{self, TrailKind};
use super::{Identity, business_day, now_ms, ordered_id, random_id};
use crate::medical::person::PersonRecord;
use crate::store::dispatch;

/// A challenge for one INTERNAL AUTHENTICATE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// The challenge id (32 hex digits) the answer names.
    pub challenge_id: String,
    /// The 8-byte terminal random, 16 hex digits: the card's INTERNAL AUTHENTICATE data is
    /// 过程因子 (the last 8 bytes of the 卡识别码) ‖ this.
    pub random: String,
    /// Unix ms after which the answer is refused.
    pub expires_at_ms: i64,
}

/// A card's answer to a challenge, as the terminal reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The challenge answered.
    pub challenge_id: String,
    /// 卡识别码 (EF05 tag 01), 16 bytes.
    pub card_id: [u8; 16],
    /// 卡号 (EF05), what the person register is keyed on.
    pub card_no: String,
    /// The card's INTERNAL AUTHENTICATE answer, 16 bytes.
    pub answer: [u8; 16],
    /// The terminal verified the PIN at the card (VERIFY answered 9000) in this session.
    pub pin_verified: bool,
    /// The terminal (the gateway caller's paas id).
    pub terminal: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("challenge_id", &self.challenge_id)
            .field("pin_verified", &self.pin_verified)
            .field("terminal", &self.terminal)
            .finish_non_exhaustive()
    }
}

/// A signed-in session's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The holder pseudonym (`sub`).
    pub holder_id: String,
    /// `card` or `card+pin`.
    pub acr: String,
}

type ChallengeRow = (Vec<u8>, i64, Option<i64>);
/// A holder row's sealed columns: psn_no, name, certno ciphertexts, certno keyed hash, 参保地.
type SealedHolder = (Vec<u8>, Vec<u8>, Vec<u8>, [u8; 32], i64);

impl Identity {
    /// Issues a challenge for `terminal`. Errors: database.
    pub async fn challenge(&self, terminal: &str) -> Result<Challenge> {
        let challenge_id = random_id()?;
        let random =
            hex::decode(&random_id()?[..16]).map_err(|_| IdentityError::Corrupt("random"))?;
        let now = now_ms();
        let expires_at_ms = now + self.options.challenge_ttl_ms;
        let _turn = self.gate.enter().await;
        dispatch!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO identity_challenges (challenge_id, terminal_random, terminal, \
                 created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&challenge_id)
            .bind(&random)
            .bind(terminal)
            .bind(now)
            .bind(expires_at_ms)
            .execute(pool)
            .await?;
        });
        Ok(Challenge {
            challenge_id,
            random: hex::encode(random),
            expires_at_ms,
        })
    }

    /// Consumes the challenge: its terminal random. Errors: `ChallengeUnknown`,
    /// `ChallengeUsed`, `ChallengeExpired`.
    async fn consume_challenge(&self, challenge_id: &str, now: i64) -> Result<[u8; 8]> {
        let _turn = self.gate.enter().await;
        let consumed: Option<ChallengeRow> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "UPDATE identity_challenges SET used_at_ms = $1 \
                 WHERE challenge_id = $2 AND used_at_ms IS NULL \
                 RETURNING terminal_random, expires_at_ms, used_at_ms",
            )
            .bind(now)
            .bind(challenge_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((random, expires_at_ms, _)) = consumed else {
            let exists: Option<(i64,)> = dispatch!(&self.store, pool => {
                sqlx::query_as("SELECT expires_at_ms FROM identity_challenges WHERE challenge_id = $1")
                    .bind(challenge_id)
                    .fetch_optional(pool)
                    .await?
            });
            return Err(match exists {
                Some(_) => IdentityError::ChallengeUsed,
                None => IdentityError::ChallengeUnknown,
            });
        };
        if now >= expires_at_ms {
            return Err(IdentityError::ChallengeExpired);
        }
        random
            .as_slice()
            .try_into()
            .map_err(|_| IdentityError::Corrupt("identity_challenges"))
    }

    /// Signs a holder in (module doc). `require_pin`: the service needs the PIN verified.
    ///
    /// Errors: `ChallengeUnknown`/`ChallengeUsed`/`ChallengeExpired`, `CardNotGenuine`,
    /// `CardLost`, `HolderUnknown`, `CardMismatch`, `PinRequired`, `Hsm`, database.
    pub async fn sign_in(&self, request: &SignIn, require_pin: bool) -> Result<IssuedToken> {
        let now = now_ms();
        let random = self.consume_challenge(&request.challenge_id, now).await?;
        let card_id_hex = hex::encode_upper(request.card_id);
        let mut auth_data = [0u8; 16];
        auth_data[..8].copy_from_slice(&request.card_id[8..]);
        auth_data[8..].copy_from_slice(&random);
        let verified = lock_hsm(&self.hsm).verify_card_internal_auth(
            &self.options.hsm_caller,
            &self.options.internal_auth_alias,
            &request.card_id,
            auth_data,
            request.answer,
        );
        match verified {
            Ok(()) => {}
            Err(HsmError::VerificationFailed) => return Err(IdentityError::CardNotGenuine),
            Err(other) => return Err(other.into()),
        }
        if require_pin && !request.pin_verified {
            return Err(IdentityError::PinRequired);
        }
        let card_hmac = self.keys.keyed_hash("card_id", &card_id_hex);
        let card_no_hmac = self.keys.keyed_hash("card_no", &request.card_no);
        if self.card_is_lost(&card_hmac, &card_no_hmac).await? {
            return Err(IdentityError::CardLost);
        }
        let person = self.person_by_card_no(&request.card_no).await?;
        let holder_id = self.keys.holder_id(&person.psn_no);
        if let Some((bound_holder, bound_card_no)) = self.card_binding(&card_hmac).await?
            && (bound_holder != holder_id || bound_card_no != card_no_hmac)
        {
            return Err(IdentityError::CardMismatch);
        }
        let acr = if request.pin_verified {
            "card+pin"
        } else {
            "card"
        };
        let sid = random_id()?;
        let expires_at_ms = now + self.options.token_ttl_s * 1_000;
        let issuer_admdvs: i64 = card_id_hex
            .get(..6)
            .and_then(|region| region.parse().ok())
            .unwrap_or(0);
        let holder_row = self.sealed_holder_columns(&holder_id, &person)?;
        let trail_event = trail::TrailEvent {
            event_id: ordered_id(now)?,
            kind: TrailKind::Signin,
            reference: sid.clone(),
            holder_id: holder_id.clone(),
            admdvs: self.options.node_admdvs.parse().unwrap_or(0),
            category: trail::CATEGORY_PUBLIC_SERVICE.to_owned(),
            actor: request.terminal.clone(),
            day: business_day(now),
            at_ms: now,
        };
        {
            let _turn = self.gate.enter().await;
            let mut tx = self.store.begin_write().await?;
            let written: std::result::Result<(), sqlx::Error> = async {
                dispatch!(&mut tx, conn => {
                    sqlx::query(
                        "INSERT INTO identity_holders (holder_id, key_id, psn_no_ct, name_ct, \
                         certno_ct, certno_hmac, insuplc_admdvs, updated_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (holder_id) DO UPDATE SET key_id = excluded.key_id, \
                         psn_no_ct = excluded.psn_no_ct, name_ct = excluded.name_ct, \
                         certno_ct = excluded.certno_ct, certno_hmac = excluded.certno_hmac, \
                         insuplc_admdvs = excluded.insuplc_admdvs, \
                         updated_at_ms = excluded.updated_at_ms",
                    )
                    .bind(&holder_id)
                    .bind(self.keys.key_id())
                    .bind(&holder_row.0)
                    .bind(&holder_row.1)
                    .bind(&holder_row.2)
                    .bind(holder_row.3.as_slice())
                    .bind(holder_row.4)
                    .bind(now)
                    .execute(&mut **conn)
                    .await?;
                    sqlx::query(
                        "INSERT INTO identity_cards (card_hmac, holder_id, card_no_hmac, \
                         issuer_admdvs, status, first_seen_ms) VALUES ($1, $2, $3, $4, 'A', $5) \
                         ON CONFLICT (card_hmac) DO NOTHING",
                    )
                    .bind(card_hmac.as_slice())
                    .bind(&holder_id)
                    .bind(card_no_hmac.as_slice())
                    .bind(issuer_admdvs)
                    .bind(now)
                    .execute(&mut **conn)
                    .await?;
                    sqlx::query(
                        "INSERT INTO identity_sessions (sid, holder_id, card_hmac, acr, terminal, \
                         issued_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&sid)
                    .bind(&holder_id)
                    .bind(card_hmac.as_slice())
                    .bind(acr)
                    .bind(&request.terminal)
                    .bind(now)
                    .bind(expires_at_ms)
                    .execute(&mut **conn)
                    .await?;
                });
                trail::insert_in(&mut tx, &trail_event).await
            }
            .await;
            match written {
                Ok(()) => tx.commit().await?,
                Err(error) => {
                    tx.rollback().await?;
                    return Err(error.into());
                }
            }
        }
        let claims = Claims {
            iss: self.options.issuer.clone(),
            aud: self.options.audience.clone(),
            sub: holder_id.clone(),
            sid,
            iat: now / 1_000,
            exp: expires_at_ms / 1_000,
            acr: acr.to_owned(),
            amr: if request.pin_verified {
                vec!["card".to_owned(), "pin".to_owned()]
            } else {
                vec!["card".to_owned()]
            },
            admdvs: person.insuplc_admdvs.clone(),
        };
        let token = self
            .token_key
            .sign(&self.hsm, &self.options.hsm_caller, &claims)?;
        tracing::info!(holder = %holder_id, acr, "card sign-in");
        Ok(IssuedToken {
            token,
            token_type: "Bearer",
            expires_in: self.options.token_ttl_s,
            holder_id,
            acr: acr.to_owned(),
        })
    }

    /// The encrypted columns of a holder row: (psn_no, name, certno ciphertexts, certno keyed
    /// hash, 参保地).
    fn sealed_holder_columns(
        &self,
        holder_id: &str,
        person: &PersonRecord,
    ) -> Result<SealedHolder> {
        Ok((
            self.keys
                .seal(person.psn_no.as_bytes(), "psn_no", holder_id)?,
            self.keys
                .seal(person.psn_name.as_bytes(), "name", holder_id)?,
            self.keys
                .seal(person.certno.as_bytes(), "certno", holder_id)?,
            self.keys.keyed_hash("certno", &person.certno),
            person.insuplc_admdvs.parse().unwrap_or(0),
        ))
    }

    /// The insured person holding card number `card_no` (the `persons` register, matched by its
    /// lookup key). Errors: `HolderUnknown`, `Corrupt("persons")`, database.
    pub(super) async fn person_by_card_no(&self, card_no: &str) -> Result<PersonRecord> {
        let found = self
            .store
            .persons_by_lookups(&self.vault.lookups("card", card_no), true)
            .await?;
        let [psn_no] = found.as_slice() else {
            return Err(IdentityError::HolderUnknown);
        };
        let record = self
            .store
            .person_record(psn_no)
            .await?
            .ok_or(IdentityError::HolderUnknown)?;
        self.vault
            .decode(psn_no, &record)
            .map_err(|_| IdentityError::Corrupt("persons"))
    }

    /// The holder and card-number hash a card was first used with, if it was.
    async fn card_binding(&self, card_hmac: &[u8; 32]) -> Result<Option<(String, [u8; 32])>> {
        let row: Option<(String, Vec<u8>)> = dispatch!(&self.store, pool => {
            sqlx::query_as("SELECT holder_id, card_no_hmac FROM identity_cards WHERE card_hmac = $1")
                .bind(card_hmac.as_slice())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.and_then(|(holder, card_no)| Some((holder, card_no.try_into().ok()?))))
    }
}
