//! The agent against the REAL settlement switch (`settlement serve`, issue 5), gateway
//! authentication on (`SETTLEMENT_PAAS`), on the real card stack (pcscd + vpcd slot
//! "Virtual PCD 00 01" + `ssc-vcard` with fixtures/cards/beijing-2g.toml):
//!
//! 1. a kiosk settlement through `POST /v1/readers/{name}/settle` (1101 by 卡号 → 2201 → 2204 →
//!    2207) succeeds; the money fields obey the interface identities (medical-settlement.md §1.5)
//!    and the switch's 1101 balance drops by exactly `acct_pay`;
//! 2. a TCP relay swallows the 2207 reply: the agent answers `unknown` and journals a 2601; the
//!    agent stops, the relay is restored, the journal is reopened from the same SQLite file
//!    (agent restart) and its forwarder lands the 2601. The switch then shows the settlement
//!    reversed: its 1101 balance and 5206 accumulators are back to what they were before, a
//!    resend of the journaled 2601 is answered with the first answer and moves nothing, and a
//!    fresh 2601 for the same 2207 is told `already_reversed` (it landed exactly once).
//!
//! Expected figures come from the switch's own answers and from fixtures/persons/cards.csv
//! (B10020030 = person 11000000000000000001, personal account 3560.25), not from the agent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The slot lock is a std mutex held for the whole test (tests/common), across awaits on purpose.
#![allow(clippy::await_holding_lock)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::http_relay::HttpRelay;
use common::{Agent, authority_for, insert, reader_path, slot_lock};
use serde_json::{Value, json};
use terminal_agent::api::settle::{self, SettleContext};
use terminal_agent::journal::envelope::{self, Envelope};
use terminal_agent::journal::forwarder::{self, Backoff};
use terminal_agent::journal::switch::{GatewayCredentials, PaasToken};
use terminal_agent::journal::{EnvelopeHeader, Journal, MessageState, SwitchClient};

/// fixtures/institutions/institutions.csv: a Beijing level-3 hospital.
const FIX: &str = "H11010500001";
const PAAS_ID: &str = "kiosk01";
const PAAS_TOKEN: &str = "kiosk01-test-token";
const CARD: &str = "beijing-2g.toml";
/// fixtures/persons/cards.csv row of card B10020030.
const PSN_NO: &str = "11000000000000000001";
const CARD_NO: &str = "B10020030";
/// The switch call timeout of the agent in this test, ms.
const SWITCH_TIMEOUT_MS: u64 = 2_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A running `settlement serve`; killed when dropped.
struct Switch {
    child: Child,
    port: u16,
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_switch(data: &Path) -> Switch {
    let status = Command::new(common::workspace_binary("settlement"))
        .arg("import-persons")
        .arg(fixtures().join("persons/cards.csv"))
        .arg("--data")
        .arg(data)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "import-persons failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(common::workspace_binary("settlement"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data)
        .arg("--refdata")
        .arg(fixtures())
        .env_remove("DATABASE_URL")
        .env("SETTLEMENT_PAAS", format!("{PAAS_ID}={PAAS_TOKEN}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let switch = Switch { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await
            && r.status().is_success()
        {
            return switch;
        }
        assert!(Instant::now() < deadline, "settlement serve never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header() -> EnvelopeHeader {
    EnvelopeHeader {
        fixmedins_code: FIX.into(),
        fixmedins_name: "北京市朝阳区示例三级医院".into(),
        mdtrtarea_admvs: "110000".into(),
        recer_sys_code: "HIS".into(),
        opter_type: "2".into(),
        opter: "KIOSK01".into(),
        opter_name: "自助机01".into(),
        sign_no: String::new(),
    }
}

fn client(base: &str) -> SwitchClient {
    SwitchClient::new(base, SWITCH_TIMEOUT_MS)
        .unwrap()
        .with_gateway(GatewayCredentials {
            paas_id: PAAS_ID.into(),
            token: PaasToken::new(PAAS_TOKEN.into()),
        })
}

/// The test's own questions to the switch (directly, not through the relay), msgids in a
/// second of year 2000 so they never meet the agent's.
struct Oracle {
    client: SwitchClient,
    seq: u16,
}

impl Oracle {
    async fn ask(&mut self, infno: &str, input: Value) -> terminal_agent::journal::SwitchReply {
        self.seq += 1;
        let msgid = envelope::msgid(FIX, "20000101000000", self.seq).unwrap();
        let env = Envelope::new(
            &header(),
            infno,
            &msgid,
            "110000",
            input,
            envelope::beijing_now(),
        );
        self.client.send(&env).await.unwrap()
    }

    /// 1101 by card: the personal account balance, fen.
    async fn balance_fen(&mut self) -> i64 {
        let reply = self
            .ask(
                "1101",
                json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD_NO}}),
            )
            .await;
        assert_eq!(reply.infcode, 0, "{:?}", reply.err_msg);
        assert_eq!(reply.output["baseinfo"]["psn_no"], PSN_NO);
        fen(&reply.output["insuinfo"][0]["balc"])
    }

    /// 5206: this year's accumulators as (code, value) sorted.
    async fn accumulators(&mut self) -> Vec<(String, String)> {
        let reply = self.ask("5206", json!({"data": {"psn_no": PSN_NO}})).await;
        assert_eq!(reply.infcode, 0, "{:?}", reply.err_msg);
        let mut out: Vec<(String, String)> = reply.output["cuminfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["cum_type_code"].to_string(), c["cum"].to_string()))
            .collect();
        out.sort();
        out
    }
}

/// Yuan (JSON number or string, 2 decimals) to fen, parsed here independently of the agent.
fn fen(v: &Value) -> i64 {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let negative = whole.starts_with('-');
    let magnitude = whole.trim_start_matches('-').parse::<i64>().unwrap() * 100
        + format!("{frac:0<2}").parse::<i64>().unwrap();
    if negative { -magnitude } else { magnitude }
}

/// medical-settlement.md §1.5 identities over a 2207 `setlinfo` and `setldetail`.
fn check_identities(s: &Value, details: &Value) {
    let f = |name: &str| fen(&s[name]);
    let medfee = f("medfee_sumamt");
    assert_eq!(
        medfee,
        f("fulamt_ownpay_amt") + f("overlmt_selfpay") + f("preselfpay_amt") + f("inscp_scp_amt")
    );
    assert_eq!(
        medfee,
        f("fund_pay_sumamt") + f("psn_part_amt") + f("hosp_part_amt")
    );
    assert_eq!(f("psn_part_amt"), f("acct_pay") + f("psn_cash_pay"));
    let funds = [
        "hifp_pay",
        "cvlserv_pay",
        "hifes_pay",
        "hifmi_pay",
        "hifob_pay",
        "hifdm_pay",
        "maf_pay",
        "oth_pay",
    ];
    assert_eq!(
        f("fund_pay_sumamt"),
        funds.iter().map(|n| f(n)).sum::<i64>()
    );
    let detail_sum: i64 = details
        .as_array()
        .unwrap()
        .iter()
        .map(|d| fen(&d["fund_payamt"]))
        .sum();
    assert_eq!(f("fund_pay_sumamt"), detail_sum);
}

/// The fixture bill of fixtures/his/outpatient-beijing-310.json: 3000.00 + 150.00.
fn bill(batch: &str) -> Value {
    json!({
        "chrg_bchno": batch,
        "use_personal_account": true,
        "feedetail": [
            {"feedetl_sn": "0001", "med_list_codg": "XJ01CAA001A000000007919",
             "medins_list_codg": "YP0001", "det_item_fee_sumamt": "3000.00", "cnt": "100",
             "pric": "30.00"},
            {"feedetl_sn": "0002", "med_list_codg": "XJ01DDA006A000000047514",
             "medins_list_codg": "YP0002", "det_item_fee_sumamt": "150.00", "cnt": "10",
             "pric": "15.00"}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_settlement_then_a_swallowed_2207_reversed_once_after_restart() {
    let _slot = slot_lock();
    let switch_dir = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let switch = start_switch(switch_dir.path()).await;
    let direct = format!("http://127.0.0.1:{}", switch.port);
    let relay = HttpRelay::start(switch.port, br#""infno":"2207","msgid""#).await;
    let mut oracle = Oracle {
        client: client(&direct),
        seq: 0,
    };

    let _card = insert(CARD);
    let (_hsm_dir, authority) = authority_for(CARD);
    let agent = Agent::start(authority, 5_000).await;
    let journal_path = agent_dir.path().join("journal.sqlite");
    let journal = Journal::open(&journal_path).await.unwrap();
    settle::configure(SettleContext {
        journal: journal.clone(),
        client: client(&relay.base()),
        header: header(),
    });

    // The gateway is on: a call without the x-tif-* headers is refused.
    let bare = SwitchClient::new(&direct, SWITCH_TIMEOUT_MS).unwrap();
    let env = Envelope::new(
        &header(),
        "1101",
        &envelope::msgid(FIX, "20000101000001", 1).unwrap(),
        "110000",
        json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD_NO}}),
        envelope::beijing_now(),
    );
    assert_ne!(bare.send(&env).await.unwrap().infcode, 0);

    // 1. A settlement that succeeds.
    let before = oracle.balance_fen().await;
    assert_eq!(
        before, 356_025,
        "fixtures/persons/cards.csv balance of B10020030"
    );
    let (status, view) = agent.post(&reader_path("/settle"), bill("B0001")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["outcome"], "settled", "{view}");
    assert_eq!(view["medfee_sumamt"], "3150.00");
    let s = &view["setlinfo"];
    assert_eq!(fen(&s["medfee_sumamt"]), 315_000);
    assert_eq!(s["psn_no"], PSN_NO);
    check_identities(s, &view["setldetail"]);
    let acct_pay = fen(&s["acct_pay"]);
    assert!(acct_pay > 0, "the bill is partly paid from the account");
    let after_first = oracle.balance_fen().await;
    assert_eq!(after_first, before - acct_pay);
    // Every step was journaled and acknowledged.
    let msgid = view["msgid"].as_str().unwrap().to_owned();
    assert_eq!(
        journal.get(&msgid).await.unwrap().unwrap().state,
        MessageState::Acknowledged
    );

    // 2. The 2207 reply is swallowed: unknown, a 2601 journaled.
    let accum_before = oracle.accumulators().await;
    relay.swallow.store(true, Ordering::SeqCst);
    let (status, view) = agent.post(&reader_path("/settle"), bill("B0002")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["outcome"], "unknown", "{view}");
    assert_eq!(view["step"], "2207");
    assert_eq!(relay.swallowed.load(Ordering::SeqCst), 1);
    let settle_msgid = view["msgid"].as_str().unwrap().to_owned();
    let reversal_msgid = view["reversal_msgid"].as_str().unwrap().to_owned();
    // The switch did settle it: the account was charged although the agent never heard.
    let charged = oracle.balance_fen().await;
    assert!(charged < after_first, "{charged} vs {after_first}");
    assert_ne!(oracle.accumulators().await, accum_before);

    // 3. The agent stops; the relay is restored; the agent restarts on the same journal file.
    drop(agent);
    journal.close().await;
    drop(journal);
    relay.swallow.store(false, Ordering::SeqCst);
    let journal = Journal::open(&journal_path).await.unwrap();
    let queued = journal.get(&reversal_msgid).await.unwrap().unwrap();
    assert_eq!(queued.state, MessageState::Queued);
    let run = tokio::spawn(forwarder::run(
        journal.clone(),
        client(&relay.base()),
        Backoff::new(100, 1_000),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while journal.get(&reversal_msgid).await.unwrap().unwrap().state != MessageState::Acknowledged {
        assert!(Instant::now() < deadline, "the 2601 never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.abort();

    // 4. The switch's view: the settlement is reversed, exactly once.
    assert_eq!(oracle.balance_fen().await, after_first);
    assert_eq!(oracle.accumulators().await, accum_before);
    let body = journal.get(&reversal_msgid).await.unwrap().unwrap().body;
    let resent = client(&direct).call(&body).await.unwrap();
    assert_eq!(resent.infcode, 0);
    assert_eq!(
        resent.output["data"]["rslt"], "reversed",
        "{}",
        resent.output
    );
    assert_eq!(resent.output["data"]["omsgid"], settle_msgid.as_str());
    let again = oracle
        .ask(
            "2601",
            json!({"data": {"psn_no": PSN_NO, "omsgid": settle_msgid, "oinfno": "2207"}}),
        )
        .await;
    assert_eq!(again.infcode, 0, "{:?}", again.err_msg);
    assert_eq!(again.output["data"]["rslt"], "already_reversed");
    assert_eq!(oracle.balance_fen().await, after_first);
    assert_eq!(oracle.accumulators().await, accum_before);
    // A resend of the swallowed 2207 itself is answered from the switch's record, and does
    // not charge again.
    let original = journal.get(&settle_msgid).await.unwrap().unwrap();
    assert_eq!(original.state, MessageState::Unknown);
    let _ = client(&direct).call(&original.body).await.unwrap();
    assert_eq!(oracle.balance_fen().await, after_first);
    journal.close().await;
}
