//! The terminals' JSON API of the switch over a real socket (settlement::payments::api): the
//! PAN never crosses it in clear (sealed with SM2 to the key `GET /payments/v1/pan-key` gives,
//! opened only in the switch's HSM; a clear `pan` is refused 30, an altered seal 63), and the
//! partner QR route `POST /payments/v1/qr` (approved once; replayed 94, expired 54, another
//! amount 13, bad signature 63, malformed 30: nothing sent, recorded or posted for those). No
//! log line carries a PAN in clear. Expected codes are the ones the modules document (ISO
//! 8583:1987 Annex A); amounts are the ones sent; the issuer's own event log is the witness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use hsm::keystore::{KeyAlgorithm, KeyUsage, ModeOfUse};
use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, TestCard, header};
use serde_json::{Value, json};
use settlement::payments::{Moment, codes};

/// Everything logged in this test binary (DEBUG and up).
fn logs() -> String {
    payments_support::captured_logs(tracing::Level::DEBUG)
}

/// The partner's SM2 private key (test key only; any scalar in 1..n-1).
const PARTNER_SM2_KEY: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const PARTNER_ALIAS: &str = "partner-wallet01-sm2";

struct Rig {
    _dir: tempfile::TempDir,
    _hsm_dir: tempfile::TempDir,
    sim_a: BankSim,
    _sim_b: BankSim,
    switch: settlement::payments::Switch,
    url: String,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

async fn rig() -> Rig {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let (hsm_dir, mut hsm) = payments_support::hsm();
    hsm.import_key_components(
        "test",
        header(PARTNER_ALIAS, KeyAlgorithm::Sm2, KeyUsage::S0, ModeOfUse::V),
        &[&hex::decode(PARTNER_SM2_KEY).unwrap()],
        None,
    )
    .unwrap();
    let sim_a = BankSim::start(dir.path().join("a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch = payments_support::switch(
        dir.path(),
        Arc::new(Mutex::new(hsm)),
        sim_a.port,
        sim_b.port,
        "bank-a-zak",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = settlement::payments::api::router(switch.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Rig {
        _dir: dir,
        _hsm_dir: hsm_dir,
        sim_a,
        _sim_b: sim_b,
        switch,
        url,
        http: reqwest::Client::new(),
        server,
    }
}

impl Rig {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn auths(&self) -> Vec<Value> {
        self.sim_a
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "auth")
            .collect()
    }

    async fn net_fen(&self) -> i64 {
        let day = Moment::now().business_date();
        self.switch
            .cut_off(&day)
            .await
            .unwrap()
            .iter()
            .map(|b| b.net_fen)
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pan_crosses_the_api_only_sealed() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    let key = r
        .http
        .get(format!("{}/payments/v1/pan-key", r.url))
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), 200);
    let key: Value = key.json().await.unwrap();
    assert_eq!(key["algorithm"], "SM2");
    let public = hex::decode(key["public_key_hex"].as_str().unwrap()).unwrap();
    // SEC1 uncompressed point: 04 ‖ X ‖ Y (65 bytes), a point of the SM2 curve.
    assert_eq!((public.len(), public[0]), (65, 0x04));
    hsm::sm::sm2_public_key_from_hex(key["public_key_hex"].as_str().unwrap()).unwrap();

    let body = |amount: i64, atc: u16, pan: Value| {
        let mut b = json!({
            "terminal_id": "BJ000001",
            "merchant_id": MERCHANT,
            "psn": card.psn,
            "amount_fen": amount,
            "currency": "156",
            "icc_data_hex": hex::encode_upper(card.icc_data(amount, atc, false)),
        });
        let fields = b.as_object_mut().unwrap();
        for (k, v) in pan.as_object().unwrap() {
            fields.insert(k.clone(), v.clone());
        }
        b
    };
    // The PAN in clear: refused 30, nothing sent.
    let (status, out) = r
        .post(
            "/payments/v1/purchase",
            &body(1_200, card.atc, json!({"pan": card.pan})),
        )
        .await;
    assert_eq!((status, out["response_code"].as_str()), (200, Some("30")));
    // Sealed, then altered (a bit of C2, the enciphered digits): the seal does not open, 63.
    let sealed = payments_support::seal_pan(&public, &card.pan);
    let mut altered = hex::decode(&sealed).unwrap();
    *altered.last_mut().unwrap() ^= 0x01;
    let (_, out) = r
        .post(
            "/payments/v1/purchase",
            &body(
                1_200,
                card.atc,
                json!({"pan_sealed_hex": hex::encode_upper(&altered)}),
            ),
        )
        .await;
    assert_eq!(out["response_code"], "63");
    // Sealed to another key (a fresh SM2 pair): 63 too.
    let stranger = hsm::sm::sm2_generate_keypair().unwrap();
    let (_, out) = r
        .post(
            "/payments/v1/purchase",
            &body(
                1_200,
                card.atc,
                json!({"pan_sealed_hex": payments_support::seal_pan(stranger.public(), &card.pan)}),
            ),
        )
        .await;
    assert_eq!(out["response_code"], "63");
    // Not hex: 30.
    let (_, out) = r
        .post(
            "/payments/v1/purchase",
            &body(1_200, card.atc, json!({"pan_sealed_hex": "zz"})),
        )
        .await;
    assert_eq!(out["response_code"], "30");
    assert!(r.auths().is_empty(), "nothing reached the issuer");
    assert_eq!(r.net_fen().await, 0);
    // Sealed properly: approved; the issuer saw the card (last 4 digits) and the amount.
    let (_, out) = r
        .post(
            "/payments/v1/purchase",
            &body(1_200, card.atc, json!({"pan_sealed_hex": sealed})),
        )
        .await;
    assert_eq!(out["response_code"], "00", "{out}");
    assert_eq!(out["approved_fen"], 1_200);
    let auths = r.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0]["pan4"], &card.pan[card.pan.len() - 4..]);
    assert_eq!(r.net_fen().await, 1_200);
    let logs = logs();
    assert!(
        logs.contains("PAN in clear refused"),
        "the refusal is logged"
    );
    assert!(!logs.contains(&card.pan), "a PAN in clear reached the log");
    r.server.abort();
}

fn token(
    partner: &mut hsm::ops::Hsm,
    id: &str,
    pan: &str,
    amount: i64,
    issued: i64,
    expires: i64,
) -> String {
    let signed = format!("SSCQR1|WALLET01|{id}|{pan}|{amount}|{issued}|{expires}");
    let sig = partner
        .sign_data(
            "partner",
            PARTNER_ALIAS,
            signed.as_bytes(),
            "1234567812345678",
        )
        .unwrap();
    format!("{signed}|{}", hex::encode_upper(sig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_payments_over_http() {
    let r = rig().await;
    // The partner's own HSM, holding its signing key.
    let partner_dir = tempfile::tempdir().unwrap();
    let mut partner = hsm::ops::Hsm::open(
        partner_dir.path(),
        hsm::lmk::Lmk::from_bytes(&[0x24; 32]).unwrap(),
    )
    .unwrap();
    partner
        .import_key_components(
            "partner",
            header(PARTNER_ALIAS, KeyAlgorithm::Sm2, KeyUsage::S0, ModeOfUse::S),
            &[&hex::decode(PARTNER_SM2_KEY).unwrap()],
            None,
        )
        .unwrap();
    let pan = TestCard::fixture("beijing-2g.toml").pan;
    let now = Moment::now().unix_ms;
    let qr = |token: &str, amount: i64| json!({"terminal_id": "BJ000001", "merchant_id": MERCHANT, "amount_fen": amount, "token": token});
    let good = token(
        &mut partner,
        "A0112233445566778899AABBCCDDEEFF",
        &pan,
        6_600,
        now - 1_000,
        now + 60_000,
    );
    let expired = token(
        &mut partner,
        "B0112233445566778899AABBCCDDEEFF",
        &pan,
        6_600,
        now - 90_000,
        now - 30_000,
    );
    let forged = good.replacen("|6600|", "|6700|", 1);
    for (token, shown, code) in [
        (good.as_str(), 6_700, codes::INVALID_AMOUNT),
        (forged.as_str(), 6_700, codes::SECURITY_VIOLATION),
        (expired.as_str(), 6_600, codes::EXPIRED),
        ("SSCQR1|WALLET01|nonsense", 6_600, codes::FORMAT_ERROR),
    ] {
        let (status, out) = r.post("/payments/v1/qr", &qr(token, shown)).await;
        assert_eq!(
            (status, out["response_code"].as_str()),
            (200, Some(code)),
            "{out}"
        );
        assert_eq!(out["approved_fen"], 0);
    }
    assert!(r.auths().is_empty(), "refused tokens send nothing");
    assert!(
        r.switch
            .transactions(&Moment::now().business_date())
            .await
            .unwrap()
            .is_empty(),
        "and record nothing"
    );
    // The good token at the amount shown: approved once; replayed: 94.
    let (_, out) = r.post("/payments/v1/qr", &qr(&good, 6_600)).await;
    assert_eq!(
        (out["response_code"].as_str(), out["approved_fen"].as_i64()),
        (Some("00"), Some(6_600)),
        "{out}"
    );
    let (_, out) = r.post("/payments/v1/qr", &qr(&good, 6_600)).await;
    assert_eq!(out["response_code"], "94");
    let auths = r.auths();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0]["amount"], 6_600);
    assert_eq!(r.net_fen().await, 6_600);
    // A body that is not a QR request at all: not a 200.
    let (status, _) = r.post("/payments/v1/qr", &json!({})).await;
    assert!((400..500).contains(&status), "{status}");
    let logs = logs();
    assert!(logs.contains("QR token refused"));
    assert!(!logs.contains(&pan), "a PAN in clear reached the log");
    r.server.abort();
}
