//! Dynamic QR payment tokens from third-party partners (banks' and payment apps' electronic
//! social security card, issue 7). The partner signs the token with SM2 (SM3, GB/T 32918 with
//! the partner's distinguishing ID); the switch checks, in order: shape (30), partner known
//! (30), signature by the `hsm` (63), amount equal to the terminal's (13), not expired and not
//! longer-lived than allowed (54), never used before (94, single use: the token id is written
//! before routing), then routes the sale like a card purchase (field 22 = `031`, no field 55:
//! the partner's signature stands in for the card cryptogram). Served to terminals as
//! `POST /payments/v1/qr` ([`super::api`]); the token text is never logged (it names the card).
//!
//! Token text (our format; ASCII, `|`-separated, at most [`TOKEN_LEN_MAX`] bytes):
//! `SSCQR1|<partner>|<token id, 32 hex>|<PAN>|<amount fen>|<issued ms>|<expires ms>|<SM2 r‖s,
//! 128 hex>`; the signature covers everything before the last `|`. The PAN is the partner's
//! linked debit card; a production format would carry a network token instead.

use std::collections::HashMap;

use card_core::pboc::Pan;
use hsm::ops::HsmError;

use super::clock::Moment;
use super::switch::{PaymentOutcome, Sale, Switch, mask_pan};
use super::{PaymentError, codes};
use crate::store::dispatch;

/// Longest token text, bytes.
pub const TOKEN_LEN_MAX: usize = 512;

/// A partner that may sign tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrPartner {
    /// HSM alias of the partner's SM2 key (usage S0).
    pub key_alias: String,
    /// SM2 distinguishing ID (GB/T 32918.5 default `1234567812345678`).
    pub sm2_id: String,
}

/// QR settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QrOptions {
    /// Partners by code.
    pub partners: HashMap<String, QrPartner>,
    /// Longest allowed token life (expires − issued), ms.
    pub lifetime_ms_max: i64,
}

/// A QR purchase as the terminal sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrPurchaseRequest {
    /// Field 41.
    pub terminal_id: String,
    /// Field 42.
    pub merchant_id: String,
    /// The amount the terminal shows, fen.
    pub amount_fen: i64,
    /// The scanned token text.
    pub token: String,
}

struct Token<'a> {
    partner: &'a str,
    token_id: &'a str,
    pan: Pan,
    amount_fen: i64,
    issued_ms: i64,
    expires_ms: i64,
    signed: &'a str,
    signature: Vec<u8>,
}

fn parse(text: &str) -> Option<Token<'_>> {
    if text.len() > TOKEN_LEN_MAX || !text.is_ascii() {
        return None;
    }
    let (signed, signature) = text.rsplit_once('|')?;
    let fields: Vec<&str> = signed.split('|').collect();
    let ["SSCQR1", partner, token_id, pan, amount, issued, expires] = fields.as_slice() else {
        return None;
    };
    let hex_id = token_id.len() == 32 && token_id.bytes().all(|b| b.is_ascii_hexdigit());
    let signature = hex::decode(signature).ok().filter(|s| s.len() == 64)?;
    Some(Token {
        partner,
        token_id: hex_id.then_some(*token_id)?,
        pan: Pan::new(pan)?,
        amount_fen: amount.parse().ok().filter(|a| *a > 0)?,
        issued_ms: issued.parse().ok()?,
        expires_ms: expires.parse().ok()?,
        signed,
        signature,
    })
}

impl Switch {
    /// A purchase paid with a partner's QR token. Refusals are outcomes (see the module doc
    /// for the codes); nothing is sent or posted for them.
    ///
    /// Errors: store, ledger and HSM faults.
    pub async fn qr_purchase(
        &self,
        req: &QrPurchaseRequest,
    ) -> Result<PaymentOutcome, PaymentError> {
        let refuse = |code: &str, why: &str| {
            tracing::warn!(terminal = %req.terminal_id, code, why, "QR token refused");
            Ok(PaymentOutcome::refused(code))
        };
        if req.terminal_id.len() != 8
            || !req.terminal_id.is_ascii()
            || req.merchant_id.len() != 15
            || !req.merchant_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return refuse(codes::FORMAT_ERROR, "terminal or merchant id malformed");
        }
        if req.amount_fen <= 0 || req.amount_fen > 999_999_999_999 {
            return refuse(codes::INVALID_AMOUNT, "amount out of range");
        }
        let Some(token) = parse(&req.token) else {
            return refuse(codes::FORMAT_ERROR, "malformed token");
        };
        let Some(partner) = self.inner.options.qr.partners.get(token.partner) else {
            return refuse(codes::FORMAT_ERROR, "unknown partner");
        };
        let (alias, sm2_id) = (partner.key_alias.clone(), partner.sm2_id.clone());
        let (signed, signature) = (token.signed.as_bytes().to_vec(), token.signature.clone());
        let verified = self
            .hsm_run(move |hsm, caller| {
                hsm.verify_signature(caller, &alias, &signed, &signature, &sm2_id)
            })
            .await?;
        match verified {
            Ok(()) => {}
            Err(HsmError::VerificationFailed) => {
                return refuse(codes::SECURITY_VIOLATION, "bad signature");
            }
            Err(e) => return Err(PaymentError::Hsm(e.code().to_owned())),
        }
        if token.amount_fen != req.amount_fen {
            return refuse(codes::INVALID_AMOUNT, "token bound to another amount");
        }
        let now = Moment::now();
        let life = token.expires_ms.saturating_sub(token.issued_ms);
        if now.unix_ms > token.expires_ms
            || life <= 0
            || life > self.inner.options.qr.lifetime_ms_max
        {
            return refuse(codes::EXPIRED, "token expired or too long-lived");
        }
        if !self
            .consume_token(token.partner, token.token_id, req, now.unix_ms)
            .await?
        {
            return refuse(codes::DUPLICATE, "token already used");
        }
        let pan = token.pan.expose();
        let Ok(route) = self.inner.routing.route(pan) else {
            return refuse(codes::NO_SUCH_ISSUER, "no BIN route");
        };
        let pan_ref = self.pan_ref(pan);
        if let Some(code) = self.risk(&pan_ref, req.amount_fen, &now).await? {
            return refuse(&code, "risk check");
        }
        let sale = Sale {
            pan,
            psn: None,
            amount_fen: req.amount_fen,
            terminal_id: &req.terminal_id,
            merchant_id: &req.merchant_id,
            entry_mode: b"031",
            icc_data: None,
            pan_ref,
            masked: mask_pan(pan),
        };
        self.send_sale(route.bank, sale, &now).await
    }

    /// Records the token as used; false if it was used before.
    async fn consume_token(
        &self,
        partner: &str,
        token_id: &str,
        req: &QrPurchaseRequest,
        now_ms: i64,
    ) -> Result<bool, PaymentError> {
        let sql = "INSERT INTO pay_qr_tokens (partner, token_id, terminal_id, amount_fen, used_at_ms) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partner, token_id) DO NOTHING";
        let inserted = dispatch!(self.inner.ledger.store(), pool => {
            sqlx::query(sql)
                .bind(partner)
                .bind(token_id)
                .bind(&req.terminal_id)
                .bind(req.amount_fen)
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(inserted == 1)
    }
}
