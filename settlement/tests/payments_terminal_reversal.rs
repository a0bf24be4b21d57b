//! A terminal's reversal of a purchase it got no answer for (issue 7), against the Python issuer
//! simulator (tests/bank-sim/bank_sim.py: a 0400 is applied once per field 90 and logged as a
//! `reversal` event). Cases: reversal of an approved purchase (ledger back to zero, one 0400 at
//! the issuer through the existing outbox), a repeated reversal (00, nothing more), a reversal
//! before its purchase (id void, the late purchase refused 94, nothing sent), a declined
//! purchase, malformed and foreign requests, and the JSON route. Expected amounts are the
//! amounts the test sends; codes are the ones the switch documents (payments::codes, ISO 8583
//! Annex A) — never values printed by the code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, TestCard, purchase};
use settlement::payments::terminal::TerminalReversal;
use settlement::payments::{Switch, codes};
use settlement::{AccountCode, AccountKind, AccountSpec, Admdvs};

struct Rig {
    _dir: tempfile::TempDir,
    _hsm_dir: tempfile::TempDir,
    sim_a: BankSim,
    _sim_b: BankSim,
    switch: Switch,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let (hsm_dir, hsm) = payments_support::hsm();
    let hsm = Arc::new(Mutex::new(hsm));
    let sim_a = BankSim::start(dir.path().join("bank-a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("bank-b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch =
        payments_support::switch(dir.path(), hsm, sim_a.port, sim_b.port, "bank-a-zak").await;
    Rig {
        _dir: dir,
        _hsm_dir: hsm_dir,
        sim_a,
        _sim_b: sim_b,
        switch,
    }
}

/// Debits minus credits posted on bank B0001's clearing account, fen.
async fn clearing_net(switch: &Switch) -> i64 {
    let spec = AccountSpec::new(
        Admdvs::parse("110000").unwrap(),
        AccountKind::Clearing,
        AccountCode::parse("B0001").unwrap(),
        Default::default(),
    )
    .unwrap();
    let b = switch.ledger().create_account(&spec).await.unwrap().balance;
    b.debits_posted.fen() - b.credits_posted.fen()
}

fn today() -> String {
    settlement::payments::Moment::now().business_date()
}

fn reversal(id: &str) -> TerminalReversal {
    TerminalReversal {
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        terminal_txn_id: id.into(),
    }
}

fn events_of(sim: &BankSim, kind: &str) -> Vec<serde_json::Value> {
    sim.events()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_purchase_is_reversed_once() {
    approved_reversed_once().await;
}

/// The same on PostgreSQL (fresh schema; current-thread runtime for the per-thread schema).
#[tokio::test(flavor = "current_thread")]
async fn approved_purchase_is_reversed_once_on_postgres() {
    let schema = payments_support::use_postgres().await;
    approved_reversed_once().await;
    payments_support::drop_postgres(&schema).await;
}

async fn approved_reversed_once() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    let out = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                12_300,
                card.icc_data(12_300, card.atc, false),
            ),
            Some("T-0001"),
        )
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::APPROVED);
    assert_eq!(clearing_net(&r.switch).await, 12_300);
    // The terminal never saw that answer: it reverses.
    let code = r
        .switch
        .terminal_reversal(&reversal("T-0001"))
        .await
        .unwrap();
    assert_eq!(code, codes::APPROVED);
    assert_eq!(
        clearing_net(&r.switch).await,
        0,
        "the approval's posting is reversed"
    );
    let txns = r.switch.transactions(&today()).await.unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].status, "timed_out");
    let txn_id = txns[0].txn_id.clone();
    assert_eq!(
        r.switch.reversal_state(&txn_id).await.unwrap().unwrap().0,
        "pending"
    );
    // The existing outbox sends the 0400 once.
    assert_eq!(r.switch.forward_reversals().await.unwrap(), 1);
    assert_eq!(
        r.switch.reversal_state(&txn_id).await.unwrap().unwrap().0,
        "acknowledged"
    );
    // A repeat (the terminal's ack was lost) changes nothing.
    let code = r
        .switch
        .terminal_reversal(&reversal("T-0001"))
        .await
        .unwrap();
    assert_eq!(code, codes::APPROVED);
    assert_eq!(r.switch.forward_reversals().await.unwrap(), 0);
    assert_eq!(clearing_net(&r.switch).await, 0);
    let reversals = events_of(&r.sim_a, "reversal");
    assert_eq!(reversals.len(), 1, "{reversals:?}");
    assert_eq!(reversals[0]["applied"], true);
    assert_eq!(reversals[0]["amount"], 12_300);
    // Field 90 (original data elements): the 0200's MTI, STAN and transmission date-time; the
    // 0400 carries no PAN by design (migrations/*/0100_payments.sql).
    let original = format!("0200{}{}", out.stan, txns[0].transmission);
    assert!(
        reversals[0]["original"]
            .as_str()
            .unwrap()
            .starts_with(&original),
        "{reversals:?}"
    );
    // The purchase id cannot be used again.
    let again = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                100,
                card.icc_data(100, card.atc + 1, false),
            ),
            Some("T-0001"),
        )
        .await
        .unwrap();
    assert_eq!(again.response_code, codes::DUPLICATE);
    assert_eq!(events_of(&r.sim_a, "auth").len(), 1, "nothing sent");
    assert!(
        r.switch
            .ledger()
            .verify()
            .await
            .unwrap()
            .problems
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_before_the_purchase_voids_the_id() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    let code = r
        .switch
        .terminal_reversal(&reversal("T-0002"))
        .await
        .unwrap();
    assert_eq!(code, codes::APPROVED);
    // Repeated: still 00.
    let code = r
        .switch
        .terminal_reversal(&reversal("T-0002"))
        .await
        .unwrap();
    assert_eq!(code, codes::APPROVED);
    // The late purchase is refused before it leaves: no authorisation, no posting, no row.
    let out = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                4_200,
                card.icc_data(4_200, card.atc, false),
            ),
            Some("T-0002"),
        )
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::DUPLICATE);
    assert_eq!(out.approved_fen, 0);
    assert!(events_of(&r.sim_a, "auth").is_empty());
    assert!(r.switch.transactions(&today()).await.unwrap().is_empty());
    assert_eq!(clearing_net(&r.switch).await, 0);
    assert!(events_of(&r.sim_a, "reversal").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_malformed_and_foreign() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    // 10 051 fen: the simulator declines with 51 (tests/bank-sim rules).
    let out = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                10_051,
                card.icc_data(10_051, card.atc, false),
            ),
            Some("T-0003"),
        )
        .await
        .unwrap();
    assert_eq!(out.response_code, "51");
    let code = r
        .switch
        .terminal_reversal(&reversal("T-0003"))
        .await
        .unwrap();
    assert_eq!(code, codes::APPROVED, "nothing to undo");
    assert_eq!(r.switch.forward_reversals().await.unwrap(), 0);
    assert!(events_of(&r.sim_a, "reversal").is_empty());
    // Another merchant cannot reverse it.
    let mut foreign = reversal("T-0003");
    foreign.merchant_id = "M11000000000002".into();
    assert_eq!(
        r.switch.terminal_reversal(&foreign).await.unwrap(),
        codes::INVALID_TRANSACTION
    );
    for bad in ["", "has space", &"9".repeat(33)] {
        assert_eq!(
            r.switch.terminal_reversal(&reversal(bad)).await.unwrap(),
            codes::FORMAT_ERROR
        );
    }
    let out = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                300,
                card.icc_data(300, card.atc + 1, false),
            ),
            Some("bad id"),
        )
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::FORMAT_ERROR);
    assert_eq!(events_of(&r.sim_a, "auth").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_route_reverses() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = settlement::payments::api::router(r.switch.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let key: serde_json::Value = http
        .get(format!("{url}/payments/v1/pan-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let public = hex::decode(key["public_key_hex"].as_str().unwrap()).unwrap();
    let body = serde_json::json!({
        "terminal_id": "BJ000001",
        "merchant_id": MERCHANT,
        "pan_sealed_hex": payments_support::seal_pan(&public, &card.pan),
        "psn": card.psn,
        "amount_fen": 5_600,
        "currency": "156",
        "icc_data_hex": hex::encode_upper(card.icc_data(5_600, card.atc, false)),
        "terminal_txn_id": "T-0004",
    });
    let out: serde_json::Value = http
        .post(format!("{url}/payments/v1/purchase"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["response_code"], "00");
    assert_eq!(clearing_net(&r.switch).await, 5_600);
    let reply = http
        .post(format!("{url}/payments/v1/reversal"))
        .json(&serde_json::json!({
            "terminal_id": "BJ000001",
            "merchant_id": MERCHANT,
            "terminal_txn_id": "T-0004",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let reply: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(reply, serde_json::json!({"response_code": "00"}));
    assert_eq!(clearing_net(&r.switch).await, 0);
    assert_eq!(r.switch.forward_reversals().await.unwrap(), 1);
    assert_eq!(events_of(&r.sim_a, "reversal").len(), 1);
    server.abort();
}

fn void_of(rrn: &str, amount_fen: i64) -> settlement::payments::adjust::AdjustRequest {
    settlement::payments::adjust::AdjustRequest {
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        original_rrn: rrn.into(),
        amount_fen,
    }
}

/// A partial approval (the simulator approves half of an amount ending in 10, its documented
/// rule) is undone for the amount the issuer approved, not the one asked: by a terminal's
/// reversal (the 0400's field 4) and by a void (the void's field 4; a void of the requested
/// amount is refused 13). Expected amounts: the request halved, and the issuer's own record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_approval_is_undone_for_the_approved_amount() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    // 1. Reversal.
    let out = r
        .switch
        .purchase_with_terminal_txn(
            &purchase(
                &card,
                "BJ000001",
                2_010,
                card.icc_data(2_010, card.atc, false),
            ),
            Some("T-0101"),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.response_code.as_str(), out.approved_fen),
        (codes::PARTIAL, 2_010 / 2)
    );
    assert_eq!(clearing_net(&r.switch).await, 1_005);
    let txns = r.switch.transactions(&today()).await.unwrap();
    assert_eq!(
        txns[0].approved_fen, 1_005,
        "the ledger row records what was approved"
    );
    assert_eq!(
        r.switch
            .terminal_reversal(&reversal("T-0101"))
            .await
            .unwrap(),
        codes::APPROVED
    );
    assert_eq!(clearing_net(&r.switch).await, 0);
    assert_eq!(r.switch.forward_reversals().await.unwrap(), 1);
    let auths = events_of(&r.sim_a, "auth");
    let reversals = events_of(&r.sim_a, "reversal");
    assert_eq!(reversals.len(), 1, "{reversals:?}");
    assert_eq!(reversals[0]["applied"], true);
    assert_eq!(
        reversals[0]["amount"], auths[0]["amount"],
        "the 0400 reverses what the issuer approved"
    );
    assert_eq!(reversals[0]["amount"], 1_005);
    // The day's clearing file lists the reversed purchase with the amount the issuer approved and
    // the 0400 reversed (the simulator's own record), not the amount the terminal asked for.
    let day = r.switch.cut_off(&today()).await.unwrap();
    let bank = day.iter().find(|b| b.bank_code == "B0001").unwrap();
    let records = settlement::payments::clearing::parse(&bank.file).unwrap();
    let line = records.iter().find(|rec| rec.rrn == out.rrn).unwrap();
    assert_eq!(
        (line.status.as_str(), serde_json::json!(line.amount_fen)),
        ("timed_out", reversals[0]["amount"].clone()),
        "{}",
        bank.file
    );

    // 2. Void.
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            4_010,
            card.icc_data(4_010, card.atc + 1, false),
        ))
        .await
        .unwrap();
    assert_eq!(
        (out.response_code.as_str(), out.approved_fen),
        (codes::PARTIAL, 2_005)
    );
    let refused = r.switch.void(&void_of(&out.rrn, 4_010)).await.unwrap();
    assert_eq!(refused.response_code, codes::INVALID_AMOUNT);
    let voided = r.switch.void(&void_of(&out.rrn, 2_005)).await.unwrap();
    assert_eq!(voided.response_code, codes::APPROVED);
    assert_eq!(clearing_net(&r.switch).await, 0);
    let voids: Vec<_> = events_of(&r.sim_a, "auth")
        .into_iter()
        .filter(|e| e["processing"] == "020000")
        .collect();
    assert_eq!(voids.len(), 1, "{voids:?}");
    assert_eq!(voids[0]["amount"], 2_005);
    assert!(
        r.switch
            .ledger()
            .verify()
            .await
            .unwrap()
            .problems
            .is_empty()
    );
}

/// A void and a terminal's reversal of the same approved purchase, started together, several
/// times: exactly one wins each time. The void either is approved (and the reversal then finds
/// nothing to undo, 00) or is refused 25 without sending anything (and the purchase's 0400
/// reaches the issuer once). Checked at the issuer (its own event log) and in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn void_and_reversal_of_one_purchase_are_exclusive() {
    let r = rig().await;
    let card = TestCard::fixture("beijing-2g.toml");
    let rounds = 8u16;
    let mut void_wins = 0usize;
    let mut approved_total = 0i64;
    for round in 0..rounds {
        let amount = 3_001 + i64::from(round) * 100;
        let id = format!("T-02{round:02}");
        let out = r
            .switch
            .purchase_with_terminal_txn(
                &purchase(
                    &card,
                    "BJ000001",
                    amount,
                    card.icc_data(amount, card.atc + round, false),
                ),
                Some(&id),
            )
            .await
            .unwrap();
        assert_eq!(out.response_code, codes::APPROVED);
        approved_total += amount;
        let (s1, s2) = (r.switch.clone(), r.switch.clone());
        let void = tokio::spawn({
            let rrn = out.rrn.clone();
            async move { s1.void(&void_of(&rrn, amount)).await.unwrap() }
        });
        let rev = tokio::spawn({
            let id = id.clone();
            async move {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                loop {
                    let code = s2.terminal_reversal(&reversal(&id)).await.unwrap();
                    if code != codes::ISSUER_INOPERATIVE || std::time::Instant::now() > deadline {
                        return code;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        });
        let (void, rev) = (void.await.unwrap(), rev.await.unwrap());
        assert_eq!(rev, codes::APPROVED, "the terminal's reversal ends done");
        match void.response_code.as_str() {
            c if c == codes::APPROVED => void_wins += 1,
            c if c == codes::NO_ORIGINAL => {}
            other => panic!("round {round}: the void got {other}, not 00 or a clear 25"),
        }
    }
    r.switch.forward_reversals().await.unwrap();
    let voids_sent = events_of(&r.sim_a, "auth")
        .into_iter()
        .filter(|e| e["processing"] == "020000")
        .count();
    let applied: Vec<_> = events_of(&r.sim_a, "reversal")
        .into_iter()
        .filter(|e| e["applied"] == true)
        .collect();
    assert_eq!(voids_sent, void_wins, "a refused void sends nothing");
    assert_eq!(
        applied.len(),
        usize::from(rounds) - void_wins,
        "each purchase not voided is reversed once at the issuer, and no void needed undoing: \
         {applied:?}"
    );
    assert!(approved_total > 0);
    assert_eq!(
        clearing_net(&r.switch).await,
        0,
        "the money is reversed once"
    );
    for t in r.switch.transactions(&today()).await.unwrap() {
        if t.kind == "purchase" {
            assert!(t.status == "voided" || t.status == "timed_out", "{t:?}");
        }
    }
    assert!(
        r.switch
            .ledger()
            .verify()
            .await
            .unwrap()
            .problems
            .is_empty()
    );
}
