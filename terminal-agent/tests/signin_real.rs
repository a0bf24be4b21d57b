//! Card sign-in end to end (issue 8) on the real stack: pcscd + vpcd slot "Virtual PCD 00 01" +
//! `ssc-vcard` with fixtures/cards/tianjin-3g.toml → the agent's `POST /v1/readers/{name}/signin`
//! → a real `settlement serve --hsm-dir` (its own process, in-process hsm holding the fixture
//! internal-authentication master, gateway authentication on).
//!
//! Between agent and node sits a small HTTP proxy written here that can tamper with the
//! agent's sign-in: flip one bit of the card's answer (→ `card_not_genuine`), hold the answer
//! past the challenge's life (→ `challenge_expired`), or keep a copy that the test replays to
//! the node (→ `challenge_used`). The token the agent returns is verified by the node and
//! opens the holder's own data (masked ID number from the card image, read here as TOML).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The slot lock is a std mutex held for the whole test (tests/common), across awaits on purpose.
#![allow(clippy::await_holding_lock)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{Agent, insert, reader_path, slot_lock};
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use serde_json::{Value, json};
use terminal_agent::api::signin::{self, SigninContext};
use terminal_agent::authority::Authority;
use terminal_agent::journal::switch::{GatewayCredentials, PaasToken, gateway_signature};

const PAAS_ID: &str = "kiosk01";
const PAAS_TOKEN: &str = "kiosk01-test-token";
const CARD: &str = "tianjin-3g.toml";
/// The node's challenge life in this test, ms.
const CHALLENGE_TTL_MS: u64 = 1_500;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

struct Node {
    child: Child,
    port: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An hsm data directory holding the card image's internal-authentication master
/// (`ssc-int-auth`, usage 10), under the LMK in `lmk_file`.
fn prepare_hsm(dir: &Path, lmk_file: &Path) {
    let lmk_hex = "5a".repeat(32);
    std::fs::write(lmk_file, &lmk_hex).unwrap();
    // The hsm refuses an LMK file others can read.
    std::fs::set_permissions(
        lmk_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let lmk = hsm::lmk::Lmk::from_hex(&lmk_hex).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir, lmk).unwrap();
    let master =
        common::field(&common::image(CARD), "keys", "ssse_internal_auth_master").to_owned();
    let header = KeyHeader {
        alias: "ssc-int-auth".into(),
        algorithm: KeyAlgorithm::Sm4,
        usage: KeyUsage::SscInternalAuth,
        mode: ModeOfUse::X,
        version: *b"00",
        exportability: Exportability::NonExportable,
    };
    hsm.import_key_components("test", header, &[&hex::decode(master).unwrap()], None)
        .unwrap();
}

async fn start_node(data: &Path) -> Node {
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
    let hsm_dir = data.join("hsm");
    std::fs::create_dir_all(&hsm_dir).unwrap();
    let lmk_file = data.join("lmk.hex");
    prepare_hsm(&hsm_dir, &lmk_file);
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
        .arg("--hsm-dir")
        .arg(&hsm_dir)
        .arg("--lmk-file")
        .arg(&lmk_file)
        .args(["--challenge-ttl-ms", &CHALLENGE_TTL_MS.to_string()])
        .env_remove("DATABASE_URL")
        .env_remove("HSM_LMK_HEX")
        .env("SETTLEMENT_PAAS", format!("{PAAS_ID}={PAAS_TOKEN}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/identity/v1/jwks")).await
            && r.status().is_success()
        {
            return node;
        }
        assert!(Instant::now() < deadline, "settlement serve never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the proxy does to the next sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pass,
    FlipAnswer,
    HoldPastTtl,
}

#[derive(Clone)]
struct Proxy {
    node: String,
    mode: Arc<Mutex<Mode>>,
    /// The last sign-in body the agent sent.
    last_signin: Arc<Mutex<Option<Value>>>,
}

async fn forward(
    State(proxy): State<Proxy>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut body = body.to_vec();
    if path == "/identity/v1/signin" {
        let mut value: Value = serde_json::from_slice(&body).unwrap();
        *proxy.last_signin.lock().unwrap() = Some(value.clone());
        let mode = *proxy.mode.lock().unwrap();
        match mode {
            Mode::Pass => {}
            Mode::FlipAnswer => {
                let answer = value["answer"].as_str().unwrap();
                let mut bytes = hex::decode(answer).unwrap();
                bytes[15] ^= 0x80;
                value["answer"] = json!(hex::encode_upper(bytes));
            }
            Mode::HoldPastTtl => {
                tokio::time::sleep(Duration::from_millis(CHALLENGE_TTL_MS + 300)).await;
            }
        }
        body = serde_json::to_vec(&value).unwrap();
    }
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", proxy.node))
        .header("content-type", "application/json")
        .body(body);
    for name in [
        "x-tif-paasid",
        "x-tif-timestamp",
        "x-tif-nonce",
        "x-tif-signature",
    ] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.to_str().unwrap());
        }
    }
    let reply = request.send().await.unwrap();
    let status = StatusCode::from_u16(reply.status().as_u16()).unwrap();
    (status, reply.bytes().await.unwrap()).into_response()
}

async fn start_proxy(node_port: u16) -> (String, Proxy) {
    let proxy = Proxy {
        node: format!("http://127.0.0.1:{node_port}"),
        mode: Arc::new(Mutex::new(Mode::Pass)),
        last_signin: Arc::new(Mutex::new(None)),
    };
    let app = axum::Router::new()
        .fallback(axum::routing::post(forward))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, proxy)
}

/// The gateway headers, computed here (medical-settlement.md §1.0).
fn gateway_headers(nonce: &str) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = gateway_signature(&now, &PaasToken::new(PAAS_TOKEN.into()), nonce);
    vec![
        ("x-tif-paasid", PAAS_ID.to_owned()),
        ("x-tif-timestamp", now),
        ("x-tif-nonce", nonce.to_owned()),
        ("x-tif-signature", signature),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_signin_through_the_agent_gives_a_token_the_node_accepts() {
    let _slot = slot_lock();
    let data = tempfile::tempdir().unwrap();
    let node = start_node(data.path()).await;
    let node_url = format!("http://127.0.0.1:{}", node.port);
    let (proxy_url, proxy) = start_proxy(node.port).await;
    signin::configure(SigninContext {
        node_url: proxy_url,
        credentials: Some(GatewayCredentials {
            paas_id: PAAS_ID.into(),
            token: PaasToken::new(PAAS_TOKEN.into()),
        }),
        timeout_ms: 10_000,
    });
    let _card = insert(CARD);
    let agent = Agent::start(Authority::none(), 10_000).await;
    agent.wait_listed(true).await;
    let path = reader_path("/signin");

    // 1. Card + PIN (the image's PIN) → a token with acr card+pin.
    let (status, issued) = agent.post(&path, json!({ "pin": "123456" })).await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["acr"], "card+pin");
    assert!(issued["apdus"].as_u64().unwrap() >= 10, "{issued}");
    let token = issued["token"].as_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let verified: Value = client
        .post(format!("{node_url}/identity/v1/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verified["active"], true, "{verified}");
    assert_eq!(verified["admdvs"], "120000");
    let me = client
        .get(format!("{node_url}/identity/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    let ssn = common::field(&common::image(CARD), "ssse", "ssn").to_owned();
    assert_eq!(
        me["profile"]["certno_masked"],
        format!("{}********{}", &ssn[..6], &ssn[14..])
    );

    // 2. The agent's exact request replayed to the node: the challenge is spent.
    let replayed = proxy.last_signin.lock().unwrap().clone().unwrap();
    let mut request = client
        .post(format!("{node_url}/identity/v1/signin"))
        .json(&replayed);
    for (name, value) in gateway_headers("replay-1") {
        request = request.header(name, value);
    }
    let reply = request.send().await.unwrap();
    assert_eq!(reply.status(), 409);
    let reply: Value = reply.json().await.unwrap();
    assert_eq!(reply["code"], "challenge_used");

    // 3. One bit of the card's answer changed on the way: the hsm refuses it.
    *proxy.mode.lock().unwrap() = Mode::FlipAnswer;
    let (status, refused) = agent.post(&path, json!({})).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("card_not_genuine")),
        "{refused}"
    );

    // 4. The answer arrives after the challenge's life.
    *proxy.mode.lock().unwrap() = Mode::HoldPastTtl;
    let (status, refused) = agent.post(&path, json!({})).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (410, Some("challenge_expired")),
        "{refused}"
    );

    // 5. Back to normal: card only, and the node's sign-out ends the token.
    *proxy.mode.lock().unwrap() = Mode::Pass;
    let (status, issued) = agent.post(&path, json!({})).await;
    assert_eq!(
        (status, issued["acr"].as_str()),
        (201, Some("card")),
        "{issued}"
    );
    let token = issued["token"].as_str().unwrap();
    let out = client
        .post(format!("{node_url}/identity/v1/signout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let me = client
        .get(format!("{node_url}/identity/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401);
    drop(node);
}
