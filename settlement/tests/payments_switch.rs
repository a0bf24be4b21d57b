//! The switch's authorisation path against the Python issuer simulator (tests/bank-sim, written
//! with pyiso8583 + pycryptodome): approvals with the ARPC the card expects, declines 51/55/05,
//! partial approval, timeout → reversal stored and forwarded across a restart exactly once,
//! garbage, a late (unmatched) answer, sign-on/echo, and bad input refused with the right code,
//! nothing sent or posted, no PAN in the logs. Expected values come from the simulator's
//! documented rules and from hsm::emv primitives called directly (the card's side), never from
//! the switch's output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, TestCard, purchase};
use settlement::payments::{Switch, codes};
use settlement::{AccountCode, AccountKind, AccountSpec, Admdvs};

/// Everything the switch logs in this test binary.
fn logs() -> String {
    payments_support::captured_logs(tracing::Level::INFO)
}

struct Rig {
    dir: tempfile::TempDir,
    _hsm_dir: tempfile::TempDir,
    hsm: Arc<Mutex<hsm::ops::Hsm>>,
    sim_a: BankSim,
    sim_b: BankSim,
    switch: Switch,
}

async fn rig(mac_a: &str) -> Rig {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let (hsm_dir, hsm) = payments_support::hsm();
    let hsm = Arc::new(Mutex::new(hsm));
    let sim_a = BankSim::start(dir.path().join("bank-a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("bank-b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch =
        payments_support::switch(dir.path(), hsm.clone(), sim_a.port, sim_b.port, mac_a).await;
    Rig {
        dir,
        _hsm_dir: hsm_dir,
        hsm,
        sim_a,
        sim_b,
        switch,
    }
}

async fn clearing_net(switch: &Switch, bank: &str) -> i64 {
    let spec = AccountSpec::new(
        Admdvs::parse("110000").unwrap(),
        AccountKind::Clearing,
        AccountCode::parse(bank).unwrap(),
        Default::default(),
    )
    .unwrap();
    let account = switch.ledger().create_account(&spec).await.unwrap();
    let b = account.balance;
    b.debits_posted.fen() - b.credits_posted.fen()
}

fn today() -> String {
    settlement::payments::Moment::now().business_date()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_carries_the_arpc_the_card_expects() {
    let r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let icc = card.icc_data(12_300, card.atc, false);
    let arqc = TestCard::arqc_of(&icc);
    let out = r
        .switch
        .purchase(&purchase(&card, "BJ000001", 12_300, icc))
        .await
        .unwrap();
    assert_eq!(out.response_code, "00");
    assert_eq!(out.approved_fen, 12_300);
    assert_eq!(out.auth_code.as_deref().map(str::len), Some(6));
    // ARPC method 1 with ARC "00" under the session key (EMV Book 2 §8.2.1), card side.
    let sk = card.session_key(card.atc);
    let expected =
        hsm::emv::generate_arpc_method1(&sk, hsm::emv::CardAlgorithm::Tdes, &arqc, *b"00").unwrap();
    assert_eq!(out.arpc, Some(expected));
    // The issuer saw one authorisation of 12 300 fen for the card ending 7653.
    let events = r.sim_a.events();
    let auths: Vec<_> = events.iter().filter(|e| e["kind"] == "auth").collect();
    assert_eq!(auths.len(), 1);
    assert_eq!(auths[0]["amount"], 12_300);
    assert_eq!(auths[0]["pan4"], "7653");
    assert_eq!(auths[0]["rrn"], out.rrn.as_str());
    assert_eq!(clearing_net(&r.switch, "B0001").await, 12_300);
    // The hebei card routes to bank B.
    let hebei = TestCard::fixture("hebei-3g.toml");
    let icc = hebei.icc_data(4_500, hebei.atc, false);
    let out = r
        .switch
        .purchase(&purchase(&hebei, "BJ000001", 4_500, icc))
        .await
        .unwrap();
    assert_eq!(out.response_code, "00");
    assert_eq!(
        r.sim_b
            .events()
            .iter()
            .filter(|e| e["kind"] == "auth")
            .count(),
        1
    );
    assert_eq!(clearing_net(&r.switch, "B0002").await, 4_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declines_and_partial_approval() {
    let r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let mut atc = card.atc;
    for (amount, code) in [(10_051, "51"), (10_055, "55"), (10_005, "05")] {
        atc += 1;
        let out = r
            .switch
            .purchase(&purchase(
                &card,
                "BJ000001",
                amount,
                card.icc_data(amount, atc, false),
            ))
            .await
            .unwrap();
        assert_eq!(out.response_code, code);
        assert_eq!(out.approved_fen, 0);
        // A decline still carries an ARPC (ARC = the decline code) so the card ends with AAC.
        let icc = card.icc_data(amount, atc, false);
        let expected = hsm::emv::generate_arpc_method1(
            &card.session_key(atc),
            hsm::emv::CardAlgorithm::Tdes,
            &TestCard::arqc_of(&icc),
            code.as_bytes().try_into().unwrap(),
        )
        .unwrap();
        assert_eq!(out.arpc, Some(expected));
    }
    assert_eq!(
        clearing_net(&r.switch, "B0001").await,
        0,
        "declines post nothing"
    );
    // 2 010 fen ends in 10: the simulator approves half (1 005 fen).
    atc += 1;
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            2_010,
            card.icc_data(2_010, atc, false),
        ))
        .await
        .unwrap();
    assert_eq!(
        (out.response_code.as_str(), out.approved_fen),
        ("10", 1_005)
    );
    assert_eq!(clearing_net(&r.switch, "B0001").await, 1_005);
    for t in r.switch.transactions(&today()).await.unwrap() {
        let state = r.switch.reversal_state(&t.txn_id).await.unwrap().unwrap();
        assert_eq!(state.0, "cancelled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_reversal_survives_a_restart_and_lands_once() {
    timeout_reversal().await;
}

/// The same on PostgreSQL (fresh schema; current-thread runtime for the per-thread schema).
#[tokio::test(flavor = "current_thread")]
async fn timeout_reversal_on_postgres() {
    let schema = payments_support::use_postgres().await;
    timeout_reversal().await;
    payments_support::drop_postgres(&schema).await;
}

async fn timeout_reversal() {
    let mut r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let started = std::time::Instant::now();
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            7_798,
            card.icc_data(7_798, card.atc, false),
        ))
        .await
        .unwrap();
    // Per-hop timeout 1 500 ms (fixtures/banks/routing.toml), well below the terminal's 15 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(out.response_code, codes::ISSUER_INOPERATIVE);
    assert_eq!(out.arpc, None);
    let txns = r.switch.transactions(&today()).await.unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].status, "timed_out");
    let txn_id = txns[0].txn_id.clone();
    assert_eq!(
        r.switch.reversal_state(&txn_id).await.unwrap().unwrap().0,
        "pending"
    );
    // The bank goes down: the first forwarding attempt fails and the reversal stays pending.
    let events = r.sim_a.events.clone();
    let port = r.sim_a.port;
    drop(std::mem::replace(
        &mut r.sim_a,
        BankSim::start(r.dir.path().join("other.jsonl"), 0, BANK_A_MAC_KEY),
    ));
    let dead = payments_support::switch(
        r.dir.path(),
        r.hsm.clone(),
        free_port(),
        r.sim_b.port,
        "bank-a-zak",
    )
    .await;
    assert_eq!(dead.forward_reversals().await.unwrap(), 0);
    assert_eq!(
        dead.reversal_state(&txn_id).await.unwrap().unwrap(),
        ("pending".into(), 1)
    );
    drop(dead);
    drop(r.switch);
    // Restart: bank back on its port with its event log; a new switch over the same database.
    r.sim_a = BankSim::start(events, port, BANK_A_MAC_KEY);
    let switch = payments_support::switch(
        r.dir.path(),
        r.hsm.clone(),
        port,
        r.sim_b.port,
        "bank-a-zak",
    )
    .await;
    assert_eq!(switch.forward_reversals().await.unwrap(), 1);
    assert_eq!(
        switch.reversal_state(&txn_id).await.unwrap().unwrap().0,
        "acknowledged"
    );
    assert_eq!(
        switch.forward_reversals().await.unwrap(),
        0,
        "nothing left to send"
    );
    drop(switch);
    let again = payments_support::switch(
        r.dir.path(),
        r.hsm.clone(),
        port,
        r.sim_b.port,
        "bank-a-zak",
    )
    .await;
    assert_eq!(
        again.forward_reversals().await.unwrap(),
        0,
        "a restart does not resend"
    );
    let reversals: Vec<_> = r
        .sim_a
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "reversal")
        .collect();
    assert_eq!(reversals.len(), 1, "{reversals:?}");
    assert_eq!(reversals[0]["applied"], true);
    assert_eq!(reversals[0]["amount"], 7_798);
    // Field 90: original MTI 0200 + STAN + transmission + acquirer id (11) + forwarding (11).
    let t = &txns[0];
    assert_eq!(
        reversals[0]["original"],
        format!(
            "0200{}{}{}{}",
            t.stan, t.transmission, "00000010000", "00000000000"
        )
    );
    assert_eq!(
        clearing_net(&again, "B0001").await,
        0,
        "nothing posted for a timed-out purchase"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_late_answers_are_logged_and_reversed() {
    let r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            3_399,
            card.icc_data(3_399, card.atc, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::ISSUER_INOPERATIVE);
    assert_eq!(r.switch.link("B0001").unwrap().garbage(), 1);
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            3_397,
            card.icc_data(3_397, card.atc + 1, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::ISSUER_INOPERATIVE);
    // The simulator answers 2.5 s after the request, 1 s after our timeout.
    tokio::time::sleep(std::time::Duration::from_millis(1_800)).await;
    assert_eq!(r.switch.link("B0001").unwrap().unmatched(), 1);
    assert!(logs().contains("UNMATCHED RESPONSE"));
    assert_eq!(clearing_net(&r.switch, "B0001").await, 0);
    for t in r.switch.transactions(&today()).await.unwrap() {
        assert_eq!(
            r.switch.reversal_state(&t.txn_id).await.unwrap().unwrap().0,
            "pending"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_on_and_echo() {
    let r = rig("bank-a-zak").await;
    assert!(r.switch.network("B0001", "001").await.unwrap());
    assert!(r.switch.network("B0002", "301").await.unwrap());
    let codes: Vec<_> = r.sim_a.events().iter().map(|e| e["code"].clone()).collect();
    assert_eq!(codes, vec![serde_json::json!("001")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_the_right_code_and_nothing_posted() {
    let r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let good = card.icc_data(1_000, card.atc, false);
    // Malformed field 55 (cut inside a TLV).
    let cut = good[..good.len() - 3].to_vec();
    let out = r
        .switch
        .purchase(&purchase(&card, "BJ000001", 1_000, cut))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::FORMAT_ERROR);
    // The card signed 1 000 fen, the terminal asks for 2 000.
    let out = r
        .switch
        .purchase(&purchase(&card, "BJ000001", 2_000, good.clone()))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::FORMAT_ERROR);
    // An ARQC that fails.
    let bad = card.icc_data(1_000, card.atc, true);
    let out = r
        .switch
        .purchase(&purchase(&card, "BJ000001", 1_000, bad))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::SECURITY_VIOLATION);
    assert_eq!(out.arpc, None);
    // A BIN no bank serves (Luhn-valid 19 digits: 6200000000000000000, checked with Python).
    let mut stranger = TestCard::fixture("beijing-2g.toml");
    stranger.pan = "6200000000000000000".into();
    let icc = stranger.icc_data(1_000, 1, false);
    let out = r
        .switch
        .purchase(&purchase(&stranger, "BJ000001", 1_000, icc))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::NO_SUCH_ISSUER);
    // A blocked card (reported lost).
    r.switch
        .block_card(&card_core::pboc::Pan::new(&card.pan).unwrap(), "41")
        .await
        .unwrap();
    let out = r
        .switch
        .purchase(&purchase(&card, "BJ000001", 1_000, good))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::LOST_CARD);
    // Nothing reached the issuer, nothing was recorded or posted.
    assert!(r.sim_a.events().is_empty(), "{:?}", r.sim_a.events());
    assert!(r.switch.transactions(&today()).await.unwrap().is_empty());
    assert_eq!(clearing_net(&r.switch, "B0001").await, 0);
    let logs = logs();
    assert!(
        logs.contains("621483*********7653"),
        "refusals are logged with the masked PAN"
    );
    assert!(!logs.contains(&card.pan), "a PAN in clear reached the log");
    assert!(!logs.contains(&stranger.pan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_mac_is_refused_by_the_issuer_and_nothing_posted() {
    // The switch MACs bank A's messages with bank B's key: the simulator answers A0, and its
    // answer (MACed with the right key) fails our own check too.
    let r = rig("bank-a-zak-wrong").await;
    let card = TestCard::fixture("beijing-2g.toml");
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            1_000,
            card.icc_data(1_000, card.atc, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::MAC_FAILED);
    let events = r.sim_a.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "bad_mac");
    assert_eq!(clearing_net(&r.switch, "B0001").await, 0);
    // Recorded as not approved (its reversal pending: the issuer's state is unknown to us), and
    // logged without the PAN in clear.
    let txns = r.switch.transactions(&today()).await.unwrap();
    assert_eq!(txns.len(), 1);
    assert_eq!(
        (txns[0].status.as_str(), txns[0].approved_fen),
        ("timed_out", 0)
    );
    let logs = logs();
    assert!(logs.contains("bad MAC"), "the bad MAC is logged");
    assert!(!logs.contains(&card.pan), "a PAN in clear reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn risk_daily_limit_and_impossible_travel() {
    let r = rig("bank-a-zak").await;
    let card = TestCard::fixture("beijing-2g.toml");
    // Daily limit 5 000 000 fen (payments_support::switch): 4 900 000 passes, 200 000 more not.
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            4_900_000,
            card.icc_data(4_900_000, card.atc, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, "00");
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "BJ000001",
            200_000,
            card.icc_data(200_000, card.atc + 1, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::EXCEEDS_LIMIT);
    // Minutes later in Shanghai, ~1 067 km away: faster than 900 km/h.
    let out = r
        .switch
        .purchase(&purchase(
            &card,
            "SH000001",
            1_000,
            card.icc_data(1_000, card.atc + 2, false),
        ))
        .await
        .unwrap();
    assert_eq!(out.response_code, codes::SUSPECTED_FRAUD);
    assert_eq!(clearing_net(&r.switch, "B0001").await, 4_900_000);
    let _ = MERCHANT;
}
