//! The purchase flow at the terminal (issue 7; card-hsm-anchors.md §3 steps 1-8):
//!
//! 1. [`begin_purchase`] (one card transaction): read the PBOC application, fill CDOL1 from the
//!    terminal data (amount 9F02, other amount 9F03, country 9F1A = 156, TVR 95, currency
//!    5F2A = 156, date 9A, type 9C = 00, unpredictable number 9F37, time 9F21, merchant name
//!    9F4E), run the first GENERATE AC asking for an ARQC, and build EMV field 55: the CDOL1
//!    itself (8C), each CDOL1 object exactly as sent, then 9F26, 9F27, 9F36, 9F10.
//! 2. [`authorise`]: `POST {switch}/payments/v1/purchase` with a timeout (the terminal's,
//!    longer than the switch's per-hop timeout), giving the issuer's response code and ARPC.
//!    The PAN goes sealed ([`seal_pan`]: SM2 encryption to the key the switch publishes at
//!    `GET /payments/v1/pan-key`, which only the switch's HSM opens), never in clear.
//! 3. [`complete_purchase`] (a second card transaction): EXTERNAL AUTHENTICATE with ARPC‖ARC,
//!    then the second GENERATE AC with CDOL2 (8A = ARC): TC when approved and the issuer
//!    authenticated, else AAC.
//!
//! No answer from the switch in time: the card is finished with AAC and the cashier told the
//! outcome is unknown; the switch's own reversal outbox undoes any issuer approval (the switch
//! answers 91 before the terminal's timeout whenever the issuer is silent). With a journal, the
//! terminal also journals its own reversal naming the purchase's `terminal_txn_id`
//! ([`crate::journal::payrev`]: `POST /payments/v1/reversal`, retried until `00`) **before**
//! the request leaves, and queues it when no answer comes, so an answer lost on the way back
//! (or a crash of the agent while it waits) is undone too (tests/purchase_timeout.rs).

use std::time::Duration;

use card_core::dol::{Dol, TerminalData};
use card_core::pboc::{self, AcType, CryptogramType, PbocError};
use card_core::tlv::{self, Tag, Tlv};
use card_core::{CardTransport, Session};
use serde::{Deserialize, Serialize};

use crate::card::CountingTransport;
use crate::error::AgentError;
use crate::journal::Journal;
use crate::journal::payrev::{self, PaymentReversal};
use crate::reader::CardLink;

/// The terminal's side of one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseSetup {
    /// Amount, fen (9F02 and field 4).
    pub amount_fen: i64,
    /// Field 41, 8 characters.
    pub terminal_id: String,
    /// Field 42, 15 characters.
    pub merchant_id: String,
    /// Merchant name for 9F4E (ASCII, at most 20 bytes).
    pub merchant_name: String,
    /// Transaction date `YYMMDD` as BCD (9A).
    pub date: [u8; 3],
    /// Transaction time `hhmmss` as BCD (9F21).
    pub time: [u8; 3],
    /// Unpredictable number (9F37), fresh per transaction.
    pub unpredictable_number: [u8; 4],
}

/// What the card gave for the authorisation request (the PAN is needed by the switch and kept
/// out of `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct CardAuthorisation {
    /// The PAN.
    pub pan: pboc::Pan,
    /// PAN sequence number (0 when the card has none).
    pub psn: u8,
    /// EMV field 55.
    pub icc_data: Vec<u8>,
    /// The card's CDOL2, for the second GENERATE AC.
    pub cdol2: Vec<u8>,
    /// The terminal data used (for CDOL2).
    terminal: Vec<(u32, Vec<u8>)>,
}

impl std::fmt::Debug for CardAuthorisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardAuthorisation")
            .field("pan", &self.pan)
            .field("icc_data_len", &self.icc_data.len())
            .finish_non_exhaustive()
    }
}

/// The switch's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchAnswer {
    /// ISO 8583 field 39.
    pub response_code: String,
    /// Approved amount, fen.
    pub approved_fen: i64,
    /// RRN.
    pub rrn: String,
    /// STAN.
    pub stan: String,
    /// Authorisation id.
    pub auth_code: Option<String>,
    /// ARPC (method 1), hex.
    pub arpc_hex: Option<String>,
}

fn tag(t: u32) -> Result<Tag, AgentError> {
    Tag::from_u32(t).map_err(|e| AgentError::Internal(e.to_string()))
}

fn bcd_amount(amount_fen: i64) -> Result<Vec<u8>, AgentError> {
    if !(1..=999_999_999_999).contains(&amount_fen) {
        return Err(AgentError::BadRequest(
            "amount must be 1..=999999999999 fen".into(),
        ));
    }
    hex::decode(format!("{amount_fen:012}")).map_err(|e| AgentError::Internal(e.to_string()))
}

fn terminal_values(setup: &PurchaseSetup) -> Result<Vec<(u32, Vec<u8>)>, AgentError> {
    let mut name = setup.merchant_name.as_bytes().to_vec();
    if name.len() > 20 || !setup.merchant_name.is_ascii() {
        return Err(AgentError::BadRequest(
            "merchant name must be ASCII, 20 bytes at most".into(),
        ));
    }
    name.resize(20, b' ');
    Ok(vec![
        (0x9F02, bcd_amount(setup.amount_fen)?),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x01, 0x56]),
        (0x95, vec![0; 5]),
        (0x5F2A, vec![0x01, 0x56]),
        (0x9A, setup.date.to_vec()),
        (0x9C, vec![0x00]),
        (0x9F37, setup.unpredictable_number.to_vec()),
        (0x9F21, setup.time.to_vec()),
        (0x9F4E, name),
    ])
}

fn terminal_data(values: &[(u32, Vec<u8>)]) -> Result<TerminalData, AgentError> {
    let mut data = TerminalData::new();
    for (t, v) in values {
        data.set(tag(*t)?, v.clone());
    }
    Ok(data)
}

/// Step 1: reads the PBOC application and asks the card for an ARQC over CDOL1.
///
/// Errors: [`AgentError::NoBankApplication`], card faults, a card without CDOL1/CDOL2, a card
/// that does not go online (no ARQC).
pub fn begin_purchase(
    link: &mut CardLink<'_>,
    setup: &PurchaseSetup,
) -> Result<CardAuthorisation, AgentError> {
    let values = terminal_values(setup)?;
    let terminal = terminal_data(&values)?;
    let mut counting = CountingTransport::new(link.transport.as_mut());
    let mut session = Session::new(&mut counting);
    let application = pboc::read_application(&mut session, &terminal)?;
    let (cdol1_tag, cdol2_tag) = (tag(0x8C)?, tag(0x8D)?);
    let missing = |tag| AgentError::from(PbocError::MissingData { tag });
    let cdol1_raw = application
        .card_data
        .get(cdol1_tag)
        .ok_or_else(|| missing(cdol1_tag))?
        .to_vec();
    let cdol2 = application
        .card_data
        .get(cdol2_tag)
        .ok_or_else(|| missing(cdol2_tag))?
        .to_vec();
    let cdol1 = Dol::parse(&cdol1_raw).map_err(PbocError::from)?;
    let data = cdol1.fill(&terminal);
    let answer = pboc::generate_ac(&mut session, AcType::Arqc, &data)?;
    if answer.cryptogram_type() != CryptogramType::Arqc {
        return Err(AgentError::Internal(
            "the card declined offline (no ARQC)".into(),
        ));
    }
    let mut objects = vec![Tlv::primitive(tag(0x8C)?, cdol1_raw).map_err(internal)?];
    let mut at = 0usize;
    for entry in cdol1.entries() {
        let len = usize::from(entry.len);
        let value = data
            .get(at..at + len)
            .ok_or_else(|| AgentError::Internal("CDOL1 fill".into()))?;
        objects.push(Tlv::primitive(entry.tag, value.to_vec()).map_err(internal)?);
        at += len;
    }
    objects.push(Tlv::primitive(tag(0x9F26)?, answer.ac.to_vec()).map_err(internal)?);
    objects.push(Tlv::primitive(tag(0x9F27)?, vec![answer.cid]).map_err(internal)?);
    objects.push(Tlv::primitive(tag(0x9F36)?, answer.atc.to_vec()).map_err(internal)?);
    if !answer.iad.is_empty() {
        objects.push(Tlv::primitive(tag(0x9F10)?, answer.iad.clone()).map_err(internal)?);
    }
    Ok(CardAuthorisation {
        pan: application.pan.clone(),
        psn: application.psn.map_or(0, |p| (p >> 4) * 10 + (p & 0x0F)),
        icc_data: tlv::encode_all(&objects),
        cdol2,
        terminal: values,
    })
}

fn internal(e: impl std::fmt::Display) -> AgentError {
    AgentError::Internal(e.to_string())
}

/// The switch's PAN sealing keys already fetched, by switch URL.
static PAN_KEYS: std::sync::Mutex<Vec<(String, [u8; 65])>> = std::sync::Mutex::new(Vec::new());

/// Most switch URLs whose key is remembered.
const PAN_KEYS_MAX: usize = 16;

/// The pinned fingerprints of the switches' PAN sealing keys, by switch URL ([`pin_pan_key`]).
static PAN_KEY_PINS: std::sync::Mutex<Vec<(String, [u8; 32])>> = std::sync::Mutex::new(Vec::new());

/// Pins the PAN sealing key of the switch at `switch_url` to `sm3`, the SM3 digest (GB/T
/// 32905-2016) of its 65 bytes `04‖X‖Y`, which `payment-switch` logs at start: from then on a
/// key the switch hands out that does not match is refused and no purchase is sent (a key
/// substituted on the way would let whoever holds its private half read the PANs). A later
/// pin for the same URL replaces the earlier one.
pub fn pin_pan_key(switch_url: &str, sm3: [u8; 32]) {
    let base = switch_url.trim_end_matches('/').to_owned();
    let mut pins = PAN_KEY_PINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    pins.retain(|(url, _)| *url != base);
    if pins.len() >= PAN_KEYS_MAX {
        pins.remove(0);
    }
    pins.push((base, sm3));
}

/// The pin of the switch at `base`, if any.
fn pin_of(base: &str) -> Option<[u8; 32]> {
    PAN_KEY_PINS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|(url, _)| url == base)
        .map(|(_, pin)| *pin)
}

fn not_pinned() -> AgentError {
    AgentError::Internal(
        "the switch's PAN sealing key is not pinned: set SSC_SWITCH_PAN_KEY_SM3 to the \
         fingerprint payment-switch logs at start (no purchase is sent until then)"
            .into(),
    )
}

/// Whether `key` may be used for the switch at `base`: it matches the pin when one is set;
/// without a pin only a switch on this machine is trusted on first use (loopback: nothing on
/// the way to substitute a key).
fn check_pan_key(base: &str, key: &[u8; 65]) -> Result<(), AgentError> {
    match pin_of(base) {
        Some(pin) if hsm::sm::sm3_digest(key) == pin => Ok(()),
        Some(_) => Err(AgentError::Internal(
            "the switch's PAN sealing key does not match its pinned fingerprint \
             (SSC_SWITCH_PAN_KEY_SM3): no purchase is sent"
                .into(),
        )),
        None if is_loopback_url(base) => Ok(()),
        None => Err(not_pinned()),
    }
}

/// Whether `url`'s host is this machine: an IP literal in 127.0.0.0/8 or ::1 (a name, even
/// `localhost`, is only what the resolver says it is).
fn is_loopback_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The key the switch at `switch_url` opens sealed PANs with (SM2 public key `04‖X‖Y`, from
/// `GET {switch}/payments/v1/pan-key`, settlement/src/payments/api.rs), fetched once per URL,
/// checked to be a point of the SM2 curve and, each time it is used, against the URL's pin
/// ([`pin_pan_key`]; without one only a switch on loopback is trusted).
///
/// Errors: [`AgentError::Internal`] when the switch does not answer with a usable key, or the
/// key is not pinned or does not match its pin (then no purchase is sent: the PAN never leaves
/// in clear, nor sealed to a key that is not the switch's).
pub async fn switch_pan_key(
    client: &reqwest::Client,
    switch_url: &str,
    timeout_ms: u64,
) -> Result<[u8; 65], AgentError> {
    let base = switch_url.trim_end_matches('/').to_owned();
    {
        let keys = PAN_KEYS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, key)) = keys.iter().find(|(url, _)| *url == base) {
            let key = *key;
            drop(keys);
            check_pan_key(&base, &key)?;
            return Ok(key);
        }
    }
    // Refused before anything is fetched when no pin can vouch for what would come back.
    let pinned = pin_of(&base).is_some();
    if !pinned && !is_loopback_url(&base) {
        return Err(not_pinned());
    }
    #[derive(Deserialize)]
    struct PanKey {
        algorithm: String,
        public_key_hex: String,
    }
    let no_key = |why: String| {
        AgentError::Internal(format!(
            "the switch's PAN sealing key is not available: {why}"
        ))
    };
    // Unpinned, the key is trusted because it comes straight from this machine: so no proxy
    // (HTTP_PROXY would carry even a loopback request off it) and no redirect elsewhere.
    let direct;
    let client = if pinned {
        client
    } else {
        direct = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| no_key(e.without_url().to_string()))?;
        &direct
    };
    let response = client
        .get(format!("{base}/payments/v1/pan-key"))
        .timeout(Duration::from_millis(timeout_ms))
        .send()
        .await
        .map_err(|e| no_key(e.without_url().to_string()))?;
    if !response.status().is_success() {
        return Err(no_key(format!("HTTP {}", response.status().as_u16())));
    }
    let key: PanKey = response
        .json()
        .await
        .map_err(|e| no_key(e.without_url().to_string()))?;
    if key.algorithm != "SM2" {
        return Err(no_key(format!("algorithm {:?}", key.algorithm)));
    }
    let public =
        hsm::sm::sm2_public_key_from_hex(&key.public_key_hex).map_err(|e| no_key(e.to_string()))?;
    check_pan_key(&base, &public)?;
    let mut keys = PAN_KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if keys.len() >= PAN_KEYS_MAX {
        keys.remove(0);
    }
    keys.push((base, public));
    Ok(public)
}

/// The PAN sealed to the switch's key `public`: SM2 public-key encryption (GB/T 32918.4-2016,
/// `C1‖C3‖C2`) of its ASCII digits, hex — what `pan_sealed_hex` carries. Only the switch's HSM
/// opens it.
///
/// Errors: [`AgentError::Internal`] (no system randomness).
pub fn seal_pan(public: &[u8; 65], pan: &pboc::Pan) -> Result<String, AgentError> {
    hsm::sm::sm2_encrypt(public, pan.expose().as_bytes())
        .map(hex::encode_upper)
        .map_err(|e| AgentError::Internal(format!("sealing the PAN: {e}")))
}

/// Step 2: the authorisation request to the switch, bounded by `timeout_ms`.
///
/// Errors: [`AgentError::Internal`] with "no answer" when the switch is unreachable or silent
/// (outcome unknown), or answers something unreadable.
pub async fn authorise(
    client: &reqwest::Client,
    switch_url: &str,
    setup: &PurchaseSetup,
    card: &CardAuthorisation,
    timeout_ms: u64,
) -> Result<SwitchAnswer, AgentError> {
    authorise_identified(client, switch_url, setup, card, timeout_ms, None).await
}

/// [`authorise`], naming the purchase `terminal_txn_id` (1-32 of `[A-Za-z0-9-]`, unique per
/// terminal; settlement/src/payments/terminal.rs) when given, for a later reversal.
///
/// Errors: as [`authorise`].
pub async fn authorise_identified(
    client: &reqwest::Client,
    switch_url: &str,
    setup: &PurchaseSetup,
    card: &CardAuthorisation,
    timeout_ms: u64,
    terminal_txn_id: Option<&str>,
) -> Result<SwitchAnswer, AgentError> {
    let key = switch_pan_key(client, switch_url, timeout_ms).await?;
    let body = purchase_body(&key, setup, card, terminal_txn_id)?;
    send_purchase(client, switch_url, &body, timeout_ms).await
}

/// The purchase request's JSON body (settlement/src/payments/api.rs), the PAN sealed to the
/// switch's key `key` ([`seal_pan`]), `terminal_txn_id` included when given.
///
/// Errors: as [`seal_pan`]. Nothing has been sent then.
fn purchase_body(
    key: &[u8; 65],
    setup: &PurchaseSetup,
    card: &CardAuthorisation,
    terminal_txn_id: Option<&str>,
) -> Result<serde_json::Value, AgentError> {
    let mut body = serde_json::json!({
        "terminal_id": setup.terminal_id,
        "merchant_id": setup.merchant_id,
        "pan_sealed_hex": seal_pan(key, &card.pan)?,
        "psn": card.psn,
        "amount_fen": setup.amount_fen,
        "currency": "156",
        "icc_data_hex": hex::encode_upper(&card.icc_data),
    });
    if let (Some(id), Some(fields)) = (terminal_txn_id, body.as_object_mut()) {
        fields.insert("terminal_txn_id".into(), id.into());
    }
    Ok(body)
}

/// Sends a purchase `body` ([`purchase_body`]) to the switch, bounded by `timeout_ms`.
///
/// Errors: [`AgentError::Internal`] with "no answer" when the switch is unreachable or silent
/// (outcome unknown: the request may have arrived), or answers something unreadable.
async fn send_purchase(
    client: &reqwest::Client,
    switch_url: &str,
    body: &serde_json::Value,
    timeout_ms: u64,
) -> Result<SwitchAnswer, AgentError> {
    let url = format!("{}/payments/v1/purchase", switch_url.trim_end_matches('/'));
    let response = client
        .post(url)
        .json(body)
        .timeout(Duration::from_millis(timeout_ms))
        .send()
        .await
        .map_err(|e| {
            AgentError::Internal(format!("no answer from the switch: {}", e.without_url()))
        })?;
    response
        .json::<SwitchAnswer>()
        .await
        .map_err(|e| AgentError::Internal(format!("unreadable switch answer: {}", e.without_url())))
}

/// How the card finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Whether EXTERNAL AUTHENTICATE accepted the ARPC (`None`: no ARPC to present).
    pub issuer_authenticated: Option<bool>,
    /// The second GENERATE AC's cryptogram: TC (approved) or AAC (declined).
    pub cryptogram: CryptogramType,
}

/// Step 3: EXTERNAL AUTHENTICATE (when there is an ARPC), then the second GENERATE AC.
///
/// Errors: card faults.
pub fn complete_purchase(
    link: &mut CardLink<'_>,
    card: &CardAuthorisation,
    answer: Option<&SwitchAnswer>,
) -> Result<Completion, AgentError> {
    let mut session = Session::new(link.transport.as_mut());
    complete_on(&mut session, card, answer)
}

/// Whether the switch's answer approves the purchase at the card: `00`, or `10` (approved for
/// the partial amount `approved_fen`, ISO 8583:1987 Annex A), with something approved.
fn finishes_approved(answer: Option<&SwitchAnswer>) -> bool {
    answer
        .is_some_and(|a| (a.response_code == "00" || a.response_code == "10") && a.approved_fen > 0)
}

fn complete_on<T: CardTransport>(
    session: &mut Session<T>,
    card: &CardAuthorisation,
    answer: Option<&SwitchAnswer>,
) -> Result<Completion, AgentError> {
    // No answer: ARC "Z3" (EMV Book 4 Annex A6: unable to go online, declined).
    let arc: [u8; 2] = answer
        .and_then(|a| a.response_code.as_bytes().try_into().ok())
        .unwrap_or(*b"Z3");
    let arpc: Option<[u8; 8]> = answer
        .and_then(|a| a.arpc_hex.as_deref())
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok());
    let issuer_authenticated = match arpc {
        Some(arpc) => match pboc::issuer_authenticate(session, &arpc, arc) {
            Ok(()) => Some(true),
            Err(PbocError::IssuerAuthenticationFailed) => Some(false),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let approved = finishes_approved(answer);
    let ac_type = if approved && issuer_authenticated == Some(true) {
        AcType::Tc
    } else {
        AcType::Aac
    };
    let mut values = card.terminal.clone();
    values.push((0x8A, arc.to_vec()));
    let terminal = terminal_data(&values)?;
    let cdol2 = Dol::parse(&card.cdol2).map_err(PbocError::from)?;
    let second = pboc::generate_ac_with_dol(session, ac_type, &cdol2, &terminal)?;
    Ok(Completion {
        issuer_authenticated,
        cryptogram: second.cryptogram_type(),
    })
}

/// The result of a whole purchase at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurchaseReceipt {
    /// The switch's answer; `None` when it did not answer in time (outcome unknown at the
    /// issuer; the switch reverses it).
    pub answer: Option<SwitchAnswer>,
    /// How the card finished.
    pub completion: Completion,
    /// With a journal: the msgid of the queued payment reversal when the switch did not answer
    /// (outcome unknown) or the issuer's approval was not finished on the card; None when the
    /// armed reversal was cancelled.
    pub reversal_msgid: Option<String>,
}

/// Where the switch is and how long the terminal waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchEndpoint {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The terminal's timeout for the authorisation, ms (longer than the switch's per-hop
    /// timeout toward the issuer, fixtures/banks/routing.toml `terminal_timeout_ms`).
    pub timeout_ms: u64,
    /// The SM3 fingerprint of the switch's PAN sealing key, if pinned ([`pin_pan_key`]).
    pub pan_key_sm3: Option<[u8; 32]>,
}

/// Steps 1-3 in ONE exclusive card transaction on `reader` (the card keeps its transaction
/// state between the two GENERATE ACs only within one session): the authorisation request is
/// sent from inside the card job, on the runtime `handle`.
///
/// Errors: reader/card faults, [`AgentError::BadRequest`] for a bad setup.
pub async fn purchase(
    readers: &crate::reader::Readers,
    reader: &str,
    client: reqwest::Client,
    endpoint: SwitchEndpoint,
    setup: PurchaseSetup,
) -> Result<PurchaseReceipt, AgentError> {
    purchase_identified(readers, reader, client, endpoint, setup, None).await
}

/// The purchase's identity for a terminal reversal.
#[derive(Debug, Clone)]
pub struct PurchaseIdentity {
    /// The terminal's id of this purchase (1-32 of `[A-Za-z0-9-]`, unique per terminal), sent
    /// with it and named by its reversal (settlement/src/payments/terminal.rs).
    pub terminal_txn_id: String,
    /// Where the reversal is journaled when the switch does not answer (None: not journaled).
    pub journal: Option<Journal>,
}

/// [`purchase`] sending `identity.terminal_txn_id`. With a journal in `identity`, the
/// terminal's payment reversal of the purchase is journaled `armed` **before** the
/// authorisation request leaves ([`payrev::arm_payment_reversal`]), then resolved:
/// - no usable answer (timeout, connection lost, unreadable answer): queued, due at once
///   (outcome unknown; the receipt's `reversal_msgid` names it);
/// - approved by the issuer (`approved_fen` > 0) but not finished with TC on the card (ARPC
///   refused, card declined or pulled): queued too, so the approval is undone;
/// - otherwise (declined, or approved and TC): cancelled.
///
/// Errors: as [`purchase`]; [`AgentError::BadRequest`] for an invalid `terminal_txn_id`,
/// [`AgentError::Internal`] when the reversal cannot be journaled (then the purchase is not
/// sent and the card is finished with AAC).
pub async fn purchase_identified(
    readers: &crate::reader::Readers,
    reader: &str,
    client: reqwest::Client,
    endpoint: SwitchEndpoint,
    setup: PurchaseSetup,
    identity: Option<PurchaseIdentity>,
) -> Result<PurchaseReceipt, AgentError> {
    if let Some(identity) = &identity
        && !payrev::terminal_txn_id_ok(&identity.terminal_txn_id)
    {
        return Err(AgentError::BadRequest(
            "terminal_txn_id must be 1-32 of [A-Za-z0-9-]".into(),
        ));
    }
    // The key the PAN is sealed to, before the card is touched: without it nothing is sent.
    if let Some(pin) = endpoint.pan_key_sm3 {
        pin_pan_key(&endpoint.url, pin);
    }
    // Fetched and checked once: the card job seals to this very key, so nothing can fail
    // between arming the reversal and sending but the request itself.
    let key = switch_pan_key(&client, &endpoint.url, endpoint.timeout_ms).await?;
    let handle = tokio::runtime::Handle::current();
    // The card job may last the terminal's timeout plus the card work.
    let job_timeout_ms = endpoint.timeout_ms.saturating_add(10_000);
    readers
        .run(reader, job_timeout_ms, move |link| {
            let card = begin_purchase(link, &setup)?;
            let body = match purchase_body(
                &key,
                &setup,
                &card,
                identity.as_ref().map(|i| i.terminal_txn_id.as_str()),
            ) {
                Ok(body) => body,
                Err(e) => {
                    // Nothing armed, nothing sent: finish the card declined.
                    let _ = complete_purchase(link, &card, None);
                    return Err(e);
                }
            };
            let armed = match &identity {
                Some(PurchaseIdentity {
                    terminal_txn_id,
                    journal: Some(journal),
                }) => {
                    let request = PaymentReversal {
                        terminal_id: setup.terminal_id.clone(),
                        merchant_id: setup.merchant_id.clone(),
                        terminal_txn_id: terminal_txn_id.clone(),
                    };
                    match handle.block_on(payrev::arm_payment_reversal(journal, &request)) {
                        Ok(msgid) => Some((journal.clone(), msgid)),
                        Err(e) => {
                            // Nothing left: finish the card declined, send nothing.
                            let _ = complete_purchase(link, &card, None);
                            return Err(AgentError::Internal(format!(
                                "journaling the payment reversal before the purchase: {e}"
                            )));
                        }
                    }
                }
                _ => None,
            };
            let answer = handle.block_on(send_purchase(
                &client,
                &endpoint.url,
                &body,
                endpoint.timeout_ms,
            ));
            match answer {
                Ok(answer) => {
                    let completion = complete_purchase(link, &card, Some(&answer));
                    let finished_approved =
                        matches!(&completion, Ok(c) if c.cryptogram == CryptogramType::Tc);
                    let undo = answer.approved_fen > 0 && !finished_approved;
                    let mut reversal_msgid = None;
                    if let Some((journal, msgid)) = armed {
                        if undo {
                            tracing::warn!(terminal = %setup.terminal_id, "approved by the issuer but not finished on the card: reversing");
                            handle
                                .block_on(payrev::trigger(&journal, &msgid, NOT_FINISHED_NOTE))
                                .map_err(|e| AgentError::Internal(format!("queueing the payment reversal: {e}")))?;
                            reversal_msgid = Some(msgid);
                        } else {
                            handle
                                .block_on(payrev::release(&journal, &msgid))
                                .map_err(|e| AgentError::Internal(format!("releasing the payment reversal: {e}")))?;
                        }
                    }
                    Ok(PurchaseReceipt {
                        answer: Some(answer),
                        completion: completion?,
                        reversal_msgid,
                    })
                }
                Err(e) => {
                    tracing::warn!(terminal = %setup.terminal_id, error = %e, "no answer from the switch: outcome unknown, declining on the card");
                    let mut reversal_msgid = None;
                    if let Some((journal, msgid)) = armed {
                        handle
                            .block_on(payrev::trigger(&journal, &msgid, payrev::NO_ANSWER_NOTE))
                            .map_err(|e| AgentError::Internal(format!("queueing the payment reversal: {e}")))?;
                        reversal_msgid = Some(msgid);
                    }
                    let completion = complete_purchase(link, &card, None)?;
                    Ok(PurchaseReceipt {
                        answer: None,
                        completion,
                        reversal_msgid,
                    })
                }
            }
        })
        .await
}

/// The `last_error` of a payment reversal queued because the issuer approved a purchase the
/// card did not finish with TC.
pub const NOT_FINISHED_NOTE: &str = "approved by the issuer, not finished on the card";

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Seen = Arc<Mutex<Vec<serde_json::Value>>>;

    async fn purchase_route(
        axum::extract::State(seen): axum::extract::State<Seen>,
        axum::Json(body): axum::Json<serde_json::Value>,
    ) -> axum::Json<serde_json::Value> {
        seen.lock().unwrap().push(body);
        axum::Json(
            serde_json::json!({"response_code": "05", "approved_fen": 0, "rrn": "000000000001", "stan": "000001", "auth_code": null, "arpc_hex": null}),
        )
    }

    #[tokio::test]
    async fn the_terminal_txn_id_goes_with_the_purchase_only_when_given() {
        let seen = Seen::default();
        let pair = hsm::sm::sm2_generate_keypair().unwrap();
        let url = key_switch(hex::encode_upper(pair.public()), Arc::clone(&seen)).await;
        let (setup, card) = test_purchase();
        let client = reqwest::Client::new();
        let answer = authorise_identified(
            &client,
            &url,
            &setup,
            &card,
            2_000,
            Some("1764487800000-0A1B"),
        )
        .await
        .unwrap();
        assert_eq!(answer.response_code, "05");
        authorise(&client, &url, &setup, &card, 2_000)
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        // settlement/src/payments/api.rs: the purchase's optional `terminal_txn_id`.
        assert_eq!(seen[0]["terminal_txn_id"], "1764487800000-0A1B");
        assert_eq!(seen[0]["terminal_id"], "T0000001");
        assert_eq!(seen[0]["icc_data_hex"], "9F270180");
        assert!(seen[1].get("terminal_txn_id").is_none());
        // The PAN never travels in clear: only sealed, and the switch's private key opens it
        // (GB/T 32918.4 decryption, hsm::sm::sm2_decrypt) to the card's digits.
        for body in &seen {
            assert!(body.get("pan").is_none(), "{body}");
            assert!(!body.to_string().contains(card.pan.expose()), "{body}");
            let sealed = hex::decode(body["pan_sealed_hex"].as_str().unwrap()).unwrap();
            let opened = hsm::sm::sm2_decrypt(pair.secret(), &sealed).unwrap();
            assert_eq!(opened.as_slice(), card.pan.expose().as_bytes());
        }
        // Sealed afresh each time (a random k per encryption).
        assert_ne!(seen[0]["pan_sealed_hex"], seen[1]["pan_sealed_hex"]);
    }

    /// The SM2 base point G (GB/T 32918.5-2017 parameters), a valid public key `04‖X‖Y`, and
    /// its SM3 fingerprint computed with OpenSSL (Python `hashlib.new("sm3", ...)`).
    const G_HEX: &str = "0432C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7\
                         BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    const G_SM3: &str = "1a8ebc45db0c198888a115984193ff485315b84e2967092ddc5814274448410c";

    /// A purchase of 1.00 and the card's side of it, with a test PAN (its Luhn check digit 9
    /// computed with a Python one-liner, ISO/IEC 7812-1).
    fn test_purchase() -> (PurchaseSetup, CardAuthorisation) {
        let setup = PurchaseSetup {
            amount_fen: 100,
            terminal_id: "T0000001".into(),
            merchant_id: "M00000000000001".into(),
            merchant_name: "SHOP".into(),
            date: [0x26, 0x11, 0x30],
            time: [0x07, 0x30, 0x00],
            unpredictable_number: [1, 2, 3, 4],
        };
        let card = CardAuthorisation {
            pan: pboc::Pan::new("6222021000000000009").unwrap(),
            psn: 1,
            icc_data: vec![0x9F, 0x27, 0x01, 0x80],
            cdol2: Vec::new(),
            terminal: Vec::new(),
        };
        (setup, card)
    }

    /// A switch on loopback handing out `public_hex` as its PAN key (and answering purchases
    /// `05`, recorded in `seen`); returns its URL.
    async fn key_switch(public_hex: String, seen: Seen) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/payments/v1/purchase", axum::routing::post(purchase_route))
            .route(
                "/payments/v1/pan-key",
                axum::routing::get(move || {
                    let public_hex = public_hex.clone();
                    async move {
                        axum::Json(
                            serde_json::json!({"algorithm": "SM2", "public_key_hex": public_hex}),
                        )
                    }
                }),
            )
            .with_state(seen);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn sm3_of(text: &str) -> [u8; 32] {
        <[u8; 32]>::try_from(hex::decode(text).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn the_pan_key_must_match_its_pin_or_nothing_is_sent() {
        let client = reqwest::Client::new();
        let seen = Seen::default();
        let url = key_switch(G_HEX.to_owned(), Arc::clone(&seen)).await;
        // Pinned to its fingerprint: the key is used.
        pin_pan_key(&url, sm3_of(G_SM3));
        let key = switch_pan_key(&client, &url, 2_000).await.unwrap();
        assert_eq!(hex::encode_upper(key), G_HEX);
        // Pinned to another fingerprint (the key a terminal is handed was substituted): the
        // remembered key is refused too, and no purchase leaves.
        let mut other = sm3_of(G_SM3);
        other[31] ^= 1;
        pin_pan_key(&url, other);
        let err = switch_pan_key(&client, &url, 2_000).await.unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        let (setup, card) = test_purchase();
        assert!(
            authorise(&client, &url, &setup, &card, 2_000)
                .await
                .is_err()
        );
        // A switch first reached with a wrong pin: refused at the fetch.
        let fresh = key_switch(G_HEX.to_owned(), Arc::clone(&seen)).await;
        pin_pan_key(&format!("{fresh}/"), other);
        let err = switch_pan_key(&client, &fresh, 2_000).await.unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(seen.lock().unwrap().is_empty());
        // Pins and keys are process-wide: leave none behind for a later test on these ports.
        forget(&url);
        forget(&fresh);
    }

    fn forget(url: &str) {
        PAN_KEY_PINS.lock().unwrap().retain(|(u, _)| u != url);
        PAN_KEYS.lock().unwrap().retain(|(u, _)| u != url);
    }

    #[tokio::test]
    async fn a_switch_off_this_machine_is_not_trusted_without_a_pin() {
        let client = reqwest::Client::new();
        // TEST-NET-1 (RFC 5737): refused before anything is fetched (a fetch would fail with
        // another message after the 10 s timeout).
        let err = switch_pan_key(&client, "http://192.0.2.1:9", 10_000)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not pinned"), "{err}");
        for url in ["http://127.0.0.1:1", "http://127.8.0.1:1", "http://[::1]:1"] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:1",
            "http://localhost:1",
            "http://127.0.0.1.nip.io:1",
            "http://localhost.example:1",
            "http://[::ffff:10.0.0.1]:1",
            "not a url",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    /// A partial approval (ISO 8583 response code 10, `approved_fen` below the amount asked)
    /// finishes the card approved (TC), as a full one does; a decline ends with AAC.
    #[test]
    fn a_partial_approval_finishes_the_card_approved() {
        let approved = |code: &str, fen: i64| SwitchAnswer {
            response_code: code.into(),
            approved_fen: fen,
            rrn: "000000000001".into(),
            stan: "000001".into(),
            auth_code: None,
            arpc_hex: None,
        };
        assert!(finishes_approved(Some(&approved("10", 1_005))));
        assert!(finishes_approved(Some(&approved("00", 2_010))));
        assert!(!finishes_approved(Some(&approved("51", 0))));
        assert!(!finishes_approved(Some(&approved("10", 0))));
        assert!(!finishes_approved(None));
    }
}
