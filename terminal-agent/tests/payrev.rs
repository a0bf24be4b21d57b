//! The payment reversal journal kind against a stand-in for the switch's
//! `POST /payments/v1/reversal` (settlement/src/payments/api.rs, terminal.rs: answers
//! `{response_code}`, "00" done, "91" retry later). The stand-in answers 91 first, then 00.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use terminal_agent::journal::forwarder::Backoff;
use terminal_agent::journal::payrev::{
    self, INFNO_PAYMENT_REVERSAL, PaymentReversal, PaymentsClient, terminal_txn_id_ok,
};
use terminal_agent::journal::{Journal, MessageState};

#[derive(Clone, Default)]
struct Payments {
    received: Arc<Mutex<Vec<Value>>>,
}

async fn reversal(State(p): State<Payments>, Json(body): Json<Value>) -> Json<Value> {
    let mut received = p.received.lock().unwrap();
    received.push(body);
    let code = if received.len() == 1 { "91" } else { "00" };
    Json(json!({"response_code": code}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_reversal_is_retried_after_91_and_acknowledged_once_on_00() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let journal = Journal::open(&path).await.unwrap();
    let payments = Payments::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/payments/v1/reversal", post(reversal))
        .with_state(payments.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = PaymentsClient::new(reqwest::Client::new(), &format!("http://{addr}/"), 2_000);

    let request = PaymentReversal {
        terminal_id: "T0000001".into(),
        merchant_id: "M00000000000001".into(),
        terminal_txn_id: "1764487000000-0A1B2C3D".into(),
    };
    let msgid = payrev::queue_payment_reversal(&journal, &request)
        .await
        .unwrap();
    // Journaling it again keeps one row.
    assert_eq!(
        payrev::queue_payment_reversal(&journal, &request)
            .await
            .unwrap(),
        msgid
    );
    let stored = journal.get(&msgid).await.unwrap().unwrap();
    assert_eq!(
        (stored.infno.as_str(), stored.state),
        (INFNO_PAYMENT_REVERSAL, MessageState::Queued)
    );
    // Not a 2601: the national forwarder leaves it alone.
    assert!(
        journal
            .due_reversals(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // 1. "91": still queued, one attempt, a later attempt time.
    let backoff = Backoff::new(100, 100);
    assert_eq!(payrev::pass(&journal, &client, backoff).await.unwrap(), 0);
    let after = journal.get(&msgid).await.unwrap().unwrap();
    assert_eq!((after.state, after.attempts), (MessageState::Queued, 1));
    assert_eq!(after.last_error.as_deref(), Some("response_code 91"));
    assert!(after.next_attempt_ms > terminal_agent::journal::store::now_ms());
    // Not due yet: nothing sent.
    assert_eq!(payrev::pass(&journal, &client, backoff).await.unwrap(), 0);
    assert_eq!(payments.received.lock().unwrap().len(), 1);

    // 2. Across a restart, after the backoff: "00" acknowledges it; then nothing more is sent.
    journal.close().await;
    let journal = Journal::open(&path).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(payrev::pass(&journal, &client, backoff).await.unwrap(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(payrev::pass(&journal, &client, backoff).await.unwrap(), 0);
    assert_eq!(
        journal.get(&msgid).await.unwrap().unwrap().state,
        MessageState::Acknowledged
    );
    let received = payments.received.lock().unwrap().clone();
    // The request of settlement/src/payments/terminal.rs, the same bytes each time.
    let expected = json!({"terminal_id": "T0000001", "merchant_id": "M00000000000001", "terminal_txn_id": "1764487000000-0A1B2C3D"});
    assert_eq!(received, vec![expected.clone(), expected]);
    journal.close().await;
}

#[test]
fn terminal_txn_ids_are_1_to_32_of_alphanumerics_and_hyphens() {
    // settlement/src/payments/terminal.rs: 1-32 of [A-Za-z0-9-].
    assert!(terminal_txn_id_ok("a"));
    assert!(terminal_txn_id_ok(&"Z9-".repeat(10)));
    assert!(terminal_txn_id_ok(&"x".repeat(32)));
    assert!(!terminal_txn_id_ok(&"x".repeat(33)));
    assert!(!terminal_txn_id_ok(""));
    assert!(!terminal_txn_id_ok("a_b"));
    assert!(!terminal_txn_id_ok("a b"));
    assert!(!terminal_txn_id_ok("é"));
}
