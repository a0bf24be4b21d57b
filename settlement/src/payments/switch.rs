//! The authorisation flow of the switch. For a purchase: shape checks → ICC data (field 55) →
//! BIN route → risk checks → ARQC verified by the `hsm` → the 0200 and its 0400 reversal built,
//! the transaction and the ARMED reversal written in one database transaction → MAC by the
//! `hsm` → sent over the bank's link with the per-hop timeout → the answer's MAC verified →
//! approved: ledger posting (debit the bank's clearing account, credit the merchant's
//! receivable) and the reversal cancelled; declined: reversal cancelled; no valid answer in
//! time: reversal PENDING for the forwarder. The terminal gets the response code and, when the
//! ARQC verified and the issuer answered, the ARPC (method 1, ARC = the response code's two
//! ASCII bytes) for EXTERNAL AUTHENTICATE.
//!
//! A refusal by the switch itself (format, route, risk, ARQC, MAC) sends nothing and posts
//! nothing; it is logged with the PAN masked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use card_core::pboc::Pan;
use hsm::ops::{ArpcRequest, ArqcRequest, Hsm, HsmError, MajorKeyDerivation, SessionKeyDerivation};
use sha2::{Digest, Sha256};

use super::clock::Moment;
use super::link::BankLink;
use super::qr::QrOptions;
use super::risk::TerminalMap;
use super::routing::{Bank, CardAlgorithm, RoutingTable};
use super::store::{self, TxnRow};
use super::{PaymentError, codes, icc};
use crate::iso8583::{self, Message, Mti};
use crate::{
    AccountCode, AccountId, AccountKind, AccountSpec, Admdvs, Fen, Ledger, Leg, Link, Posting,
    PostingId, Side,
};

/// Risk and identity options of the switch.
#[derive(Debug, Clone)]
pub struct SwitchOptions {
    /// The region whose ledger carries the payment accounts.
    pub admdvs: Admdvs,
    /// Salt of the PAN hash kept for risk checks (a deployment secret).
    pub pan_salt: String,
    /// Approved purchases per card per business day above this are refused (61), fen.
    pub daily_limit_fen: i64,
    /// The caller name in the HSM audit log.
    pub hsm_caller: String,
    /// Terminal positions for the travel check.
    pub terminals: TerminalMap,
    /// QR token partners and lifetime.
    pub qr: QrOptions,
    /// HSM alias of the switch's SM2 encryption key pair (usage `D1`) to which terminals seal
    /// the PAN ([`Switch::pan_public_key`], [`Switch::unseal_pan`]); `None`: the JSON API takes
    /// no card purchases (a PAN never crosses it in clear).
    pub pan_key: Option<String>,
}

/// A purchase as a terminal sends it.
#[derive(Debug, Clone)]
pub struct PurchaseRequest {
    /// Card acceptor terminal id (field 41), 8 characters.
    pub terminal_id: String,
    /// Card acceptor id (field 42), 15 characters.
    pub merchant_id: String,
    /// The PAN (masked in `Debug`).
    pub pan: Pan,
    /// PAN sequence number (5F34), 0..=99.
    pub psn: u8,
    /// Amount, fen.
    pub amount_fen: i64,
    /// Currency (field 49), must be `156`.
    pub currency: String,
    /// EMV field 55: the ARQC, its CDOL1 data objects and the CDOL1 itself (8C).
    pub icc_data: Vec<u8>,
}

/// What the terminal gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    /// Field 39.
    pub response_code: String,
    /// Amount approved, fen (0 unless approved; less than asked for a partial approval).
    pub approved_fen: i64,
    /// Retrieval reference number (field 37), empty if refused before a number was taken.
    pub rrn: String,
    /// STAN (field 11).
    pub stan: String,
    /// Authorisation id (field 38).
    pub auth_code: Option<String>,
    /// ARPC (method 1) for EXTERNAL AUTHENTICATE, with the ARC = response code bytes.
    pub arpc: Option<[u8; 8]>,
}

impl PaymentOutcome {
    pub(super) fn refused(code: &str) -> PaymentOutcome {
        PaymentOutcome {
            response_code: code.to_owned(),
            approved_fen: 0,
            rrn: String::new(),
            stan: String::new(),
            auth_code: None,
            arpc: None,
        }
    }

    /// Whether the issuer approved (fully or partly).
    #[must_use]
    pub fn approved(&self) -> bool {
        self.response_code == codes::APPROVED || self.response_code == codes::PARTIAL
    }
}

/// The switch (cheap to clone).
#[derive(Clone)]
pub struct Switch {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) routing: RoutingTable,
    pub(super) options: SwitchOptions,
    pub(super) ledger: Ledger,
    pub(super) hsm: Arc<Mutex<Hsm>>,
    pub(super) links: HashMap<String, BankLink>,
    stan: AtomicU32,
    posting_seq: AtomicU64,
    accounts: Mutex<HashMap<(AccountKind, String), AccountId>>,
}

/// `6214830200000087653` → `621483*****7653`.
#[must_use]
pub fn mask_pan(pan: &str) -> String {
    if pan.len() < 10 {
        return "*".repeat(pan.len());
    }
    format!(
        "{}{}{}",
        &pan[..6],
        "*".repeat(pan.len() - 10),
        &pan[pan.len() - 4..]
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Switch {
    /// A switch over `ledger` (whose database also holds the payment tables) with the HSM
    /// `hsm`. Crash recovery: every reversal left ARMED (its request's outcome was never
    /// recorded) becomes PENDING. Seeds the STAN from the clock so a restart does not reuse
    /// the STANs of the last minutes.
    ///
    /// Errors: [`PaymentError::Store`].
    pub async fn open(
        routing: RoutingTable,
        options: SwitchOptions,
        ledger: Ledger,
        hsm: Arc<Mutex<Hsm>>,
    ) -> Result<Switch, PaymentError> {
        let now = Moment::now();
        let recovered = store::recover_armed(ledger.store(), now.unix_ms).await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "reversals armed before a restart are now pending (outcome unknown)"
            );
        }
        let links = routing
            .banks
            .iter()
            .map(|b| (b.code.clone(), BankLink::new(&b.code, b.host, b.timeout_ms)))
            .collect();
        // STAN 000001..=999999: seeded from the seconds of the day, so restarts move forward.
        let seed = u32::try_from(now.unix_ms.rem_euclid(86_400_000) / 100).unwrap_or(1);
        Ok(Switch {
            inner: Arc::new(Inner {
                routing,
                options,
                ledger,
                hsm,
                links,
                stan: AtomicU32::new(seed % 999_999),
                posting_seq: AtomicU64::new(0),
                accounts: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The link to bank `code` (counters for tests and metrics).
    #[must_use]
    pub fn link(&self, code: &str) -> Option<&BankLink> {
        self.inner.links.get(code)
    }

    /// The ledger.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// Blocks the card `pan` with response code `41` (lost), `43` (stolen) or `62`.
    ///
    /// Errors: [`PaymentError::Request`] for another code, [`PaymentError::Store`].
    pub async fn block_card(&self, pan: &Pan, code: &str) -> Result<(), PaymentError> {
        if ![codes::LOST_CARD, codes::STOLEN_CARD, codes::RESTRICTED].contains(&code) {
            return Err(PaymentError::Request("block code must be 41, 43 or 62"));
        }
        let pan_ref = self.pan_ref(pan.expose());
        store::block_card(
            self.inner.ledger.store(),
            &pan_ref,
            code,
            Moment::now().unix_ms,
        )
        .await
    }

    /// Every transaction of a business date (`YYYYMMDD`), in creation order.
    ///
    /// Errors: [`PaymentError::Store`].
    pub async fn transactions(&self, business_date: &str) -> Result<Vec<TxnRow>, PaymentError> {
        store::txns_of_day(self.inner.ledger.store(), business_date).await
    }

    /// The state (`armed`, `pending`, `acknowledged`, `cancelled`) and send attempts of the
    /// reversal of `txn_id`.
    ///
    /// Errors: [`PaymentError::Store`].
    pub async fn reversal_state(
        &self,
        txn_id: &str,
    ) -> Result<Option<(String, i64)>, PaymentError> {
        store::reversal_state(self.inner.ledger.store(), txn_id).await
    }

    /// Next STAN, 6 digits, 000001..=999999.
    pub(super) fn next_stan(&self) -> String {
        let n = self.inner.stan.fetch_add(1, Ordering::Relaxed) % 999_999 + 1;
        format!("{n:06}")
    }

    /// Salted PAN hash, hex.
    pub(super) fn pan_ref(&self, pan: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.inner.options.pan_salt.as_bytes());
        h.update(pan.as_bytes());
        hex::encode(h.finalize())
    }

    pub(super) fn hsm(&self) -> std::sync::MutexGuard<'_, Hsm> {
        lock(&self.inner.hsm)
    }

    /// The public half of the PAN sealing key (65 bytes, `04‖X‖Y`, SM2), for terminals; `None`
    /// when no key is configured.
    ///
    /// Errors: [`PaymentError::Hsm`] (the alias is not a `D1` SM2 key pair in the HSM).
    pub fn pan_public_key(&self) -> Result<Option<Vec<u8>>, PaymentError> {
        let Some(alias) = &self.inner.options.pan_key else {
            return Ok(None);
        };
        self.hsm()
            .get_public_key(&self.inner.options.hsm_caller, alias)
            .map(Some)
            .map_err(|e| PaymentError::Hsm(e.code().to_owned()))
    }

    /// Opens a PAN sealed by a terminal: SM2 ciphertext (`C1‖C3‖C2`, GB/T 32918.4-2016) of the
    /// PAN's ASCII digits to [`Switch::pan_public_key`], decrypted by the HSM. `Ok(None)` when
    /// the seal does not open (altered, made for another key, no key configured) or what it
    /// holds is not a PAN (Luhn); the plaintext never reaches a log.
    ///
    /// Errors: [`PaymentError::Hsm`] for an HSM fault other than a failed decryption.
    pub fn unseal_pan(&self, sealed: &[u8]) -> Result<Option<Pan>, PaymentError> {
        let Some(alias) = &self.inner.options.pan_key else {
            return Ok(None);
        };
        match self
            .hsm()
            .decrypt_asymmetric(&self.inner.options.hsm_caller, alias, sealed)
        {
            Ok(plain) => Ok(std::str::from_utf8(&plain).ok().and_then(Pan::new)),
            Err(HsmError::VerificationFailed) => Ok(None),
            Err(e) => Err(PaymentError::Hsm(e.code().to_owned())),
        }
    }

    /// Runs `f` on the HSM off the async workers: every HSM operation appends (and syncs) its
    /// audit line before answering, so it blocks for a disk flush; on a blocking thread it
    /// holds the HSM, not a runtime worker that other requests' I/O needs.
    ///
    /// Errors: [`PaymentError::Hsm`] when the blocking task could not run.
    pub(super) async fn hsm_run<T, F>(&self, f: F) -> Result<T, PaymentError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Hsm, &str) -> T + Send + 'static,
    {
        let hsm = Arc::clone(&self.inner.hsm);
        let caller = self.inner.options.hsm_caller.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&hsm), &caller))
            .await
            .map_err(|_| PaymentError::Hsm(String::from("HSM task failed")))
    }

    /// Adds the MAC (field 64 or 128) computed by the HSM and packs.
    pub(super) async fn mac_and_pack(
        &self,
        bank: &Bank,
        message: &mut Message,
    ) -> Result<Vec<u8>, PaymentError> {
        self.mac_and_pack_with(&bank.mac_key, message).await
    }

    /// Adds the MAC under the key `alias` and packs.
    pub(super) async fn mac_and_pack_with(
        &self,
        alias: &str,
        message: &mut Message,
    ) -> Result<Vec<u8>, PaymentError> {
        let input = iso8583::mac_input(message)?;
        let alias = alias.to_owned();
        let (mac, _) = self
            .hsm_run(move |hsm, caller| {
                hsm.generate_mac(caller, &alias, &input, hsm::mac::Padding::Method1)
            })
            .await?
            .map_err(|e| PaymentError::Hsm(e.code().to_owned()))?;
        let field = iso8583::mac_field(message);
        message.set(
            field,
            mac.get(..iso8583::MAC_LEN).unwrap_or_default().to_vec(),
        );
        Ok(iso8583::pack(message)?)
    }

    /// Whether a received packed message carries a good MAC under the bank's key.
    pub(super) async fn mac_ok(&self, bank: &Bank, packed: &[u8], message: &Message) -> bool {
        self.mac_ok_with(&bank.mac_key, packed, message).await
    }

    /// Whether a received packed message carries a good MAC under the key `alias`.
    pub(super) async fn mac_ok_with(&self, alias: &str, packed: &[u8], message: &Message) -> bool {
        let Ok((covered, mac)) = iso8583::split_mac(packed, message) else {
            return false;
        };
        let (covered, mac, alias) = (covered.to_vec(), mac.to_vec(), alias.to_owned());
        self.hsm_run(move |hsm, caller| {
            hsm.verify_mac(caller, &alias, &covered, &mac, hsm::mac::Padding::Method1)
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// The ledger account of a bank's clearing or a merchant's receivable (created once).
    pub(super) async fn account(
        &self,
        kind: AccountKind,
        code: &str,
    ) -> Result<AccountId, PaymentError> {
        if let Some(id) = lock(&self.inner.accounts).get(&(kind, code.to_owned())) {
            return Ok(*id);
        }
        let code_parsed =
            AccountCode::parse(code).map_err(|_| PaymentError::Request("account code"))?;
        let spec = AccountSpec::new(
            self.inner.options.admdvs,
            kind,
            code_parsed,
            Default::default(),
        )
        .map_err(|_| PaymentError::Request("account spec"))?;
        let id = self.inner.ledger.create_account(&spec).await?.id;
        lock(&self.inner.accounts).insert((kind, code.to_owned()), id);
        Ok(id)
    }

    /// Posts `amount_fen` from `debit` to `credit` (or reverses `reverses`); returns the id hex.
    pub(super) async fn post(
        &self,
        debit: AccountId,
        credit: AccountId,
        amount_fen: i64,
        reverses: Option<PostingId>,
    ) -> Result<String, PaymentError> {
        let amount = Fen::from_fen(amount_fen).map_err(|_| PaymentError::Request("amount"))?;
        let now = Moment::now();
        let seq = self.inner.posting_seq.fetch_add(1, Ordering::Relaxed);
        let id = PostingId::v7(
            u64::try_from(now.unix_ms).unwrap_or(0),
            (u128::from(seq) << 20) | u128::from(std::process::id()),
        );
        let posting = Posting {
            id,
            admdvs: self.inner.options.admdvs,
            legs: vec![
                Leg {
                    account: debit,
                    side: Side::Debit,
                    amount,
                },
                Leg {
                    account: credit,
                    side: Side::Credit,
                    amount,
                },
            ],
            link: reverses.map(Link::Reverses),
        };
        let receipt = self.inner.ledger.post(posting).await?;
        Ok(hex::encode(receipt.id.to_bytes()))
    }

    /// A purchase (0200, processing code 000000). Always answers: refusals and declines are
    /// outcomes; `Err` only for store/ledger/HSM faults.
    ///
    /// Errors: [`PaymentError::Store`], [`PaymentError::Ledger`], [`PaymentError::Hsm`].
    pub async fn purchase(&self, req: &PurchaseRequest) -> Result<PaymentOutcome, PaymentError> {
        self.purchase_with_terminal_txn(req, None).await
    }

    /// A purchase carrying the terminal's own transaction id (1..=32 ASCII letters, digits or
    /// `-`, unique per terminal), recorded with the transaction so that the terminal can reverse
    /// it when the answer does not reach it ([`Switch::terminal_reversal`]). An id the terminal
    /// already used or voided is refused with `94` (nothing sent, nothing posted); a malformed id
    /// with `30`.
    ///
    /// Errors: as [`Switch::purchase`].
    pub async fn purchase_with_terminal_txn(
        &self,
        req: &PurchaseRequest,
        terminal_txn_id: Option<&str>,
    ) -> Result<PaymentOutcome, PaymentError> {
        let pan = req.pan.expose();
        let masked = mask_pan(pan);
        let refuse = |code: &str, why: &str| {
            tracing::warn!(pan = %masked, terminal = %req.terminal_id, code, why, "purchase refused by the switch");
            Ok(PaymentOutcome::refused(code))
        };
        if req.terminal_id.len() != 8
            || req.merchant_id.len() != 15
            || !req.terminal_id.is_ascii()
            || !req.merchant_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return refuse(codes::FORMAT_ERROR, "terminal or merchant id malformed");
        }
        if terminal_txn_id.is_some_and(|id| !super::terminal::terminal_txn_id_ok(id)) {
            return refuse(codes::FORMAT_ERROR, "terminal transaction id malformed");
        }
        if req.amount_fen <= 0 || req.amount_fen > 999_999_999_999 {
            return refuse(codes::INVALID_AMOUNT, "amount out of range");
        }
        if req.currency != "156" || req.psn > 99 {
            return refuse(
                codes::FORMAT_ERROR,
                "currency is not 156 or PSN out of range",
            );
        }
        let icc = match icc::parse(&req.icc_data) {
            Ok(icc) => icc,
            Err(e) => return refuse(codes::FORMAT_ERROR, &e.to_string()),
        };
        if icc.amount_fen != req.amount_fen || icc.currency != "0156" {
            return refuse(
                codes::FORMAT_ERROR,
                "the card signed another amount or currency",
            );
        }
        let route = match self.inner.routing.route(pan) {
            Ok(r) => r,
            Err(_) => return refuse(codes::NO_SUCH_ISSUER, "no BIN route"),
        };
        let pan_ref = self.pan_ref(pan);
        let now = Moment::now();
        if let Some(code) = self.risk(&pan_ref, req.amount_fen, &now).await? {
            return refuse(&code, "risk check");
        }
        if let Some(code) = self.travel_risk(&pan_ref, &req.terminal_id, &now).await? {
            return refuse(&code, "same card at a distant terminal within minutes");
        }
        let arqc_req = |arpc: Option<ArpcRequest>| ArqcRequest {
            alias: route.range.imk_ac.clone(),
            pan: pan.to_owned(),
            psn: (req.psn / 10) << 4 | (req.psn % 10),
            atc: icc.atc,
            transaction_data: icc.cdol1_data.clone(),
            arqc: icc.arqc,
            major_key_derivation: match route.range.algorithm {
                CardAlgorithm::Tdes => MajorKeyDerivation::EmvOptionA,
                CardAlgorithm::Sm4 => MajorKeyDerivation::PbocSm4,
            },
            session_key_derivation: SessionKeyDerivation::Pboc,
            arpc,
            arpc_with_card_master_key: false,
        };
        let first = arqc_req(None);
        match self
            .hsm_run(move |hsm, caller| hsm.verify_auth_request_cryptogram(caller, &first))
            .await?
        {
            Ok(_) => {}
            Err(HsmError::VerificationFailed) => {
                return refuse(codes::SECURITY_VIOLATION, "ARQC does not verify");
            }
            Err(e) => return Err(PaymentError::Hsm(e.code().to_owned())),
        }
        let sale = Sale {
            pan,
            psn: Some(req.psn),
            amount_fen: req.amount_fen,
            terminal_id: &req.terminal_id,
            merchant_id: &req.merchant_id,
            entry_mode: b"051",
            icc_data: Some(&req.icc_data),
            pan_ref,
            masked,
        };
        let outcome = self
            .send_sale_claimed(route.bank, sale, &now, terminal_txn_id)
            .await?;
        let arpc = match &outcome.response_code {
            c if c == codes::ISSUER_INOPERATIVE || c == codes::MAC_FAILED => None,
            c => {
                let arc: [u8; 2] = c.as_bytes().try_into().unwrap_or(*b"05");
                let second = arqc_req(Some(ArpcRequest::Method1 { arc }));
                match self
                    .hsm_run(move |hsm, caller| hsm.verify_auth_request_cryptogram(caller, &second))
                    .await?
                {
                    Ok(Some(a)) => a.as_slice().try_into().ok(),
                    _ => None,
                }
            }
        };
        Ok(PaymentOutcome { arpc, ..outcome })
    }
}

/// A sale to send: the card (or token) data and the terminal's.
pub(super) struct Sale<'a> {
    /// PAN digits.
    pub pan: &'a str,
    /// PAN sequence number (field 23), when a chip was read.
    pub psn: Option<u8>,
    /// Amount, fen.
    pub amount_fen: i64,
    /// Field 41.
    pub terminal_id: &'a str,
    /// Field 42.
    pub merchant_id: &'a str,
    /// Field 22: `051` chip, `031` QR code.
    pub entry_mode: &'a [u8; 3],
    /// Field 55, when a chip was read.
    pub icc_data: Option<&'a [u8]>,
    /// Salted PAN hash.
    pub pan_ref: String,
    /// Masked PAN.
    pub masked: String,
}

impl Switch {
    /// Builds the 0200 (processing code 000000) and its transaction row, sends it with its
    /// durable reversal and records the answer.
    pub(super) async fn send_sale(
        &self,
        bank: &Bank,
        sale: Sale<'_>,
        now: &Moment,
    ) -> Result<PaymentOutcome, PaymentError> {
        self.send_sale_claimed(bank, sale, now, None).await
    }

    /// As [`Switch::send_sale`], claiming the terminal's transaction id with the transaction
    /// row; refused with `94` (nothing sent) when the terminal already used or voided it.
    pub(super) async fn send_sale_claimed(
        &self,
        bank: &Bank,
        sale: Sale<'_>,
        now: &Moment,
        terminal_txn_id: Option<&str>,
    ) -> Result<PaymentOutcome, PaymentError> {
        let stan = self.next_stan();
        let rrn = format!("{}{:02}{}", now.local_date(), now.hour, stan);
        let mut request = Message::new(Mti::FINANCIAL_REQUEST)
            .with(2, sale.pan.as_bytes().to_vec())
            .with(3, *b"000000")
            .with(4, format!("{:012}", sale.amount_fen).into_bytes())
            .with(7, now.transmission().into_bytes())
            .with(11, stan.clone().into_bytes())
            .with(12, now.local_time().into_bytes())
            .with(13, now.local_date().into_bytes())
            .with(22, sale.entry_mode.to_vec())
            .with(25, *b"00")
            .with(32, bank.acquirer_id.clone().into_bytes())
            .with(37, rrn.clone().into_bytes())
            .with(41, sale.terminal_id.as_bytes().to_vec())
            .with(42, sale.merchant_id.as_bytes().to_vec())
            .with(49, *b"156");
        if let Some(psn) = sale.psn {
            request.set(23, format!("{psn:03}").into_bytes());
        }
        if let Some(icc) = sale.icc_data {
            request.set(55, icc.to_vec());
        }
        let txn = TxnRow {
            txn_id: format!("{}{}{}", sale.terminal_id, stan, now.transmission()),
            kind: String::from("purchase"),
            bank_code: bank.code.clone(),
            terminal_id: sale.terminal_id.to_owned(),
            merchant_id: sale.merchant_id.to_owned(),
            stan,
            rrn,
            transmission: now.transmission(),
            pan_masked: sale.masked,
            pan_sha256: sale.pan_ref,
            amount_fen: sale.amount_fen,
            approved_fen: 0,
            response_code: None,
            status: String::from("sent"),
            original_txn_id: None,
            posting_id: None,
            business_date: now.business_date(),
            created_at_ms: now.unix_ms,
        };
        let Some(answer) = self
            .send_with_reversal_claimed(bank, &txn, &mut request, terminal_txn_id)
            .await?
        else {
            tracing::warn!(terminal = %txn.terminal_id, pan = %txn.pan_masked, "purchase refused: the terminal already used or voided its transaction id");
            return Ok(PaymentOutcome::refused(codes::DUPLICATE));
        };
        self.settle_answer(bank, &txn, answer, Direction::Purchase)
            .await
    }
}

/// Which way money moves on approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Bank owes us: debit clearing, credit merchant.
    Purchase,
    /// We owe the bank: debit merchant, credit clearing.
    Refund,
    /// Undo the original's posting.
    Void(Option<PostingId>),
}
