//! A reader appearing after the agent started, on the real PC/SC stack: `terminal-agent serve`
//! (its own process) is started first, pointed at a private pcscd that is not running yet
//! (SCARD_E_NO_SERVICE); the test then starts that pcscd with a vpcd reader on free ports,
//! plugs `ssc-vcard` into it and reads the card through the agent's HTTP API; stops pcscd
//! (the agent's contexts die with it, its reader list empties) and starts it again with another
//! reader, which the agent lists and reads as well. The system's pcscd is not touched ([`common::pcscd`]).
//!
//! Expected values come from the card image read as plain TOML, not through card-core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::agent_process::{AgentProcess, reader_url};
use common::pcscd::{PcscdHome, free_vpcd_port};
use common::{VirtualCardProcess, field, image};
use serde_json::{Value, json};

const CARD: &str = "beijing-2g.toml";
/// Bound on the agent noticing a reader or a card (pcscd polls vpcd about every 400 ms; the
/// watcher retries a missing pcscd at most every 2 s).
const WAIT_MS: u64 = 15_000;

/// Reads the SSE stream until an event of `kind` for `reader` arrives (bounded).
async fn next_event(
    agent: &AgentProcess,
    response: &mut reqwest::Response,
    buffer: &mut String,
    kind: &str,
    reader: &str,
) -> Value {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block = buffer[..end].to_owned();
            buffer.replace_range(..end + 2, "");
            let is_kind = block.lines().any(|l| l == format!("event: {kind}"));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (true, Some(data)) = (is_kind, data) {
                let event: Value = serde_json::from_str(data).unwrap();
                if event["reader"] == reader {
                    return event;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {kind} event for {reader} within {WAIT_MS} ms; the agent's log:\n{}",
            agent.log_text()
        );
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, response.chunk()).await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Reads the card in `reader` through the agent and checks the identity against the image.
async fn read_and_check(agent: &AgentProcess, reader: &str) {
    let t = image(CARD);
    let (status, view) = agent.get(&reader_url(reader, "/card?reveal=true")).await;
    assert_eq!(status, 200, "{view}\n{}", agent.log_text());
    let id = &view["identity"];
    assert_eq!(id["card_id"], field(&t, "ssse", "card_id"));
    assert_eq!(id["card_number"], field(&t, "ssse", "card_no"));
    assert_eq!(id["spec_version"], field(&t, "ssse", "spec_version"));
    assert_eq!(view["holder"]["ssn"], field(&t, "ssse", "ssn"));
    // The unified interface on the same reader: 卡号 is the third field.
    let (_, reply) = agent
        .post("/v1/iReadCardBas", json!({"iType": 1, "reader": reader}))
        .await;
    assert_eq!(reply["ret"], 0, "{reply}");
    let out = reply["out"].as_str().unwrap();
    assert_eq!(
        out.split('|').nth(2),
        Some(field(&t, "ssse", "card_no")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_appearing_after_the_agent_started_is_listed_and_read() {
    let home = PcscdHome::new();
    let agent_dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        &[
            (
                "PCSCLITE_CSOCK_NAME",
                home.socket().to_str().unwrap().to_owned(),
            ),
            (
                "TERMINAL_AGENT_DATA_DIR",
                agent_dir.path().to_str().unwrap().to_owned(),
            ),
        ],
        &agent_dir.path().join("agent.log"),
    )
    .await;

    // 1. No pcscd behind the agent: it serves, lists no reader, and a read is refused at once.
    assert!(!home.socket().exists());
    assert_eq!(agent.readers().await, vec![]);
    let late = "Late PCD 00 00";
    let started = Instant::now();
    let (status, body) = agent.get(&reader_url(late, "/card")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("reader_not_found")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    let mut events = reqwest::get(format!("{}/v1/events", agent.base))
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut buffer = String::new();

    // 2. pcscd starts with one vpcd reader (two slots): the agent lists both and announces them.
    let late_port = free_vpcd_port();
    let pcscd = home.start(&[("Late PCD", late_port)]);
    next_event(&agent, &mut events, &mut buffer, "reader_added", late).await;
    agent
        .wait_readers(&[(late, false), ("Late PCD 00 01", false)], WAIT_MS)
        .await;
    let (status, body) = agent.get(&reader_url(late, "/card")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("no_card")),
        "{body}"
    );
    // The card goes into the new reader: announced with its ATR, and read.
    let mut card = VirtualCardProcess::start(CARD, late_port);
    let inserted = next_event(&agent, &mut events, &mut buffer, "card_inserted", late).await;
    let atr = image(CARD)["atr"]
        .as_str()
        .unwrap()
        .replace(' ', "")
        .to_uppercase();
    assert_eq!(inserted["atr"], atr.as_str());
    agent
        .wait_readers(&[(late, true), ("Late PCD 00 01", false)], WAIT_MS)
        .await;
    read_and_check(&agent, late).await;
    card.kill();

    // 3. pcscd stops: the readers are gone from the agent's list, reads are refused, no hang.
    pcscd.stop();
    next_event(&agent, &mut events, &mut buffer, "reader_removed", late).await;
    agent.wait_readers(&[], WAIT_MS).await;
    let started = Instant::now();
    let (status, _) = agent.get(&reader_url(late, "/card")).await;
    assert_eq!(status, 404);
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");

    // 4. pcscd comes back with another reader (vpcd's driver serves one reader line per pcscd,
    // so the new reader takes the old one's place): the agent's old contexts are dead; it
    // establishes new ones, lists the new reader's two slots and reads a card in each.
    let hot_port = free_vpcd_port();
    let pcscd = home.start(&[("Hotplug PCD", hot_port)]);
    let hot = "Hotplug PCD 00 00";
    let hot_second = "Hotplug PCD 00 01";
    next_event(&agent, &mut events, &mut buffer, "reader_added", hot).await;
    agent
        .wait_readers(&[(hot, false), (hot_second, false)], WAIT_MS)
        .await;
    let mut card = VirtualCardProcess::start(CARD, hot_port);
    next_event(&agent, &mut events, &mut buffer, "card_inserted", hot).await;
    read_and_check(&agent, hot).await;
    let mut second = VirtualCardProcess::start(CARD, hot_port + 1);
    next_event(
        &agent,
        &mut events,
        &mut buffer,
        "card_inserted",
        hot_second,
    )
    .await;
    read_and_check(&agent, hot_second).await;
    card.kill();
    second.kill();
    next_event(&agent, &mut events, &mut buffer, "card_removed", hot).await;
    pcscd.stop();
    agent.wait_readers(&[], WAIT_MS).await;
    drop(agent);
}
