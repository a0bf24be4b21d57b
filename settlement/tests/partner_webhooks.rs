//! Webhooks from the outbox (issue 8): `settlement.done` for a real outpatient settlement to an
//! application holding `webhook.settlement`, delivered after two failed attempts (HTTP 500, then
//! a 2xx) with the same event id; `card.lost` only to the application that verified the card
//! with consent and holds `webhook.card`; every delivery's SM2 signature checked by Python
//! `gmssl` against the key of `GET /api/partner/v1/webhook-key`; a receiver that always fails
//! ends `failed` after `attempts_max`. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod partner_support;
mod service_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{BOTH, Db};
use partner_support::{
    CARD_NO, OPERATOR, P256_PRIV, PartnerHarness, SM2_PRIV, Signed, USE_MEDICAL, python,
    settle_outpatient,
};
use serde_json::{Value, json};

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    event_id: String,
    timestamp: String,
    key_id: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Delivery>>>,
    /// Failures to answer first, per path.
    fail_first: Arc<Mutex<std::collections::HashMap<String, usize>>>,
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    let status = {
        let mut fails = receiver.fail_first.lock().unwrap();
        match fails.get_mut(&path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::NO_CONTENT,
        }
    };
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    receiver.seen.lock().unwrap().push(Delivery {
        path,
        event_id: header("x-ssc-event-id"),
        timestamp: header("x-ssc-timestamp"),
        key_id: header("x-ssc-key-id"),
        signature: header("x-ssc-signature"),
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    status
}

async fn start_receiver(receiver: Receiver) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/{hook}", post(receive))
        .with_state(receiver);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

/// Runs the platform's rounds until `done` or 20 s.
async fn pump(h: &PartnerHarness, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "webhooks not delivered in time");
        h.platform.tick().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a delivery's signature with Python gmssl.
async fn signature_valid(public_key: &str, delivery: &Delivery) -> bool {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &delivery.body).unwrap();
    let args = [
        "verify-webhook".to_owned(),
        format!("--public={public_key}"),
        format!("--event-id={}", delivery.event_id),
        format!("--timestamp={}", delivery.timestamp),
        format!("--body-file={}", file.path().display()),
        format!("--signature={}", delivery.signature),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        python(&refs)
    })
    .await
    .unwrap();
    out["valid"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_done_and_card_lost_delivered_signed_with_retries() {
    for db in BOTH {
        webhooks(db).await;
    }
}

async fn webhooks(db: Db) {
    let receiver = Receiver::default();
    receiver
        .fail_first
        .lock()
        .unwrap()
        .insert("/bank".to_owned(), 2);
    let (hooks, server) = start_receiver(receiver.clone()).await;
    let h = PartnerHarness::start(db).await;
    // The bank hears of settlements and of lost cards it verified; the department only of
    // lost cards; neither verified... until the bank does.
    let (bank, bank_key) = h
        .register(
            "BANK-W",
            "sm2",
            SM2_PRIV,
            &[
                (USE_MEDICAL, "webhook.settlement"),
                (USE_MEDICAL, "webhook.card"),
                (USE_MEDICAL, "card.verify"),
            ],
            Some(&format!("{hooks}/bank")),
        )
        .await;
    h.approve(&bank, None, None).await;
    let (dept, _) = h
        .register(
            "DEPT-W",
            "p256",
            P256_PRIV,
            &[(USE_MEDICAL, "webhook.card")],
            Some(&format!("{hooks}/dept")),
        )
        .await;
    h.approve(&dept, None, None).await;
    let key = h.get("/api/partner/v1/webhook-key", &[]).await;
    assert_eq!(key.status, 200);
    let public_key = key.body["public_key"].as_str().unwrap().to_owned();
    assert_eq!(key.body["key_id"], "partner-webhook");

    // settlement.done: the outpatient settlement of service_visits.rs (3150.00 / 915.60 /
    // 12.34 / 2222.06).
    let setlinfo = settle_outpatient(&h.core).await;
    let setl_id = setlinfo["setl_id"].as_str().unwrap().to_owned();
    let seen = receiver.seen.clone();
    pump(&h, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|d| d.path == "/bank" && d.answered == 204)
    })
    .await;
    let bank_deliveries: Vec<Delivery> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.path == "/bank")
        .cloned()
        .collect();
    let answered: Vec<u16> = bank_deliveries.iter().map(|d| d.answered).collect();
    assert_eq!(answered, [500, 500, 204]);
    let event_id = format!("settlement.done-{setl_id}-{bank}");
    for delivery in &bank_deliveries {
        assert_eq!(delivery.event_id, event_id);
        assert_eq!(delivery.key_id, "partner-webhook");
        assert!(signature_valid(&public_key, delivery).await, "{delivery:?}");
    }
    // Backoff: the retries were at least 100 ms and 200 ms apart (backoff_ms_base 100).
    let times: Vec<i64> = bank_deliveries
        .iter()
        .map(|d| d.timestamp.parse().unwrap())
        .collect();
    assert!(times[1] - times[0] >= 100, "{times:?}");
    assert!(times[2] - times[1] >= 200, "{times:?}");
    let body: Value = serde_json::from_slice(&bank_deliveries[2].body).unwrap();
    assert_eq!(body["event_type"], "settlement.done");
    assert_eq!(body["setl_id"], setl_id.as_str());
    assert_eq!(body["fixmedins_code"], "H11010500001");
    assert_eq!(body["insuplc_admdvs"], "110000");
    assert_eq!(
        (
            body["medfee_sumamt"].as_str(),
            body["fund_pay_sumamt"].as_str(),
            body["acct_pay"].as_str(),
            body["psn_cash_pay"].as_str()
        ),
        (
            Some("3150.00"),
            Some("915.60"),
            Some("12.34"),
            Some("2222.06")
        )
    );
    // No person in it.
    let text = String::from_utf8(bank_deliveries[2].body.clone()).unwrap();
    assert!(!text.contains("psn_no") && !text.contains("11000000000000000003"));
    // A tampered body does not verify.
    let mut tampered = bank_deliveries[2].clone();
    tampered.body = text.replace("3150.00", "3150.01").into_bytes();
    assert!(!signature_valid(&public_key, &tampered).await);
    // The department holds no webhook.settlement: nothing for it. Further rounds send nothing
    // again (the feed's cursor moved past the settlement).
    for _ in 0..3 {
        h.platform.tick().await;
    }
    assert_eq!(receiver.seen.lock().unwrap().len(), 3);

    // card.lost: the bank verifies the card with the holder's consent, then it is reported
    // lost. Only the bank is told (the department never verified it).
    let consent = h.consent(CARD_NO, &bank, USE_MEDICAL, json!({})).await;
    let token = consent.body["consent_token"].as_str().unwrap().to_owned();
    let verified = h
        .signed_one(&Signed {
            alg: "sm2",
            private: SM2_PRIV,
            key_id: bank_key.clone(),
            method: "POST",
            path: "/api/partner/v1/cards/verify".to_owned(),
            body: Some(json!({"use": USE_MEDICAL, "consent_token": token}).to_string()),
            ..Signed::default()
        })
        .await;
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    let card_ref = verified.body["card_ref"].as_str().unwrap().to_owned();
    let lost = h
        .post(
            "/api/partner/v1/admin/cards/status",
            &json!({"card_no": CARD_NO, "status": "lost"}),
            &[("authorization", format!("Bearer {}", OPERATOR.1))],
        )
        .await;
    assert_eq!(lost.body, json!({"status": "lost", "notices_queued": 1}));
    pump(&h, || receiver.seen.lock().unwrap().len() == 4).await;
    let delivery = receiver.seen.lock().unwrap()[3].clone();
    assert_eq!(delivery.path, "/bank");
    assert!(signature_valid(&public_key, &delivery).await);
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["event_type"], "card.lost");
    assert_eq!(body["card_ref"], card_ref.as_str());
    assert_eq!(body["card_no_masked"], "B*******2");
    assert!(
        !String::from_utf8(delivery.body.clone())
            .unwrap()
            .contains(CARD_NO)
    );
    // The card's holder later verifies with a lost card: the status says so.
    let rows = h
        .admin_get(&format!(
            "/api/partner/v1/admin/applications/{bank}/webhooks"
        ))
        .await;
    let states: Vec<(&str, &str, i64)> = rows.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["event_type"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
                r["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("card.lost", "delivered", 1),
            ("settlement.done", "delivered", 3)
        ]
    );
    let rows = h
        .admin_get(&format!(
            "/api/partner/v1/admin/applications/{dept}/webhooks"
        ))
        .await;
    assert_eq!(rows.body["items"], json!([]));
    h.finish().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_ends_failed() {
    let receiver = Receiver::default();
    receiver
        .fail_first
        .lock()
        .unwrap()
        .insert("/down".to_owned(), usize::MAX);
    let (hooks, server) = start_receiver(receiver.clone()).await;
    let h = PartnerHarness::start(Db::Sqlite).await;
    let (app, _) = h
        .register(
            "BANK-D",
            "sm2",
            SM2_PRIV,
            &[(USE_MEDICAL, "webhook.settlement")],
            Some(&format!("{hooks}/down")),
        )
        .await;
    h.approve(&app, None, None).await;
    settle_outpatient(&h.core).await;
    // attempts_max 4 (partner_support::webhook_options).
    let seen = receiver.seen.clone();
    pump(&h, || seen.lock().unwrap().len() == 4).await;
    for _ in 0..10 {
        h.platform.tick().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(receiver.seen.lock().unwrap().len(), 4);
    let rows = h
        .admin_get(&format!(
            "/api/partner/v1/admin/applications/{app}/webhooks"
        ))
        .await;
    assert_eq!(rows.body["items"][0]["state"], "failed");
    assert_eq!(rows.body["items"][0]["attempts"], 4);
    h.finish().await;
    server.abort();
}

/// The `settlement.done` feed on PostgreSQL, where processes sharing one database commit
/// postings out of `seq` order: a posting drawn before a later one but committed after it (a
/// batch of another process, simulated on a raw connection) is not skipped. While its
/// transaction is open the feed writes nothing past it; once it commits, the events of both
/// settlements are written, once. A sequence with a cache (which would break that reasoning) is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_skips_no_posting_committed_out_of_seq_order_on_postgres() {
    use sqlx::{Connection, Row};
    use std::str::FromStr;

    let h = PartnerHarness::start(Db::Postgres).await;
    let (bank, _) = h
        .register(
            "BANK-F",
            "sm2",
            SM2_PRIV,
            &[(USE_MEDICAL, "webhook.settlement")],
            None,
        )
        .await;
    h.approve(&bank, None, None).await;
    let schema = h.core.test.pg_schema().unwrap().to_owned();
    let connect = sqlx::postgres::PgConnectOptions::from_str(&common::pg_url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let mut other = sqlx::PgConnection::connect_with(&connect).await.unwrap();
    let mut reader = sqlx::PgConnection::connect_with(&connect).await.unwrap();

    // "Another process's" batch draws a seq and stays open.
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    let early: i64 = sqlx::query(
        "INSERT INTO postings (id, admdvs, content_sha256, status, posted_at_ms) \
         VALUES ($1, 110000, $2, 'P', 0) RETURNING seq",
    )
    .bind(vec![0xEE_u8; 16])
    .bind(vec![0_u8; 32])
    .fetch_one(&mut other)
    .await
    .unwrap()
    .get(0);
    sqlx::query(
        "INSERT INTO settlements (setl_id, msgid, posting_id, mdtrt_id, psn_no, insutype, \
         insuplc_admdvs, fixmedins_code, setl_date, medfee_sumamt_fen, fund_pay_sumamt_fen, \
         acct_pay_fen, psn_cash_pay_fen, setlinfo) VALUES ('SETL-EARLY', 'MSGID-EARLY', $1, \
         'MDTRT-EARLY', 'PSN-EARLY', '310', 110000, 'H11010500001', '2026-11-30', 100, 60, 0, 40, \
         '{}')",
    )
    .bind(vec![0xEE_u8; 16])
    .execute(&mut other)
    .await
    .unwrap();

    // A settlement of this process draws a higher seq and commits first.
    let setlinfo = settle_outpatient(&h.core).await;
    let late = setlinfo["setl_id"].as_str().unwrap().to_owned();
    let late_seq: i64 = sqlx::query(
        "SELECT p.seq FROM settlements s JOIN postings p ON p.id = s.posting_id \
         WHERE s.setl_id = $1",
    )
    .bind(&late)
    .fetch_one(&mut reader)
    .await
    .unwrap()
    .get(0);
    assert!(late_seq > early, "{late_seq} > {early}");

    // While the early batch is open, no round moves past it (the late settlement waits too:
    // the feed cannot tell which seqs an open transaction holds).
    for _ in 0..3 {
        assert_eq!(h.platform.run_settlement_feed().await.unwrap(), 0);
    }
    sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
    // Within a few rounds (other tests' transactions in the same database may be open at a
    // round's mark for a moment), both events.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut added = 0;
    while added < 2 {
        assert!(
            Instant::now() < deadline,
            "the feed wrote {added} of 2 events"
        );
        added += h.platform.run_settlement_feed().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(added, 2);
    let mut events: Vec<String> = sqlx::query_scalar("SELECT event_id FROM partner_webhooks")
        .fetch_all(&mut reader)
        .await
        .unwrap();
    events.sort();
    let mut expected = vec![
        format!("settlement.done-SETL-EARLY-{bank}"),
        format!("settlement.done-{late}-{bank}"),
    ];
    expected.sort();
    assert_eq!(events, expected);
    for _ in 0..2 {
        assert_eq!(h.platform.run_settlement_feed().await.unwrap(), 0);
    }

    // A sequence that hands out values from a per-backend cache could later give one below a
    // mark: the feed refuses to run on it rather than risk a skip.
    let sequence: String = sqlx::query_scalar("SELECT pg_get_serial_sequence('postings', 'seq')")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER SEQUENCE {sequence} CACHE 10"
    )))
    .execute(&mut reader)
    .await
    .unwrap();
    let refused = h.platform.run_settlement_feed().await.unwrap_err();
    assert!(refused.to_string().contains("CACHE 1"), "{refused}");

    drop((other, reader));
    h.finish().await;
}
