//! The settlement journal and the reversal store-and-forward against a stand-in for the
//! settlement switch: a small axum server speaking the national envelope at
//! `POST /fsi/api/rsfComIfsService/callService` (medical-settlement.md §1.0-§1.1, §1.6). The real
//! switch is issue 5's service, which does not exist yet. The stand-in answers, times out,
//! refuses connections (stopped) and restarts on the same port, as the test scripts it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use terminal_agent::journal::forwarder::{self, Backoff};
use terminal_agent::journal::sweep::IN_DOUBT_NOTE;
use terminal_agent::journal::{
    EnvelopeHeader, Journal, MSGID_LEN, MessageState, SendOutcome, SwitchClient, send_message,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// infcode 0.
    Answer,
    /// infcode -1 with an err_msg.
    Refuse,
    /// Answers after 1 s (past the client's timeout).
    Slow,
}

#[derive(Clone)]
struct Switch {
    behaviour: Arc<Mutex<Behaviour>>,
    received: Arc<Mutex<Vec<Value>>>,
    /// For each message received: its state in the journal at that moment (the observer's
    /// handle; emptied when the test plays a crash, since a crash ends every handle).
    journal: Arc<Mutex<Option<Journal>>>,
    journaled_states: Arc<Mutex<Vec<Option<MessageState>>>>,
}

async fn call_service(State(switch): State<Switch>, Json(envelope): Json<Value>) -> Json<Value> {
    let msgid = envelope["msgid"].as_str().unwrap_or_default().to_owned();
    let journal = switch.journal.lock().unwrap().clone();
    let state = match journal {
        Some(journal) => journal.get(&msgid).await.unwrap().map(|m| m.state),
        None => None,
    };
    switch.journaled_states.lock().unwrap().push(state);
    switch.received.lock().unwrap().push(envelope);
    let behaviour = *switch.behaviour.lock().unwrap();
    match behaviour {
        Behaviour::Answer => Json(
            json!({"infcode": 0, "inf_refmsgid": "120000202406111538510000000001", "output": {"setlinfo": {}}}),
        ),
        Behaviour::Refuse => Json(json!({"infcode": -1, "err_msg": "人员信息不存在"})),
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            Json(json!({"infcode": 0}))
        }
    }
}

/// Serves the stand-in on `addr` (port 0: ephemeral); returns the bound address and the task.
async fn serve(switch: Switch, addr: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/fsi/api/rsfComIfsService/callService", post(call_service))
        .with_state(switch);
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (bound, task)
}

fn header() -> EnvelopeHeader {
    EnvelopeHeader {
        fixmedins_code: "H12010100001".into(),
        fixmedins_name: "测试医院".into(),
        mdtrtarea_admvs: "120101".into(),
        recer_sys_code: "HIS".into(),
        opter_type: "2".into(),
        opter: "KIOSK01".into(),
        opter_name: "自助机01".into(),
        sign_no: "SIGN0001".into(),
    }
}

fn settlement_input() -> Value {
    json!({"data": {"psn_no": "12000000000000000001", "mdtrt_id": "M001", "medfee_sumamt": "123.45"}})
}

async fn setup(dir: &std::path::Path) -> (Journal, Switch) {
    let journal = Journal::open(&dir.join("journal.sqlite")).await.unwrap();
    let switch = Switch {
        behaviour: Arc::new(Mutex::new(Behaviour::Answer)),
        received: Arc::new(Mutex::new(Vec::new())),
        journal: Arc::new(Mutex::new(Some(journal.clone()))),
        journaled_states: Arc::new(Mutex::new(Vec::new())),
    };
    (journal, switch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_settlement_is_journaled_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, switch) = setup(dir.path()).await;
    let (addr, _task) = serve(switch.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let client = SwitchClient::new(&format!("http://{addr}"), 500).unwrap();
    let outcome = send_message(
        &journal,
        &client,
        &header(),
        "2207",
        "12000000000000000001",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::Acknowledged { msgid, reply } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.infcode, 0);
    // msgid = fixmedins_code (12) + yyyyMMddHHmmss (14) + 4-digit sequence (medical-settlement.md §1.1).
    assert_eq!(msgid.len(), MSGID_LEN);
    assert!(msgid.starts_with("H12010100001"));
    assert!(msgid[12..].bytes().all(|b| b.is_ascii_digit()));
    // The switch saw the message while the journal already held it as `sending`.
    assert_eq!(
        *switch.journaled_states.lock().unwrap(),
        vec![Some(MessageState::Sending)]
    );
    let sent = switch.received.lock().unwrap()[0].clone();
    assert_eq!(sent["infno"], "2207");
    assert_eq!(sent["msgid"], msgid.as_str());
    assert_eq!(sent["fixmedins_code"], "H12010100001");
    assert_eq!(sent["mdtrtarea_admvs"], "120101");
    assert_eq!(sent["insuplc_admdvs"], "120101");
    assert_eq!(sent["input"], settlement_input());
    assert_eq!(
        journal.get(&msgid).await.unwrap().unwrap().state,
        MessageState::Acknowledged
    );
    // A second message in the same second gets the next sequence number.
    let second = send_message(
        &journal,
        &client,
        &header(),
        "2207",
        "p",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::Acknowledged { msgid: msgid2, .. } = second else {
        panic!()
    };
    assert_ne!(msgid, msgid2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_final_and_an_unreachable_switch_means_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, switch) = setup(dir.path()).await;
    *switch.behaviour.lock().unwrap() = Behaviour::Refuse;
    let (addr, task) = serve(switch.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let client = SwitchClient::new(&format!("http://{addr}"), 500).unwrap();
    let outcome = send_message(
        &journal,
        &client,
        &header(),
        "2207",
        "p",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::Refused { msgid, reply } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(reply.infcode, -1);
    assert_eq!(reply.err_msg.as_deref(), Some("人员信息不存在"));
    assert_eq!(
        journal.get(&msgid).await.unwrap().unwrap().state,
        MessageState::Refused
    );
    // The switch stops: the connection is refused, so the message was never delivered.
    task.abort();
    let _ = task.await;
    let outcome = send_message(
        &journal,
        &client,
        &header(),
        "2207",
        "p",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::NotDelivered { msgid } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        journal.get(&msgid).await.unwrap().unwrap().state,
        MessageState::NotDelivered
    );
    assert!(
        journal
            .due_reversals(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing to reverse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_settlement_is_reversed_until_acknowledged_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, switch) = setup(dir.path()).await;
    *switch.behaviour.lock().unwrap() = Behaviour::Slow;
    let (addr, task) = serve(switch.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let client = SwitchClient::new(&format!("http://{addr}"), 300).unwrap();

    // 1. The switch answers too late: the outcome is unknown, never failed.
    let outcome = send_message(
        &journal,
        &client,
        &header(),
        "2207",
        "12000000000000000001",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::Unknown {
        msgid,
        reversal_msgid,
    } = outcome
    else {
        panic!("{outcome:?}")
    };
    let original = journal.get(&msgid).await.unwrap().unwrap();
    assert_eq!(original.state, MessageState::Unknown);
    let reversal = journal.get(&reversal_msgid).await.unwrap().unwrap();
    assert_eq!(reversal.state, MessageState::Queued);
    assert_eq!(reversal.infno, "2601");
    assert_eq!(reversal.original_msgid.as_deref(), Some(msgid.as_str()));
    let body: Value = serde_json::from_str(&reversal.body).unwrap();
    // medical-settlement.md §1.6: 2601 names psn_no, omsgid (original msgid), oinfno.
    assert_eq!(body["infno"], "2601");
    assert_eq!(body["input"]["data"]["omsgid"], msgid.as_str());
    assert_eq!(body["input"]["data"]["oinfno"], "2207");
    assert_eq!(body["input"]["data"]["psn_no"], "12000000000000000001");
    let in_doubt = journal.in_doubt().await.unwrap();
    assert!(in_doubt.iter().any(|m| m.msgid == msgid));

    // 2. The switch is down: the reversal stays queued with a later attempt time.
    task.abort();
    let _ = task.await;
    let backoff = Backoff::new(200, 800);
    assert_eq!(
        forwarder::pass(&journal, &client, backoff).await.unwrap(),
        0
    );
    let after = journal.get(&reversal_msgid).await.unwrap().unwrap();
    assert_eq!((after.state, after.attempts), (MessageState::Queued, 1));
    assert!(after.next_attempt_ms > terminal_agent::journal::store::now_ms());
    // Not due yet: a pass right away sends nothing.
    assert_eq!(
        forwarder::pass(&journal, &client, backoff).await.unwrap(),
        0
    );
    assert_eq!(
        journal
            .get(&reversal_msgid)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        1
    );

    // 3. The agent restarts: the journal is reopened from disk.
    journal.close().await;
    drop(journal);
    let journal = Journal::open(&dir.path().join("journal.sqlite"))
        .await
        .unwrap();
    assert_eq!(
        journal.get(&reversal_msgid).await.unwrap().unwrap().state,
        MessageState::Queued
    );

    // 4. The switch restarts on the same port and answers; the forwarder (as `serve` runs it)
    // retries after the backoff until it is acknowledged.
    let restarted = Switch {
        journal: Arc::new(Mutex::new(Some(journal.clone()))),
        journaled_states: Arc::new(Mutex::new(Vec::new())),
        behaviour: Arc::new(Mutex::new(Behaviour::Answer)),
        received: Arc::clone(&switch.received),
    };
    let (_addr, _task) = serve(restarted, addr).await;
    let run = tokio::spawn(forwarder::run(journal.clone(), client.clone(), backoff));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let state = journal.get(&reversal_msgid).await.unwrap().unwrap().state;
        if state == MessageState::Acknowledged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reversal never acknowledged: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.abort();
    let received = switch.received.lock().unwrap().clone();
    let reversals: Vec<&Value> = received.iter().filter(|e| e["infno"] == "2601").collect();
    assert!(!reversals.is_empty());
    // Every attempt resent the same journaled message: same msgid, same body.
    assert!(
        reversals
            .iter()
            .all(|e| e["msgid"] == reversal_msgid.as_str())
    );
    assert!(reversals.iter().all(|e| **e == body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reversal_the_switch_rejects_waits_for_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, switch) = setup(dir.path()).await;
    *switch.behaviour.lock().unwrap() = Behaviour::Slow;
    let (addr, _task) = serve(switch.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let client = SwitchClient::new(&format!("http://{addr}"), 300).unwrap();
    let outcome = send_message(
        &journal,
        &client,
        &header(),
        "2304",
        "p",
        "120101",
        settlement_input(),
    )
    .await
    .unwrap();
    let SendOutcome::Unknown { reversal_msgid, .. } = outcome else {
        panic!("{outcome:?}")
    };
    *switch.behaviour.lock().unwrap() = Behaviour::Refuse;
    forwarder::pass(&journal, &client, Backoff::new(100, 100))
        .await
        .unwrap();
    let reversal = journal.get(&reversal_msgid).await.unwrap().unwrap();
    assert_eq!(reversal.state, MessageState::Rejected);
    assert_eq!(reversal.last_error.as_deref(), Some("人员信息不存在"));
    assert!(
        journal
            .due_reversals(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Starts `send_message` for `infno` against the (slow) stand-in and kills it once the switch
/// has the message: the agent "dies" between journaling and reading the answer. Returns the
/// msgid the switch received.
async fn send_then_crash(
    journal: &Journal,
    switch: &Switch,
    client: &SwitchClient,
    infno: &str,
) -> String {
    let seen = switch.received.lock().unwrap().len();
    let task = tokio::spawn({
        let (journal, client, infno) = (journal.clone(), client.clone(), infno.to_owned());
        async move {
            send_message(
                &journal,
                &client,
                &header(),
                &infno,
                "12000000000000000001",
                "120101",
                settlement_input(),
            )
            .await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while switch.received.lock().unwrap().len() == seen {
        assert!(
            std::time::Instant::now() < deadline,
            "the switch never got {infno}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    let sent = switch.received.lock().unwrap()[seen].clone();
    assert_eq!(sent["infno"], infno);
    sent["msgid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_left_sending_by_a_crash_is_reversed_exactly_once_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let (journal, switch) = setup(dir.path()).await;
    *switch.behaviour.lock().unwrap() = Behaviour::Slow;
    let (addr, _task) = serve(switch.clone(), "127.0.0.1:0".parse().unwrap()).await;
    // A timeout far past the stand-in's delay: the send is killed, never timed out.
    let client = SwitchClient::new(&format!("http://{addr}"), 10_000).unwrap();
    let settlement = send_then_crash(&journal, &switch, &client, "2207").await;
    let query = send_then_crash(&journal, &switch, &client, "1101").await;
    for msgid in [&settlement, &query] {
        assert_eq!(
            journal.get(msgid).await.unwrap().unwrap().state,
            MessageState::Sending
        );
    }
    assert!(
        journal
            .due_reversals(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The crash: every handle goes away without anything being recorded or closed (the
    // process's end releases the journal's lock).
    switch.journal.lock().unwrap().take();
    drop(journal);

    // Reopening sweeps: the 2207 is unknown with a 2601 queued, the 1101 unanswered.
    let journal = Journal::open(&path).await.unwrap();
    *switch.journal.lock().unwrap() = Some(journal.clone());
    let original = journal.get(&settlement).await.unwrap().unwrap();
    assert_eq!(original.state, MessageState::Unknown);
    assert_eq!(original.last_error.as_deref(), Some(IN_DOUBT_NOTE));
    let reversal = journal.reversal_of(&settlement).await.unwrap().unwrap();
    assert_eq!(
        (reversal.infno.as_str(), reversal.state),
        ("2601", MessageState::Queued)
    );
    let body: Value = serde_json::from_str(&reversal.body).unwrap();
    // medical-settlement.md §1.6: 2601 names psn_no, omsgid (original msgid), oinfno; the
    // header is the original envelope's.
    assert_eq!(body["infno"], "2601");
    assert_eq!(body["msgid"], reversal.msgid.as_str());
    assert_eq!(body["input"]["data"]["omsgid"], settlement.as_str());
    assert_eq!(body["input"]["data"]["oinfno"], "2207");
    assert_eq!(body["input"]["data"]["psn_no"], "12000000000000000001");
    assert_eq!(body["fixmedins_code"], "H12010100001");
    assert_eq!(body["insuplc_admdvs"], "120101");
    assert_eq!(body["opter"], "KIOSK01");
    let unanswered = journal.get(&query).await.unwrap().unwrap();
    assert_eq!(unanswered.state, MessageState::Unknown);
    assert_eq!(unanswered.last_error.as_deref(), Some(IN_DOUBT_NOTE));
    assert!(
        journal.reversal_of(&query).await.unwrap().is_none(),
        "no 2601 for a 1101"
    );

    // Idempotent: another restart queues nothing more.
    journal.close().await;
    let journal = Journal::open(&path).await.unwrap();
    *switch.journal.lock().unwrap() = Some(journal.clone());
    let queued = journal.due_reversals(i64::MAX, 10).await.unwrap();
    assert_eq!(
        queued.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(),
        [reversal.msgid.as_str()]
    );

    // The stand-in answers: the forwarder lands the reversal once, then has nothing to send.
    *switch.behaviour.lock().unwrap() = Behaviour::Answer;
    let backoff = Backoff::new(100, 100);
    assert_eq!(
        forwarder::pass(&journal, &client, backoff).await.unwrap(),
        1
    );
    assert_eq!(
        forwarder::pass(&journal, &client, backoff).await.unwrap(),
        0
    );
    assert_eq!(
        journal.get(&reversal.msgid).await.unwrap().unwrap().state,
        MessageState::Acknowledged
    );
    journal.close().await;
    let journal = Journal::open(&path).await.unwrap();
    *switch.journal.lock().unwrap() = Some(journal.clone());
    assert!(
        journal
            .due_reversals(i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let received = switch.received.lock().unwrap().clone();
    let reversals: Vec<&Value> = received.iter().filter(|e| e["infno"] == "2601").collect();
    assert_eq!(reversals.len(), 1);
    assert_eq!(*reversals[0], body);
    journal.close().await;
}
