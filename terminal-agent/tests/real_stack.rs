//! Fault tests on the real stack: pcscd + vsmartcard's vpcd + `ssc-vcard` → terminal-agent
//! (PC/SC backend, watcher, in this process) → its HTTP API over loopback. Expected values are
//! read from the card image files with a plain TOML parser, not through card-core. (Each
//! fixture card read field by field through the agent's own process, on a pcscd the test
//! starts itself: tests/fixture_cards.rs.)
//!
//! Needs pcscd with the vpcd driver (scripts/ensure-pcsc; scripts/check runs it first): without
//! it these tests fail with a message saying so. They use "Virtual PCD 00 01" (vpcd port 35964)
//! only, one at a time ([`common::slot_lock`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The slot lock is held on purpose for a whole test; each test has its own runtime, so no other
// task waits on it from the same executor.
#![allow(clippy::await_holding_lock)]

mod common;

use std::time::{Duration, Instant};

use common::expect::{full_name, masked};
use common::relay::{Fault, Relay};
use common::*;
use serde_json::{Value, json};
use terminal_agent::authority::Authority;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_generation_card_without_hsm_answers_2201() {
    let _slot = slot_lock();
    let _card = insert("tianjin-3g.toml");
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(true).await;
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("hsm_unavailable")),
        "{body}"
    );
    let (_, reply) = agent.post("/v1/iReadCardBas", json!({"iType": 1})).await;
    // ssc-card.md §6: −2201 no PSAM (here: no HSM).
    assert_eq!(reply["ret"], -2201, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_wrong_pins_block_the_card_with_tries_left_at_each_step() {
    let _slot = slot_lock();
    let name = "tianjin-3g.toml";
    let t = image(name);
    let tries_max = t["pin"]["tries_max"].as_integer().unwrap();
    assert_eq!(tries_max, 3, "the test expects the image's 3 tries");
    let pin = field(&t, "pin", "value");
    // A fresh card process: PIN state lives in the process.
    let _card = insert(name);
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(true).await;
    let path = reader_path("/verify-pin");
    let (status, body) = agent.post(&path, json!({"pin": pin})).await;
    assert_eq!((status, &body["verified"]), (200, &json!(true)), "{body}");
    for left in [2, 1] {
        let (status, body) = agent.post(&path, json!({"pin": "000000"})).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "pin_wrong");
        assert_eq!(body["tries_left"], left);
        assert!(!body.to_string().contains(pin) && !body.to_string().contains("000000"));
    }
    let (status, body) = agent.post(&path, json!({"pin": "000000"})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (423, Some("pin_blocked")),
        "{body}"
    );
    assert_eq!(body["tries_left"], 0);
    // Blocked: even the right PIN is refused now (6983).
    let (status, body) = agent.post(&path, json!({"pin": pin})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (423, Some("pin_blocked")),
        "{body}"
    );
    // The unified interface says the same: −52 PIN locked (ssc-card.md §6).
    let (_, reply) = agent
        .post("/v1/iVerifyPIN", json!({"iType": 1, "pin": pin}))
        .await;
    assert_eq!(reply["ret"], -52, "{reply}");
    // A malformed PIN never reaches the card.
    let (status, body) = agent.post(&path, json!({"pin": "12a4"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("pin_format")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn i_verify_pin_reports_tries_left_then_success() {
    let _slot = slot_lock();
    let name = "beijing-2g.toml";
    let pin = field(&image(name), "pin", "value").to_owned();
    let _card = insert(name);
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(true).await;
    let tries_max = image(name)["pin"]["tries_max"].as_integer().unwrap();
    let (_, reply) = agent
        .post("/v1/iVerifyPIN", json!({"iType": 1, "pin": "999999"}))
        .await;
    assert_eq!(reply["ret"], -51, "{reply}");
    assert_eq!(reply["tries_left"], tries_max - 1);
    let (_, reply) = agent
        .post("/v1/iVerifyPIN", json!({"iType": 1, "pin": pin}))
        .await;
    assert_eq!(reply["ret"], 0, "{reply}");
    let (_, reply) = agent
        .post("/v1/iVerifyPIN", json!({"iType": 9, "pin": pin}))
        .await;
    assert_eq!(reply["ret"], -14, "iType out of range: bad parameter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_asking_at_once_are_serialised_and_all_answered() {
    let _slot = slot_lock();
    wait_card(false);
    let name = "tianjin-3g.toml";
    // A pass-through relay records the order in which the card sees the commands.
    let relay = Relay::start(VPCD_PORT, Fault::None, 0);
    let _card = VirtualCardProcess::start(name, relay.card_port);
    wait_card(true);
    let (_dir, authority) = authority_for(name);
    let agent = Agent::start(authority, 10_000).await;
    agent.wait_listed(true).await;
    let path = reader_path("/card");
    // One read alone: the card's view of one read.
    let (status, view) = agent.get(&path).await;
    assert_eq!(status, 200, "{view}");
    let one = relay.take_headers();
    assert_eq!(one.len(), 20, "{one:02X?}");
    // Four reads of a 3.00 card at once: interleaved APDUs would break the GET CHALLENGE /
    // EXTERNAL AUTHENTICATE pairing (a challenge is single use) and the selected file.
    let (a, b, c, d) = tokio::join!(
        agent.get(&path),
        agent.get(&path),
        agent.get(&path),
        agent.get(&path)
    );
    let card_id = field(&image(name), "ssse", "card_id").to_owned();
    for (status, view) in [a, b, c, d] {
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["identity"]["card_id"], card_id.as_str());
        assert_eq!(view["apdus"], 20);
    }
    // Serialised: at the card, four whole reads one after the other, never interleaved.
    assert_eq!(relay.take_headers(), one.repeat(4));
    // Two clients of different interfaces at once: the unified interface and a REST read.
    let ((s1, v1), (s2, v2)) = tokio::join!(
        agent.post("/v1/iReadCardBas", json!({"iType": 1})),
        agent.get(&path)
    );
    assert_eq!((s1, &v1["ret"]), (200, &json!(0)), "{v1}");
    assert_eq!(
        v1["out"].as_str().unwrap().split('|').nth(3),
        Some(card_id.as_str())
    );
    assert_eq!(s2, 200, "{v2}");
    assert_eq!(v2["identity"]["card_id"], card_id.as_str());
    assert_eq!(relay.take_headers(), one.repeat(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_pulled_mid_read_is_a_clear_error_and_the_next_card_reads() {
    let _slot = slot_lock();
    wait_card(false);
    let name = "beijing-2g.toml";
    // The relay passes 5 APDUs (SELECT SSSE, SELECT EF05, 3 READ RECORD) then drops the card.
    let relay = Relay::start(VPCD_PORT, Fault::Pull, 5);
    let mut card = VirtualCardProcess::start(name, relay.card_port);
    wait_card(true);
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(true).await;
    let started = Instant::now();
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    assert!(
        relay.faulted.load(std::sync::atomic::Ordering::SeqCst),
        "the fault fired"
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        matches!(body["code"].as_str(), Some("card_removed" | "no_card")),
        "{body}"
    );
    card.kill();
    drop(relay);
    // Recovery: the next card reads.
    let _card = insert(name);
    agent.wait_listed(true).await;
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_card_times_out_without_hanging_and_the_agent_recovers() {
    let _slot = slot_lock();
    wait_card(false);
    let name = "beijing-2g.toml";
    let relay = Relay::start(VPCD_PORT, Fault::Stall, 4);
    let mut card = VirtualCardProcess::start(name, relay.card_port);
    wait_card(true);
    let timeout_ms = 1_500;
    let agent = Agent::start(Authority::none(), timeout_ms).await;
    agent.wait_listed(true).await;
    for _ in 0..2 {
        let started = Instant::now();
        let (status, body) = agent.get(&reader_path("/card")).await;
        let elapsed = started.elapsed();
        assert_eq!(
            (status, body["code"].as_str()),
            (504, Some("card_timeout")),
            "{body}"
        );
        assert!(
            elapsed >= Duration::from_millis(timeout_ms - 100),
            "{elapsed:?}"
        );
        assert!(
            elapsed < Duration::from_millis(timeout_ms + 1_500),
            "bounded: {elapsed:?}"
        );
    }
    // The kiosk pulls the stuck card; a new one reads.
    drop(relay);
    card.kill();
    let _card = insert(name);
    agent.wait_listed(true).await;
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(status, 200, "{body}");
}

/// Reads the SSE stream until an event of `kind` for [`READER`] arrives (bounded).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
    loop {
        if let Some(start) = buffer.find(&format!("event: {kind}\n")) {
            let rest = &buffer[start..];
            if let Some(end) = rest.find("\n\n") {
                let block = rest[..end].to_owned();
                buffer.replace_range(..start + end + 2, "");
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                let event: Value = serde_json::from_str(data).unwrap();
                if event["reader"] == READER {
                    return event;
                }
                continue;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {kind} event within {CARD_WAIT_MS} ms");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(left, response.chunk()).await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_appearing_after_the_agent_started_is_announced_and_read() {
    let _slot = slot_lock();
    wait_card(false);
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(false).await;
    let mut events = reqwest::get(format!("{}/v1/events", agent.base))
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut buffer = String::new();
    let inserted_at = Instant::now();
    let mut card = VirtualCardProcess::start("beijing-2g.toml", VPCD_PORT);
    let event = next_event(&mut events, &mut buffer, "card_inserted").await;
    let seen_ms = inserted_at.elapsed().as_millis();
    let atr = image("beijing-2g.toml")["atr"]
        .as_str()
        .unwrap()
        .replace(' ', "")
        .to_uppercase();
    assert_eq!(event["atr"], atr.as_str());
    eprintln!("card inserted → event in {seen_ms} ms (pcscd polls vpcd about every 400 ms)");
    let (_, readers) = agent.get("/v1/readers").await;
    assert!(
        readers
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == READER && r["card_present"] == true)
    );
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(status, 200, "{body}");
    card.kill();
    next_event(&mut events, &mut buffer, "card_removed").await;
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("no_card")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_reset_by_another_program_is_reconnected() {
    let _slot = slot_lock();
    let _card = insert("beijing-2g.toml");
    let agent = Agent::start(Authority::none(), 5_000).await;
    agent.wait_listed(true).await;
    let (status, _) = agent.get(&reader_path("/card")).await;
    assert_eq!(status, 200);
    // Another program resets the card: the agent's cached handle now gets SCARD_W_RESET_CARD.
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap();
    let reader = std::ffi::CString::new(READER).unwrap();
    let other = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    other
        .disconnect(pcsc::Disposition::ResetCard)
        .map_err(|(_, e)| e)
        .unwrap();
    let (status, body) = agent.get(&reader_path("/card")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = agent.get("/v1/readers/No%20Such%20Reader/card").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("reader_not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_reads_masked_and_serves() {
    let _slot = slot_lock();
    let name = "beijing-2g.toml";
    let t = image(name);
    let ssn = field(&t, "ssse", "ssn").to_owned();
    let _card = insert(name);
    let bin = env!("CARGO_BIN_EXE_terminal-agent");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (listing, _) = run(&["readers"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(READER) && l.contains("card ATR")),
        "{listing}"
    );
    let (masked_out, progress) = run(&["read", "--reader", READER]);
    assert!(masked_out.contains(&masked(&ssn, 6, 4)), "{masked_out}");
    assert!(
        !masked_out.contains(&ssn),
        "clear ID number without --reveal"
    );
    assert!(progress.contains("read in"), "{progress}");
    let (clear, _) = run(&["read", "--reader", READER, "--reveal"]);
    assert!(
        clear.contains(&ssn) && clear.contains(&full_name(&t)),
        "{clear}"
    );

    // `serve` on a free loopback port, configured by environment.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(bin)
        .arg("serve")
        .env("TERMINAL_AGENT_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
    let body = loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/v1/readers")).await {
            let v: Value = r.json().await.unwrap();
            if v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|r| r["name"] == READER && r["card_present"] == true)
            }) {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "serve never listed the card");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(body.to_string().contains(READER));
}
