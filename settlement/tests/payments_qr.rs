//! QR payment tokens: signed with SM2 by the partner (its own HSM instance here), verified by the
//! switch's hsm, single use, short expiry, bound to the amount; refusals send and post nothing.
//! Expected codes are the ones the module documents (ISO 8583:1987 30, 63, 13, 54, 94).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use hsm::keystore::{KeyAlgorithm, KeyUsage, ModeOfUse};
use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, header};
use settlement::payments::qr::QrPurchaseRequest;
use settlement::payments::{Moment, codes};

/// The partner's SM2 private key (test key only; any scalar in 1..n-1).
const PARTNER_SM2_KEY: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const ALIAS: &str = "partner-wallet01-sm2";
/// The beijing-2g card as the partner's linked card (routes to bank A).
const PAN: &str = "6214830200000087653";

fn partner_hsm() -> (tempfile::TempDir, hsm::ops::Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let lmk = hsm::lmk::Lmk::from_bytes(&[0x24; 32]).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir.path(), lmk).unwrap();
    let key = hex::decode(PARTNER_SM2_KEY).unwrap();
    hsm.import_key_components(
        "partner",
        header(ALIAS, KeyAlgorithm::Sm2, KeyUsage::S0, ModeOfUse::S),
        &[&key],
        None,
    )
    .unwrap();
    (dir, hsm)
}

fn token(partner: &mut hsm::ops::Hsm, id: &str, amount: i64, issued: i64, expires: i64) -> String {
    let signed = format!("SSCQR1|WALLET01|{id}|{PAN}|{amount}|{issued}|{expires}");
    let sig = partner
        .sign_data("partner", ALIAS, signed.as_bytes(), "1234567812345678")
        .unwrap();
    format!("{signed}|{}", hex::encode_upper(sig))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_tokens_single_use_short_lived_bound_to_the_amount() {
    qr_tokens().await;
}

/// The same on PostgreSQL (fresh schema; current-thread runtime for the per-thread schema).
#[tokio::test(flavor = "current_thread")]
async fn qr_tokens_on_postgres() {
    let schema = payments_support::use_postgres().await;
    qr_tokens().await;
    payments_support::drop_postgres(&schema).await;
}

async fn qr_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_d1, mut switch_hsm) = payments_support::hsm();
    // The switch's HSM holds the partner's key for verification only (mode V). The HSM has no
    // public-key import yet, so the verification key is loaded as the pair.
    let key = hex::decode(PARTNER_SM2_KEY).unwrap();
    switch_hsm
        .import_key_components(
            "test",
            header(ALIAS, KeyAlgorithm::Sm2, KeyUsage::S0, ModeOfUse::V),
            &[&key],
            None,
        )
        .unwrap();
    let (_d2, mut partner) = partner_hsm();
    let sim_a = BankSim::start(dir.path().join("a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch = payments_support::switch(
        dir.path(),
        Arc::new(Mutex::new(switch_hsm)),
        sim_a.port,
        sim_b.port,
        "bank-a-zak",
    )
    .await;
    let now = Moment::now().unix_ms;
    let request = |token: String, amount_fen: i64| QrPurchaseRequest {
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        amount_fen,
        token,
    };
    let id = "00112233445566778899AABBCCDDEEFF";
    let good = token(&mut partner, id, 6_600, now - 1_000, now + 60_000);
    // Bound to the amount: shown 6 700, token says 6 600.
    let out = switch
        .qr_purchase(&request(good.clone(), 6_700))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::INVALID_AMOUNT);
    // A changed amount in the text breaks the signature.
    let forged = good.replacen("|6600|", "|6700|", 1);
    let out = switch.qr_purchase(&request(forged, 6_700)).await.unwrap();
    assert_eq!(out.response_code, codes::SECURITY_VIOLATION);
    // Malformed.
    let out = switch
        .qr_purchase(&request("SSCQR1|WALLET01|xyz".into(), 6_600))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::FORMAT_ERROR);
    // Expired, and valid but living longer than the 120 s allowed.
    let old = token(
        &mut partner,
        "0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F",
        6_600,
        now - 90_000,
        now - 30_000,
    );
    assert_eq!(
        switch
            .qr_purchase(&request(old, 6_600))
            .await
            .unwrap()
            .response_code,
        codes::EXPIRED
    );
    let long = token(
        &mut partner,
        "1F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F",
        6_600,
        now,
        now + 600_000,
    );
    assert_eq!(
        switch
            .qr_purchase(&request(long, 6_600))
            .await
            .unwrap()
            .response_code,
        codes::EXPIRED
    );
    // Nothing reached the issuer so far.
    assert!(sim_a.events().is_empty());
    // The good token: approved once, then replayed.
    let out = switch
        .qr_purchase(&request(good.clone(), 6_600))
        .await
        .unwrap();
    assert_eq!(
        (out.response_code.as_str(), out.approved_fen),
        ("00", 6_600)
    );
    let out = switch.qr_purchase(&request(good, 6_600)).await.unwrap();
    assert_eq!(out.response_code, codes::DUPLICATE);
    let auths: Vec<_> = sim_a
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "auth")
        .collect();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0]["amount"], 6_600);
    let day = Moment::now().business_date();
    assert_eq!(switch.cut_off(&day).await.unwrap()[0].net_fen, 6_600);
}
