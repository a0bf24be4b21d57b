//! The partner operations, behind authentication: consent tokens, card verification with
//! consent, settlement status, and the card status register. Each returns a domain outcome (the
//! API layer turns it into JSON) or a catalogued refusal, and fills an [`AuditNote`] with what
//! the audit row needs (use, scope, the person as a hashed reference of the psn_no).

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::{ApiError, internal};
use super::model::{AppId, AppState, Operation, Scope};
use super::store_ops::{NewWebhook, StoredConsent};
use super::{PartnerPlatform, now_ms, subject_ref};
use crate::directory::UseNumber;

/// Longest card number, bytes (the card's 卡号 is 9 characters; slack for other issuers).
pub const CARD_NO_LEN_MAX: usize = 20;
/// Longest `setl_id`, bytes (the national interface's field is 30).
pub const SETL_ID_LEN_MAX: usize = 30;

/// What the audit row of a call records besides who and the result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditNote {
    /// The directory use the call was for.
    pub use_number: Option<String>,
    /// The scope it ran under.
    pub scope: Option<String>,
    /// The person concerned ([`super::subject_ref`]).
    pub subject: Option<[u8; 32]>,
    /// The application concerned, when the caller is not one (issuers, operators).
    pub app_id: Option<String>,
}

/// How the holder proved possession before a consent was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentChannel {
    /// The card and its PIN at a terminal agent (hospital, pharmacy, service window).
    Agent,
    /// The card and its PIN at a self-service kiosk.
    Kiosk,
    /// The electronic social security card (电子社保卡) and its password.
    ECard,
}

impl ConsentChannel {
    /// The stored and wire code.
    pub fn code(self) -> &'static str {
        match self {
            ConsentChannel::Agent => "agent",
            ConsentChannel::Kiosk => "kiosk",
            ConsentChannel::ECard => "e-card",
        }
    }

    /// Parses a code. Errors: `None`.
    pub fn parse(code: &str) -> Option<ConsentChannel> {
        match code {
            "agent" => Some(ConsentChannel::Agent),
            "kiosk" => Some(ConsentChannel::Kiosk),
            "e-card" => Some(ConsentChannel::ECard),
            _ => None,
        }
    }
}

/// A consent request from an issuer (checked shapes).
#[derive(Debug, Clone)]
pub struct ConsentRequest {
    /// The card's 卡号 read from the card (EF05) or the e-card.
    pub card_no: String,
    /// The application the holder consents to.
    pub app_id: AppId,
    /// The scope consented to.
    pub scope: Scope,
    /// How the holder proved possession.
    pub channel: ConsentChannel,
    /// The issuer asserts the PIN (or e-card password) was verified just now.
    pub pin_verified: bool,
    /// Life, seconds (the platform's default when `None`).
    pub ttl_s: Option<u32>,
}

/// An issued consent: the token is shown once and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedConsent {
    /// 64 lowercase hex digits (32 random bytes).
    pub token: String,
    /// Expiry, Unix ms UTC.
    pub expires_at_ms: i64,
}

/// What a partner learns from a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardVerification {
    /// The application's reference of the card ([`super::card_ref`]).
    pub card_ref: String,
    /// The card number, masked.
    pub card_no_masked: String,
    /// `normal` or `lost`.
    pub card_status: &'static str,
    /// 参保地.
    pub insuplc_admdvs: String,
    /// Whether the claimed ID number matched (none if not claimed).
    pub certno_match: Option<bool>,
    /// Whether the claimed name matched (none if not claimed).
    pub name_match: Option<bool>,
    /// The ID number: clear only under `card.identity`, else masked.
    pub certno: String,
    /// The name: clear only under `card.identity`, else masked.
    pub name: String,
    /// Whether `certno` and `name` are in clear.
    pub identity_disclosed: bool,
}

/// A settlement's status as a partner sees it (no person data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementStatus {
    /// 结算ID.
    pub setl_id: String,
    /// `settled`, `cancelled` (2208/2305) or `reversed` (2601).
    pub status: &'static str,
    /// 定点医药机构编号.
    pub fixmedins_code: String,
    /// 参保地, 6 digits.
    pub insuplc_admdvs: String,
    /// 结算日期 yyyy-MM-dd.
    pub setl_date: String,
    /// 医疗费总额, yuan.
    pub medfee_sumamt: Decimal,
    /// 基金支付总额, yuan.
    pub fund_pay_sumamt: Decimal,
    /// 个人账户支出, yuan.
    pub acct_pay: Decimal,
    /// 个人现金支出, yuan.
    pub psn_cash_pay: Decimal,
}

/// A card status as the register holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardStatus {
    /// 正常.
    Normal,
    /// 挂失: reported lost.
    Lost,
}

impl CardStatus {
    /// The stored and wire code.
    pub fn code(self) -> &'static str {
        match self {
            CardStatus::Normal => "normal",
            CardStatus::Lost => "lost",
        }
    }

    /// Parses a code. Errors: `None`.
    pub fn parse(code: &str) -> Option<CardStatus> {
        match code {
            "normal" => Some(CardStatus::Normal),
            "lost" => Some(CardStatus::Lost),
            _ => None,
        }
    }
}

/// Checks a card number: 1-20 ASCII letters and digits. Errors: `BadCardNo`.
pub fn check_card_no(card_no: &str) -> Result<(), ApiError> {
    let ok = !card_no.is_empty()
        && card_no.len() <= CARD_NO_LEN_MAX
        && card_no.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(ApiError::BadCardNo) }
}

/// Masks all but the first and the last character (`1****************7`, `T*******5`).
pub fn mask_keep_ends(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    match chars.as_slice() {
        [] => String::new(),
        [_] => "*".to_owned(),
        [first, middle @ .., last] => {
            let mut out = String::new();
            out.push(*first);
            out.extend(std::iter::repeat_n('*', middle.len()));
            out.push(*last);
            out
        }
    }
}

/// Masks a name: the first character, then one `*` per other character (`王*`, `赵**`).
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn yuan(fen: i64) -> Decimal {
    Decimal::new(fen, 2)
}

impl PartnerPlatform {
    /// Checks an issuer's `x-tif-*` headers (module `service::gateway`); returns its paas id.
    /// Errors: `IssuerUnauthenticated` (also when no issuer is configured).
    pub fn authenticate_issuer(&self, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
        if self.options.consent_issuers.callers.is_empty() {
            return Err(ApiError::IssuerUnauthenticated);
        }
        let now_s = u64::try_from(now_ms() / 1000).unwrap_or(0);
        self.issuers
            .check(headers, now_s)
            .map_err(|_| ApiError::IssuerUnauthenticated)?;
        Ok(headers
            .get("x-tif-paasid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned())
    }

    /// Issues a one-time consent token (the issuer checked the holder's PIN or e-card password).
    /// Errors: `BadConsentRequest` (no PIN assertion, bad lifetime), `AppNotFound`,
    /// `AppNotApproved`, `ScopeDenied` (the application lacks the scope), `CardNotFound`,
    /// `CardLost`, `Internal`.
    pub async fn issue_consent(
        &self,
        issuer: &str,
        request: &ConsentRequest,
        note: &mut AuditNote,
    ) -> Result<IssuedConsent, ApiError> {
        note.app_id = Some(request.app_id.as_str().to_owned());
        note.use_number = Some(request.scope.use_number.as_str().to_owned());
        note.scope = Some(request.scope.to_string());
        let ttl_s = request.ttl_s.unwrap_or(self.options.consent_ttl_s_default);
        if !request.pin_verified || ttl_s == 0 || ttl_s > self.options.consent_ttl_s_max {
            return Err(ApiError::BadConsentRequest);
        }
        if request.scope.operation != Operation::CardVerify {
            return Err(ApiError::BadConsentRequest);
        }
        let app = self
            .store
            .partner_app(&request.app_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::AppNotFound)?;
        if app.state != AppState::Approved {
            return Err(ApiError::AppNotApproved);
        }
        if !app.grants(&request.scope) {
            return Err(ApiError::ScopeDenied);
        }
        // Keyed when the personal-data keys are installed (the legacy key after it: rows
        // written before the keys still count).
        let card_hashes = self.vault.lookups("card", &request.card_no);
        let person = self
            .store
            .partner_person_by_card(&self.vault, &request.card_no)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::CardNotFound)?;
        note.subject = Some(subject_ref(&person.psn_no));
        if self
            .store
            .partner_card_lost(&card_hashes)
            .await
            .map_err(|e| internal(&e))?
        {
            return Err(ApiError::CardLost);
        }
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|_| ApiError::Internal)?;
        let token = hex::encode(random);
        let now = now_ms();
        let expires_at_ms = now.saturating_add(i64::from(ttl_s) * 1000);
        let stored = StoredConsent {
            app_id: app.app_id.as_str().to_owned(),
            use_number: request.scope.use_number.as_str().to_owned(),
            operation: request.scope.operation.code().to_owned(),
            psn_no: person.psn_no.clone(),
            card_no_sha256: self.vault.lookup("card", &request.card_no).to_vec(),
            expires_at_ms,
            used: false,
        };
        self.store
            .partner_consent_issue(
                &token_hash(&token),
                &stored,
                request.channel.code(),
                issuer,
                now,
            )
            .await
            .map_err(|e| internal(&e))?;
        Ok(IssuedConsent {
            token,
            expires_at_ms,
        })
    }

    /// Verifies a card's status and the claimed identity with the holder's consent token
    /// (consumed: single use). Errors: `ScopeDenied`, `ConsentInvalid` (unknown, or bound to
    /// another application or use), `ConsentExpired`, `ConsentUsed`, `Internal`.
    pub async fn verify_card(
        &self,
        caller: &Caller,
        use_number: &UseNumber,
        consent_token: &str,
        claimed_certno: Option<&str>,
        claimed_name: Option<&str>,
        note: &mut AuditNote,
    ) -> Result<CardVerification, ApiError> {
        note.use_number = Some(use_number.as_str().to_owned());
        let scope = caller.require(use_number, Operation::CardVerify)?;
        note.scope = Some(scope.to_string());
        let hash = token_hash(consent_token);
        let consent = self
            .store
            .partner_consent(&hash)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::ConsentInvalid)?;
        if consent.app_id != caller.app.app_id.as_str()
            || consent.use_number != use_number.as_str()
            || consent.operation != Operation::CardVerify.code()
        {
            return Err(ApiError::ConsentInvalid);
        }
        note.subject = Some(subject_ref(&consent.psn_no));
        if consent.used {
            return Err(ApiError::ConsentUsed);
        }
        let now = now_ms();
        if now > consent.expires_at_ms {
            return Err(ApiError::ConsentExpired);
        }
        if !self
            .store
            .partner_consent_use(&hash, now)
            .await
            .map_err(|e| internal(&e))?
        {
            return Err(ApiError::ConsentUsed);
        }
        let person = self
            .store
            .partner_person(&self.vault, &consent.psn_no)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::CardNotFound)?;
        let consent_hash = <[u8; 32]>::try_from(consent.card_no_sha256.as_slice())
            .map_err(|_| ApiError::Internal)?;
        let card_no = person.card_no.clone().unwrap_or_default();
        // The card's lookup keys (keyed first once keys are installed, then the legacy one);
        // the consent must have been issued for this card: a card reissued since (or gone)
        // is not the one the holder consented to show.
        let card_hashes = if card_no.is_empty() {
            Vec::new()
        } else {
            self.vault.lookups("card", &card_no)
        };
        if !card_hashes.contains(&consent_hash) {
            return Err(ApiError::ConsentInvalid);
        }
        let lost = self
            .store
            .partner_card_lost(&card_hashes)
            .await
            .map_err(|e| internal(&e))?;
        let card_no_masked = mask_keep_ends(&card_no);
        let app_id = caller.app.app_id.as_str();
        // An application keeps the reference it was first given for a card.
        let known = self
            .store
            .partner_card_link_ref(app_id, &card_hashes)
            .await
            .map_err(|e| internal(&e))?;
        let reference = match known {
            Some(reference) => reference,
            None => {
                let reference = self.card_ref_for(&caller.app.app_id, &card_no);
                self.store
                    .partner_card_link(
                        app_id,
                        &self.vault.lookup("card", &card_no),
                        &reference,
                        &card_no_masked,
                        now,
                    )
                    .await
                    .map_err(|e| internal(&e))?;
                reference
            }
        };
        let disclosed = caller.app.grants(&Scope {
            use_number: use_number.clone(),
            operation: Operation::CardIdentity,
        });
        Ok(CardVerification {
            card_ref: reference,
            card_no_masked,
            card_status: if lost { "lost" } else { "normal" },
            insuplc_admdvs: person.insuplc_admdvs.clone(),
            certno_match: claimed_certno.map(|c| c.eq_ignore_ascii_case(&person.certno)),
            name_match: claimed_name.map(|n| n.trim() == person.psn_name),
            certno: if disclosed {
                person.certno.clone()
            } else {
                mask_keep_ends(&person.certno)
            },
            name: if disclosed {
                person.psn_name.clone()
            } else {
                mask_name(&person.psn_name)
            },
            identity_disclosed: disclosed,
        })
    }

    /// A settlement's status. Errors: `ScopeDenied`, `BadSetlId`, `SettlementNotFound`,
    /// `Internal`.
    pub async fn settlement_status(
        &self,
        caller: &Caller,
        use_number: &UseNumber,
        setl_id: &str,
        note: &mut AuditNote,
    ) -> Result<SettlementStatus, ApiError> {
        note.use_number = Some(use_number.as_str().to_owned());
        let scope = caller.require(use_number, Operation::SettlementStatus)?;
        note.scope = Some(scope.to_string());
        let shaped = !setl_id.is_empty()
            && setl_id.len() <= SETL_ID_LEN_MAX
            && setl_id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !shaped {
            return Err(ApiError::BadSetlId);
        }
        let row = self
            .store
            .partner_settlement(setl_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::SettlementNotFound)?;
        note.subject = Some(subject_ref(&row.psn_no));
        Ok(SettlementStatus {
            status: match row.cancel_kind.as_deref() {
                Some("C") => "cancelled",
                Some(_) => "reversed",
                None => "settled",
            },
            setl_id: row.setl_id,
            fixmedins_code: row.fixmedins_code,
            insuplc_admdvs: format!("{:06}", row.insuplc_admdvs),
            setl_date: row.setl_date,
            medfee_sumamt: yuan(row.medfee_sumamt_fen),
            fund_pay_sumamt: yuan(row.fund_pay_sumamt_fen),
            acct_pay: yuan(row.acct_pay_fen),
            psn_cash_pay: yuan(row.psn_cash_pay_fen),
        })
    }

    /// Records a card's status (operator `by`); when it becomes `lost`, a `card.lost` webhook
    /// for each approved application that verified the card and holds `webhook.card` is
    /// written in the same transaction. Returns the number of notices queued.
    /// Errors: `CardNotFound`, `Internal`.
    pub async fn set_card_status(
        &self,
        card_no: &str,
        status: CardStatus,
        by: &str,
        note: &mut AuditNote,
    ) -> Result<usize, ApiError> {
        let card_hashes = self.vault.lookups("card", card_no);
        let person = self
            .store
            .partner_person_by_card(&self.vault, card_no)
            .await
            .map_err(|e| internal(&e))?
            .ok_or(ApiError::CardNotFound)?;
        note.subject = Some(subject_ref(&person.psn_no));
        let now = now_ms();
        let mut events = Vec::new();
        if status == CardStatus::Lost {
            let watchers = self
                .store
                .partner_card_watchers(&card_hashes)
                .await
                .map_err(|e| internal(&e))?;
            for (app_id, reference, masked) in watchers {
                let event_id = format!("card.lost-{now}-{reference}");
                let body = serde_json::json!({
                    "event_id": event_id,
                    "event_type": "card.lost",
                    "occurred_at": super::webhook::utc(now),
                    "card_ref": reference,
                    "card_no_masked": masked,
                    "card_status": "lost",
                })
                .to_string();
                events.push(NewWebhook {
                    event_id,
                    app_id,
                    event_type: "card.lost",
                    body,
                });
            }
        }
        self.store
            .partner_card_status(
                &self.vault.lookup("card", card_no),
                status.code(),
                by,
                &events,
                now,
            )
            .await
            .map_err(|e| internal(&e))?;
        Ok(events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_keep_ends("110101199003077777"), "1****************7");
        assert_eq!(mask_keep_ends("T00012345"), "T*******5");
        assert_eq!(mask_keep_ends("A"), "*");
        assert_eq!(mask_name("赵小明"), "赵**");
        assert_eq!(mask_name(""), "");
    }

    #[test]
    fn card_numbers() {
        assert!(check_card_no("T00012345").is_ok());
        assert_eq!(check_card_no("T0001-2345"), Err(ApiError::BadCardNo));
        assert_eq!(check_card_no(""), Err(ApiError::BadCardNo));
    }
}
