//! End to end on the real stack: the virtual card (`ssc-vcard`, fixtures/cards/beijing-2g.toml)
//! in pcscd via vpcd → terminal-agent's purchase flow (PC/SC backend) → the switch's HTTP API →
//! hsm (ARQC, MAC, ARPC) → the Python issuer simulator over ISO 8583 and back → EXTERNAL
//! AUTHENTICATE and the second GENERATE AC on the card: TC when approved, AAC when declined.
//!
//! Needs pcscd with the vpcd driver (scripts/ensure-pcsc) and the simulator's Python packages
//! (scripts/ensure-python-deps). Uses "Virtual PCD 00 01" (vpcd port 35964) like
//! terminal-agent's real-stack tests; test binaries run one after another, and the tests in
//! this binary take [`SLOT`] so they run one at a time too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::await_holding_lock)]

mod payments_support;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use card_core::pboc::CryptogramType;
use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, workspace};
use terminal_agent::payment::{self, PurchaseSetup, SwitchEndpoint};
use terminal_agent::reader::pcsc_backend::PcscBackend;
use terminal_agent::reader::{BackendFactory, CardBackend, Readers, ReadersConfig, Watcher};

const READER: &str = "Virtual PCD 00 01";
const VPCD_PORT: u16 = 35964;
static SLOT: Mutex<()> = Mutex::new(());

struct Card(Child);

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_card(present: bool) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .expect("pcscd is not reachable; run scripts/ensure-pcsc");
    let reader = std::ffi::CString::new(READER).unwrap();
    let mut states = [pcsc::ReaderState::new(reader, pcsc::State::UNAWARE)];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ctx.get_status_change(Duration::from_millis(200), &mut states) {
            Ok(()) | Err(pcsc::Error::Timeout) => {}
            Err(e) => panic!("{READER} not usable ({e}); run scripts/ensure-pcsc"),
        }
        let event = states[0].event_state();
        let is_present = event.contains(pcsc::State::PRESENT);
        if is_present == present && !(present && event.contains(pcsc::State::MUTE)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "card present={is_present}, wanted {present}"
        );
        states[0].sync_current_state();
    }
}

fn insert(image: &str) -> Card {
    wait_card(false);
    let child = Command::new(payments_support::workspace_build::workspace_binary(
        "ssc-vcard",
    ))
    .args([
        "--image",
        workspace()
            .join("fixtures/cards")
            .join(image)
            .to_str()
            .unwrap(),
    ])
    .args(["--vpcd", &format!("127.0.0.1:{VPCD_PORT}")])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let card = Card(child);
    wait_card(true);
    card
}

fn setup(amount_fen: i64) -> PurchaseSetup {
    PurchaseSetup {
        amount_fen,
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        merchant_name: "TEST PHARMACY".into(),
        date: [0x26, 0x11, 0x30],
        time: [0x12, 0x00, 0x00],
        unpredictable_number: [0xA1, 0xB2, 0xC3, 0xD4],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_to_issuer_and_back_approved_and_declined() {
    let _slot = SLOT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _card = insert("beijing-2g.toml");
    let dir = tempfile::tempdir().unwrap();
    let (_hsm_dir, hsm) = payments_support::hsm();
    let sim_a = BankSim::start(dir.path().join("a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch = payments_support::switch(
        dir.path(),
        Arc::new(Mutex::new(hsm)),
        sim_a.port,
        sim_b.port,
        "bank-a-zak",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = settlement::payments::api::router(switch.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let watcher = Watcher::start_pcsc(100).unwrap();
    let factory: Arc<dyn BackendFactory> =
        Arc::new(|| Box::new(PcscBackend::new()) as Box<dyn CardBackend>);
    let readers = Arc::new(Readers::new(
        factory,
        ReadersConfig::default(),
        Some(watcher),
    ));
    // Bounded wait until the agent's watcher lists the reader with the card in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = readers.watcher().unwrap().snapshot();
        if snapshot.has_reader(READER) && snapshot.card_atr(READER).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher never listed {READER} with a card"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = SwitchEndpoint {
        url: url.clone(),
        timeout_ms: 15_000,
        pan_key_sm3: None,
    };
    let client = reqwest::Client::new();

    // Approved: 12 300 fen (the simulator approves amounts not ending in 05/10/51/55/97-99).
    let r = payment::purchase(
        &readers,
        READER,
        client.clone(),
        endpoint.clone(),
        setup(12_300),
    )
    .await
    .unwrap();
    let answer = r.answer.clone().unwrap();
    assert_eq!(answer.response_code, "00");
    assert_eq!(answer.approved_fen, 12_300);
    assert_eq!(
        r.completion.issuer_authenticated,
        Some(true),
        "the card accepted the ARPC"
    );
    assert_eq!(r.completion.cryptogram, CryptogramType::Tc);

    // Declined for insufficient funds (amount ending in 51): the ARPC still authenticates the
    // issuer, and the card ends with AAC.
    let r = payment::purchase(
        &readers,
        READER,
        client.clone(),
        endpoint.clone(),
        setup(8_851),
    )
    .await
    .unwrap();
    assert_eq!(r.answer.as_ref().unwrap().response_code, "51");
    assert_eq!(r.completion.issuer_authenticated, Some(true));
    assert_eq!(r.completion.cryptogram, CryptogramType::Aac);

    // The issuer saw both, with the card's last four digits (beijing-2g PAN ends 7653).
    let auths: Vec<_> = sim_a
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "auth")
        .collect();
    let seen: Vec<(i64, &str, &str)> = auths
        .iter()
        .map(|e| {
            (
                e["amount"].as_i64().unwrap(),
                e["rc"].as_str().unwrap(),
                e["pan4"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, vec![(12_300, "00", "7653"), (8_851, "51", "7653")]);
    // The same through the agent's HTTP API (POST /v1/readers/{name}/purchase).
    terminal_agent::api::payment::configure(terminal_agent::api::payment::PaymentConfig {
        switch_url: url,
        terminal_id: "BJ000001".into(),
        merchant_id: MERCHANT.into(),
        merchant_name: "TEST PHARMACY".into(),
        timeout_ms: 15_000,
        // Pinned as a terminal off this machine must be: the fingerprint of the switch's key.
        pan_key_sm3: Some(hsm::sm::sm3_digest(
            &switch.pan_public_key().unwrap().unwrap(),
        )),
    });
    let hsm_dir = tempfile::tempdir().unwrap();
    let agent_hsm = hsm::ops::Hsm::open(
        hsm_dir.path(),
        hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap(),
    )
    .unwrap();
    let state = terminal_agent::api::AppState {
        readers: readers.clone(),
        authority: terminal_agent::authority::Authority::in_process(
            Arc::new(Mutex::new(agent_hsm)),
            "agent",
            terminal_agent::authority::AuthorityKeys {
                external_auth_alias: "ssc-ext-auth".into(),
                internal_auth_alias: None,
            },
        ),
        settings: terminal_agent::api::ApiSettings {
            card_timeout_ms: 20_000,
            terminal_no: "T0001".into(),
            device_no: "D0001".into(),
            default_reader: None,
        },
    };
    let agent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}", agent_listener.local_addr().unwrap());
    let agent = tokio::spawn(async move {
        axum::serve(agent_listener, terminal_agent::api::app(state))
            .await
            .unwrap()
    });
    let reply: serde_json::Value = client
        .post(format!(
            "{agent_url}/v1/readers/Virtual%20PCD%2000%2001/purchase"
        ))
        .json(&serde_json::json!({"amount_fen": 2_300}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["response_code"], "00", "{reply}");
    assert_eq!(reply["approved_fen"], 2_300);
    assert_eq!(reply["card_result"], "TC");
    assert_eq!(reply["issuer_authenticated"], true);
    agent.abort();

    let day = settlement::payments::Moment::now().business_date();
    let cut = switch.cut_off(&day).await.unwrap();
    assert_eq!(cut[0].net_fen, 12_300 + 2_300);
    server.abort();
}
