//! A business day through the switch against the Python issuer simulator: purchases (approved,
//! declined, timed out), a same-day void, partial refunds, then the cut-off. The day's net per
//! bank must equal approved minus voided/reversed and refunded, computed here from the amounts
//! the test chose and the simulator's documented rules (tests/bank-sim/bank_sim.py), and the
//! ledger's clearing accounts must agree; a bank's altered file reconciles to exactly the
//! mismatches introduced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, TestCard, purchase};
use settlement::payments::adjust::AdjustRequest;
use settlement::payments::clearing::{self, Mismatch};
use settlement::payments::{Moment, codes};
use settlement::{AccountCode, AccountKind, AccountSpec, Admdvs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_net_equals_approved_minus_voided_reversed_and_refunded() {
    business_day().await;
}

/// The same day on PostgreSQL (a fresh schema; current-thread runtime so the schema choice,
/// kept per thread by the support module, applies).
#[tokio::test(flavor = "current_thread")]
async fn day_net_on_postgres() {
    let schema = payments_support::use_postgres().await;
    business_day().await;
    payments_support::drop_postgres(&schema).await;
}

async fn business_day() {
    let dir = tempfile::tempdir().unwrap();
    let (_hsm_dir, hsm) = payments_support::hsm();
    let hsm = Arc::new(Mutex::new(hsm));
    let sim_a = BankSim::start(dir.path().join("a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch =
        payments_support::switch(dir.path(), hsm, sim_a.port, sim_b.port, "bank-a-zak").await;
    let bj = TestCard::fixture("beijing-2g.toml");
    let hb = TestCard::fixture("hebei-3g.toml");
    let mut atc = bj.atc;
    let mut buy = |card: &TestCard, amount: i64| {
        atc += 1;
        purchase(card, "BJ000001", amount, card.icc_data(amount, atc, false))
    };
    // Bank A (beijing card): 10 000 and 20 000 approved, 3 051 declined (51), 5 098 timed out.
    let p1 = switch.purchase(&buy(&bj, 10_000)).await.unwrap();
    let p2 = switch.purchase(&buy(&bj, 20_000)).await.unwrap();
    let p3 = switch.purchase(&buy(&bj, 3_051)).await.unwrap();
    let p4 = switch.purchase(&buy(&bj, 5_098)).await.unwrap();
    assert_eq!(
        [
            p1.response_code.as_str(),
            &p2.response_code,
            &p3.response_code,
            &p4.response_code
        ],
        ["00", "00", "51", codes::ISSUER_INOPERATIVE]
    );
    // Bank B (hebei card, ATC from its own counter): 5 000 approved.
    let p5 = switch
        .purchase(&purchase(
            &hb,
            "BJ000001",
            5_000,
            hb.icc_data(5_000, hb.atc + 1, false),
        ))
        .await
        .unwrap();
    assert_eq!(p5.response_code, "00");
    let adjust = |rrn: &str, amount_fen: i64| AdjustRequest {
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        original_rrn: rrn.into(),
        amount_fen,
    };
    // Void of p2 must carry its full amount.
    assert_eq!(
        switch
            .void(&adjust(&p2.rrn, 19_000))
            .await
            .unwrap()
            .response_code,
        codes::INVALID_AMOUNT
    );
    assert_eq!(
        switch
            .void(&adjust(&p2.rrn, 20_000))
            .await
            .unwrap()
            .response_code,
        "00"
    );
    // A voided purchase cannot be voided or refunded again.
    assert_eq!(
        switch
            .void(&adjust(&p2.rrn, 20_000))
            .await
            .unwrap()
            .response_code,
        codes::NO_ORIGINAL
    );
    // Partial refunds of p1: 3 000 then 2 000; 5 100 more would pass the 10 000 approved.
    assert_eq!(
        switch
            .refund(&adjust(&p1.rrn, 3_000))
            .await
            .unwrap()
            .response_code,
        "00"
    );
    assert_eq!(
        switch
            .refund(&adjust(&p1.rrn, 2_000))
            .await
            .unwrap()
            .response_code,
        "00"
    );
    assert_eq!(
        switch
            .refund(&adjust(&p1.rrn, 5_100))
            .await
            .unwrap()
            .response_code,
        codes::INVALID_AMOUNT
    );
    // No refund of a declined purchase.
    assert_eq!(
        switch
            .refund(&adjust(&p3.rrn, 100))
            .await
            .unwrap()
            .response_code,
        codes::NO_ORIGINAL
    );

    // Independent expectation: approved purchases not voided (10 000) minus refunds (5 000).
    let expected_a = 10_000 - 3_000 - 2_000;
    let expected_b = 5_000;
    let day = Moment::now().business_date();
    let cut = switch.cut_off(&day).await.unwrap();
    let net: Vec<(&str, i64)> = cut
        .iter()
        .map(|s| (s.bank_code.as_str(), s.net_fen))
        .collect();
    assert_eq!(net, vec![("B0001", expected_a), ("B0002", expected_b)]);
    // The ledger's clearing accounts agree (purchases debit, refunds and the void credit).
    for (bank, expected) in [("B0001", expected_a), ("B0002", expected_b)] {
        let spec = AccountSpec::new(
            Admdvs::parse("110000").unwrap(),
            AccountKind::Clearing,
            AccountCode::parse(bank).unwrap(),
            Default::default(),
        )
        .unwrap();
        let b = switch.ledger().create_account(&spec).await.unwrap().balance;
        assert_eq!(
            b.debits_posted.fen() - b.credits_posted.fen(),
            expected,
            "{bank}"
        );
    }
    assert!(switch.ledger().verify().await.unwrap().problems.is_empty());

    // The clearing file: header totals, every transaction once, no PAN in clear.
    let file_a = &cut[0].file;
    assert!(!file_a.contains(&bj.pan));
    let ours = clearing::parse(file_a).unwrap();
    // 4 purchases + 1 void + 2 refunds that went to the issuer (refusals by the switch are
    // not sent and not listed).
    assert_eq!(ours.len(), 7);
    let statuses: Vec<(&str, &str)> = ours
        .iter()
        .map(|r| (r.kind.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("purchase", "approved"),
            ("purchase", "voided"),
            ("purchase", "declined"),
            ("purchase", "timed_out"),
            ("void", "approved"),
            ("refund", "approved"),
            ("refund", "approved"),
        ]
    );

    // The bank's file: one record missing, one amount and one status different, one extra.
    let mut theirs = ours.clone();
    let missing = theirs.remove(2);
    theirs[0].amount_fen = 9_999;
    theirs[1].status = "approved".into();
    let mut extra = theirs[0].clone();
    extra.rrn = "999999999999".into();
    theirs.push(extra);
    let text = clearing::render("B0001", &day, &theirs);
    let theirs = clearing::parse(&text).unwrap();
    let mut found = clearing::reconcile(&ours, &theirs);
    found.sort_by_key(|m| format!("{m:?}"));
    let mut expected = vec![
        Mismatch::MissingAtBank {
            rrn: missing.rrn.clone(),
        },
        Mismatch::AmountDiffers {
            rrn: ours[0].rrn.clone(),
            ours_fen: 10_000,
            theirs_fen: 9_999,
        },
        Mismatch::StatusDiffers {
            rrn: ours[1].rrn.clone(),
            ours: "voided".into(),
            theirs: "approved".into(),
        },
        Mismatch::MissingAtSwitch {
            rrn: "999999999999".into(),
        },
    ];
    expected.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(found, expected);
    // A file whose header does not add up is refused.
    let header = text.lines().next().unwrap();
    let count = format!("|{}|", theirs.len());
    let forged = text.replacen(
        header,
        &header.replacen(&count, &format!("|{}|", theirs.len() + 1), 1),
        1,
    );
    assert_ne!(forged, text);
    assert_eq!(
        clearing::parse(&forged),
        Err(clearing::ClearingFileError::Totals)
    );
}
