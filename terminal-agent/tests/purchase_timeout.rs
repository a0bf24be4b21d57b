//! The purchase-timeout path with a real card and the real payment switch: `ssc-vcard`
//! (beijing-2g) in a vpcd reader of a private pcscd → `terminal-agent serve` (its own process)
//! → a relay that swallows the switch's answers to purchases and, while the link is "down",
//! cuts reversals → `payment-switch` (settlement) → the Python issuer simulator (ISO 8583).
//!
//! 1. Purchase A: the switch and the issuer approve it, the answer is lost. The agent answers
//!    `outcome` `unknown` with `reversal_pending` (never "failed"); when the purchase left the
//!    agent its reversal was already in the journal (`armed`, read from the journal file by
//!    the relay at that moment). Its reversal attempts are cut: nothing reaches the switch.
//! 2. Purchase B: approved, answer lost, and the agent is killed while it waits (a crash with
//!    the reversal still `armed`).
//! 3. The link is restored and the agent restarts on the same journal: its sweep queues B's
//!    reversal, its forwarder sends both. The switch's own state shows each purchase reversed
//!    exactly once: `timed_out` with its 0400 acknowledged by the issuer, one ledger reversal
//!    of each approval, bank A's clearing account back to zero, and the issuer simulator
//!    applied exactly one 0400 per purchase. The switch's answer agrees: a repeated reversal is
//!    `00` and changes nothing.
//!
//! Expected amounts are the amounts sent; the codes are the switch's documented ones
//! (settlement/src/payments/terminal.rs). Needs root (private pcscd) and the simulator's
//! Python packages (scripts/ensure-python-deps).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::VirtualCardProcess;
use common::agent_process::{AgentProcess, reader_url};
use common::http_relay::{HttpRelay, Observer};
use common::payment_switch::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, PaymentSwitch};
use common::pcscd::{PcscdHome, free_vpcd_port};
use serde_json::{Value, json};
use sqlx::Row as _;

const CARD: &str = "beijing-2g.toml";
const TERMINAL: &str = "BJ000001";
/// The agent's authorisation timeout; the switch's per-hop timeout toward the issuer is 1.5 s
/// (fixtures/banks/routing.toml), the simulator answers at once.
const PAYMENT_TIMEOUT_MS: u64 = 2_000;
/// Amounts the simulator approves (not ending in 05/10/51/55/97-99: tests/bank-sim rules).
const AMOUNT_A: i64 = 12_300;
const AMOUNT_B: i64 = 4_500;
const WAIT: Duration = Duration::from_secs(30);

/// Payment reversal rows of the agent's journal: (msgid, state).
type PayrevRows = Vec<(String, String)>;

/// The payment reversal rows of the agent's journal, read-only.
async fn payrev_rows(journal: &Path) -> PayrevRows {
    use sqlx::ConnectOptions as _;
    if !journal.exists() {
        return Vec::new();
    }
    let mut db = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(journal)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("SELECT msgid, state FROM messages WHERE infno = 'PAYREV' ORDER BY created_ms")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("msgid"), r.get("state")))
        .collect()
}

fn agent_env(socket: &Path, data: &Path, switch: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PCSCLITE_CSOCK_NAME", socket.to_str().unwrap().to_owned()),
        ("TERMINAL_AGENT_DATA_DIR", data.to_str().unwrap().to_owned()),
        ("TERMINAL_AGENT_SWITCH_RETRY_INITIAL_MS", "200".into()),
        ("TERMINAL_AGENT_SWITCH_RETRY_MAX_MS", "1000".into()),
        ("SSC_SWITCH_URL", switch.to_owned()),
        ("SSC_TERMINAL_ID", TERMINAL.into()),
        ("SSC_MERCHANT_ID", MERCHANT.into()),
        ("SSC_MERCHANT_NAME", "TEST PHARMACY".into()),
        ("SSC_PAYMENT_TIMEOUT_MS", PAYMENT_TIMEOUT_MS.to_string()),
    ]
}

/// The switch's record of a purchase (pay_txns joined with pay_reversals).
#[derive(Debug)]
struct SwitchRecord {
    amount_fen: i64,
    status: String,
    stan: String,
    transmission: String,
    posting_id: Option<String>,
    reversal: Option<String>,
}

/// The switch's record of the purchase `terminal_txn_id` of [`TERMINAL`].
async fn switch_record(switch: &PaymentSwitch, terminal_txn_id: &str) -> Option<SwitchRecord> {
    let mut db = switch.db().await;
    let row = sqlx::query(
        "SELECT t.txn_id, t.amount_fen, t.status, t.stan, t.transmission, t.posting_id, r.state \
         FROM pay_terminal_txns k JOIN pay_txns t ON t.txn_id = k.txn_id \
         LEFT JOIN pay_reversals r ON r.txn_id = t.txn_id \
         WHERE k.terminal_id = ?1 AND k.terminal_txn_id = ?2",
    )
    .bind(TERMINAL)
    .bind(terminal_txn_id)
    .fetch_optional(&mut db)
    .await
    .unwrap()?;
    Some(SwitchRecord {
        amount_fen: row.get(1),
        status: row.get(2),
        stan: row.get(3),
        transmission: row.get(4),
        posting_id: row.get(5),
        reversal: row.get(6),
    })
}

/// Ledger reversals of the posting `posting_hex` (the ledger allows at most one).
async fn ledger_reversals(switch: &PaymentSwitch, posting_hex: &str) -> i64 {
    let mut db = switch.db().await;
    sqlx::query(
        "SELECT COUNT(*) FROM postings WHERE link_kind = 'R' AND status = 'P' \
         AND hex(link_target) = upper(?1)",
    )
    .bind(posting_hex)
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0)
}

/// Debits minus credits posted on bank A's (B0001) clearing account, fen (kind 5 = clearing,
/// settlement/migrations/sqlite/0001_ledger.sql).
async fn clearing_net_a(switch: &PaymentSwitch) -> i64 {
    let mut db = switch.db().await;
    sqlx::query(
        "SELECT COALESCE(SUM(debits_posted - credits_posted), 0) FROM accounts \
         WHERE kind = 5 AND code = 'B0001'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap()
    .get(0)
}

async fn post_json(url: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The terminal_txn_id inside a PAYREV msgid (`PAYREV-{terminal}-{id}`).
fn txn_id_of(msgid: &str) -> String {
    msgid
        .strip_prefix(&format!("PAYREV-{TERMINAL}-"))
        .unwrap()
        .to_owned()
}

/// One ledger reversal of each approval, bank A's clearing account back to zero, and one
/// applied 0400 per purchase at the issuer naming it (field 90 = 0200 ‖ STAN ‖ transmission
/// date-time).
async fn check_once(switch: &PaymentSwitch, bank_a: &BankSim, purchases: &[(&str, i64)]) {
    let mut originals = Vec::new();
    for (id, amount) in purchases {
        let r = switch_record(switch, id).await.unwrap();
        assert_eq!(
            (r.amount_fen, r.status.as_str(), r.reversal.as_deref()),
            (*amount, "timed_out", Some("acknowledged"))
        );
        assert_eq!(ledger_reversals(switch, &r.posting_id.unwrap()).await, 1);
        originals.push((format!("0200{}{}", r.stan, r.transmission), *amount));
    }
    assert_eq!(clearing_net_a(switch).await, 0);
    let reversals = bank_a.events("reversal");
    assert_eq!(reversals.len(), purchases.len(), "{reversals:?}");
    for (original, amount) in &originals {
        let hits: Vec<&Value> = reversals
            .iter()
            .filter(|e| {
                e["original"]
                    .as_str()
                    .unwrap()
                    .starts_with(original.as_str())
            })
            .collect();
        assert_eq!(hits.len(), 1, "{original}: {reversals:?}");
        assert_eq!(hits[0]["applied"], true);
        assert_eq!(hits[0]["amount"], *amount);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_purchase_answer_is_unknown_and_reversed_exactly_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bank_a = BankSim::start(dir.path().join("bank-a.jsonl"), BANK_A_MAC_KEY);
    let bank_b = BankSim::start(dir.path().join("bank-b.jsonl"), BANK_B_MAC_KEY);
    let switch_dir = dir.path().join("switch");
    std::fs::create_dir(&switch_dir).unwrap();
    let switch = PaymentSwitch::start(&switch_dir, bank_a.port, bank_b.port).await;

    // The till's reader: a private pcscd, the card in it.
    let home = PcscdHome::new();
    let vpcd_port = free_vpcd_port();
    let pcscd = home.start(&[("Till PCD", vpcd_port)]);
    let reader = "Till PCD 00 00";
    let _card = VirtualCardProcess::start(CARD, vpcd_port);

    // The relay records the journal's payment reversals each time a purchase passes.
    let agent_data = dir.path().join("agent");
    let journal = agent_data.join("journal.sqlite");
    let snapshots: Arc<Mutex<Vec<PayrevRows>>> = Arc::default();
    let observer: Observer = {
        let (snapshots, journal) = (Arc::clone(&snapshots), journal.clone());
        Arc::new(move || {
            let (snapshots, journal) = (Arc::clone(&snapshots), journal.clone());
            Box::pin(async move {
                let rows = payrev_rows(&journal).await;
                snapshots.lock().unwrap().push(rows);
            })
        })
    };
    let relay = HttpRelay::start_with(
        switch.port,
        b"POST /payments/v1/purchase",
        b"POST /payments/v1/reversal",
        Some(observer),
    )
    .await;
    relay.swallow.store(true, Ordering::SeqCst);
    relay.cut.store(true, Ordering::SeqCst);
    let env = agent_env(&home.socket(), &agent_data, &relay.base());
    let log: PathBuf = dir.path().join("agent.log");
    let mut agent = AgentProcess::start(&env, &log).await;
    agent
        .wait_readers(&[(reader, true), ("Till PCD 00 01", false)], 15_000)
        .await;

    // 1. Purchase A: approved at the issuer, the answer lost.
    let started = Instant::now();
    let (status, view) = agent
        .post(
            &reader_url(reader, "/purchase"),
            json!({"amount_fen": AMOUNT_A}),
        )
        .await;
    let waited = started.elapsed();
    assert_eq!(status, 200, "{view}\n{}", agent.log_text());
    assert_eq!(view["outcome"], "unknown", "{view}");
    assert_eq!(view["reversal_pending"], true, "{view}");
    assert_eq!(view["response_code"], Value::Null);
    assert_eq!(
        view["card_result"], "AAC",
        "no answer: the card declines (Z3)"
    );
    assert!(
        waited >= Duration::from_millis(PAYMENT_TIMEOUT_MS),
        "answered before its timeout: {waited:?}"
    );
    let id_a = view["terminal_txn_id"].as_str().unwrap().to_owned();
    let msgid_a = format!("PAYREV-{TERMINAL}-{id_a}");
    assert_eq!(relay.swallowed.load(Ordering::SeqCst), 1);
    // When purchase A left the agent, its reversal was on disk, armed.
    assert_eq!(
        snapshots.lock().unwrap().clone(),
        vec![vec![(msgid_a.clone(), "armed".to_owned())]]
    );
    // The switch did it: approved, posted, the issuer saw one authorisation.
    let record = switch_record(&switch, &id_a).await.unwrap();
    assert_eq!(
        (record.amount_fen, record.status.as_str()),
        (AMOUNT_A, "approved")
    );
    assert_eq!(bank_a.events("auth").len(), 1);
    assert_eq!(clearing_net_a(&switch).await, AMOUNT_A);

    // 2. Purchase B: the agent dies while it waits for the lost answer.
    let purchase_b = tokio::spawn({
        let url = format!("{}{}", agent.base, reader_url(reader, "/purchase"));
        async move {
            let _ = reqwest::Client::new()
                .post(url)
                .json(&json!({"amount_fen": AMOUNT_B}))
                .send()
                .await;
        }
    });
    // Kill the agent once the switch has approved B (the answer it is waiting for is lost).
    let deadline = Instant::now() + WAIT;
    let (msgid_b, snapshot_b) = loop {
        let snapshot = snapshots.lock().unwrap().get(1).cloned();
        if let Some(snapshot) = snapshot
            && let Some((msgid, _)) = snapshot.last()
            && let Some(record) = switch_record(&switch, &txn_id_of(msgid)).await
            && record.status == "approved"
        {
            break (msgid.clone(), snapshot);
        }
        assert!(Instant::now() < deadline, "purchase B never approved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    agent.kill();
    let _ = purchase_b.await;
    assert_eq!(relay.swallowed.load(Ordering::SeqCst), 2);
    assert_eq!(bank_a.events("auth").len(), 2);
    assert_eq!(
        snapshot_b,
        vec![
            (msgid_a.clone(), "queued".to_owned()),
            (msgid_b.clone(), "armed".to_owned())
        ],
        "B's reversal armed before B left"
    );
    let id_b = txn_id_of(&msgid_b);
    // Before the restart nothing was reversed at the switch: A's reversals were all cut.
    for id in [&id_a, &id_b] {
        let record = switch_record(&switch, id).await.unwrap();
        assert_eq!(record.status, "approved", "{id}");
    }
    assert!(bank_a.events("reversal").is_empty());
    assert_eq!(clearing_net_a(&switch).await, AMOUNT_A + AMOUNT_B);
    assert_eq!(
        payrev_rows(&journal).await,
        vec![
            (msgid_a.clone(), "queued".to_owned()),
            (msgid_b.clone(), "armed".to_owned())
        ]
    );

    // 3. The link is back; the agent restarts on the same journal.
    relay.swallow.store(false, Ordering::SeqCst);
    relay.cut.store(false, Ordering::SeqCst);
    let agent = AgentProcess::start(&env, &log).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let a = switch_record(&switch, &id_a).await.unwrap();
        let b = switch_record(&switch, &id_b).await.unwrap();
        let done = [&a, &b]
            .iter()
            .all(|r| r.status == "timed_out" && r.reversal.as_deref() == Some("acknowledged"));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reversals not landed: {a:?} {b:?}\nagent:\n{}\nswitch:\n{}",
            agent.log_text(),
            std::fs::read_to_string(&switch.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The agent heard 00 for both.
    let deadline = Instant::now() + WAIT;
    while payrev_rows(&journal).await
        != vec![
            (msgid_a.clone(), "acknowledged".to_owned()),
            (msgid_b.clone(), "acknowledged".to_owned()),
        ]
    {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            payrev_rows(&journal).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Exactly once, from the switch and the issuer.
    check_once(&switch, &bank_a, &[(&id_a, AMOUNT_A), (&id_b, AMOUNT_B)]).await;

    // The switch's answers: a repeated reversal is 00 and moves nothing; the id is spent.
    let repeat = post_json(
        &format!("{}/payments/v1/reversal", switch.base()),
        json!({"terminal_id": TERMINAL, "merchant_id": MERCHANT, "terminal_txn_id": id_a}),
    )
    .await;
    assert_eq!(repeat, json!({"response_code": "00"}));
    tokio::time::sleep(Duration::from_millis(600)).await; // three forwarder periods
    check_once(&switch, &bank_a, &[(&id_a, AMOUNT_A), (&id_b, AMOUNT_B)]).await;
    let (_, view) = agent.get(&reader_url(reader, "/card")).await;
    assert_eq!(
        view["identity"]["card_id"],
        common::field(&common::image(CARD), "ssse", "card_id")
    );
    assert_eq!(bank_b.events("auth").len(), 0);
    drop(agent);
    pcscd.stop();
}
