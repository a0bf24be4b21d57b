//! Helpers shared by the integration tests: the virtual card process (`ssc-vcard`, built once),
//! the card images parsed independently of card-core (plain TOML), an in-process HSM holding
//! an image's test keys, the agent served on a loopback port, and a vpcd relay that injects
//! faults (a stalled card, a card pulled after N APDUs).
//!
//! **Reader and port**: these tests use vpcd's second slot only, "Virtual PCD 00 01" on port
//! 35964; slot 00 00 (35963) belongs to card-core's tests. Tests that use the slot take
//! [`slot_lock`] so they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod agent_process;
pub mod expect;
pub mod http_relay;
pub mod payment_switch;
pub mod pcscd;
pub mod relay;
#[path = "../../../tests/support/workspace_build.rs"]
pub mod workspace_build;

pub use workspace_build::workspace_binary;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use terminal_agent::api::{self, ApiSettings, AppState};
use terminal_agent::authority::{Authority, AuthorityKeys};
use terminal_agent::reader::pcsc_backend::PcscBackend;
use terminal_agent::reader::{BackendFactory, CardBackend, Readers, ReadersConfig, Watcher};

/// The reader the agent tests use (vpcd slot 2).
pub const READER: &str = "Virtual PCD 00 01";
/// vpcd's port for [`READER`].
pub const VPCD_PORT: u16 = 35964;
/// The fixture images.
pub const IMAGES: [&str; 3] = ["beijing-2g.toml", "tianjin-3g.toml", "hebei-3g.toml"];
/// Bound on waiting for pcscd to notice a card (it polls vpcd about every 400 ms, limits.md §4).
pub const CARD_WAIT_MS: u64 = 10_000;

/// Serialises the tests that use [`READER`].
pub fn slot_lock() -> MutexGuard<'static, ()> {
    static SLOT: Mutex<()> = Mutex::new(());
    SLOT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn image_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cards")
        .join(name)
}

/// The image as plain TOML (parsed without card-core, so expectations are independent).
pub fn image(name: &str) -> toml::Table {
    std::fs::read_to_string(image_path(name))
        .unwrap()
        .parse()
        .unwrap()
}

pub fn field<'a>(t: &'a toml::Table, section: &str, key: &str) -> &'a str {
    t[section][key].as_str().unwrap()
}

/// The ATR's historical bytes in hex, taken independently of the agent's parser: the images'
/// ATRs have no TD1 (no TCK), so the K historical bytes (T0 & 0F) are the ATR's last K bytes.
pub fn historical_hex(t: &toml::Table) -> String {
    let atr = hex::decode(t["atr"].as_str().unwrap().replace(' ', "")).unwrap();
    assert_eq!(atr[1] & 0x80, 0, "image ATR has TD1; adapt the test");
    let k = usize::from(atr[1] & 0x0F);
    hex::encode_upper(&atr[atr.len() - k..])
}

/// Path of `ssc-vcard` ([`workspace_binary`]).
pub fn vcard_binary() -> PathBuf {
    workspace_binary("ssc-vcard")
}

/// A running `ssc-vcard`; killed when dropped.
pub struct VirtualCardProcess(Child);

impl VirtualCardProcess {
    /// Starts the card on `image_name`, connecting to vpcd at `port`.
    pub fn start(image_name: &str, port: u16) -> Self {
        let child = Command::new(vcard_binary())
            .args(["--image", image_path(image_name).to_str().unwrap()])
            .args(["--vpcd", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ssc-vcard");
        Self(child)
    }

    /// Kills the process (the card leaves the reader).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for VirtualCardProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (bounded) until pcscd reports [`READER`] `present` or not.
pub fn wait_card(present: bool) {
    let ctx = pcsc::Context::establish(pcsc::Scope::User).unwrap_or_else(|e| {
        panic!("cannot reach pcscd ({e}); run scripts/ensure-pcsc (pcscd + vsmartcard-vpcd)")
    });
    let reader = std::ffi::CString::new(READER).unwrap();
    let mut states = [pcsc::ReaderState::new(reader, pcsc::State::UNAWARE)];
    let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
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
            "{READER}: card present={is_present}, wanted {present} within {CARD_WAIT_MS} ms"
        );
        states[0].sync_current_state();
    }
}

/// Inserts the card and waits until pcscd sees it.
pub fn insert(image_name: &str) -> VirtualCardProcess {
    wait_card(false);
    let card = VirtualCardProcess::start(image_name, VPCD_PORT);
    wait_card(true);
    card
}

/// An in-process HSM in a temporary directory holding `image`'s two SSSE master keys (test keys
/// from the image file) as `ssc-ext-auth` (usage 11) and `ssc-int-auth` (usage 10).
pub fn hsm_for(image_name: &str) -> (tempfile::TempDir, hsm::ops::Hsm) {
    let t = image(image_name);
    let masters = t.get("keys").and_then(|k| k.as_table()).map(|keys| {
        (
            keys["ssse_external_auth_master"]
                .as_str()
                .unwrap()
                .to_owned(),
            keys["ssse_internal_auth_master"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    });
    match masters {
        Some((external, internal)) => hsm_with_masters(&external, &internal),
        None => hsm_with_masters_opt(None),
    }
}

/// An HSM holding these SSC authentication masters (32 hex digits each) as `ssc-ext-auth` and
/// `ssc-int-auth`.
pub fn hsm_with_masters(
    external_hex: &str,
    internal_hex: &str,
) -> (tempfile::TempDir, hsm::ops::Hsm) {
    hsm_with_masters_opt(Some((external_hex, internal_hex)))
}

fn hsm_with_masters_opt(masters: Option<(&str, &str)>) -> (tempfile::TempDir, hsm::ops::Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let lmk = hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir.path(), lmk).unwrap();
    if let Some((external_hex, internal_hex)) = masters {
        for (alias, usage, key) in [
            ("ssc-ext-auth", KeyUsage::SscExternalAuth, external_hex),
            ("ssc-int-auth", KeyUsage::SscInternalAuth, internal_hex),
        ] {
            let bytes = hex::decode(key).unwrap();
            let header = KeyHeader {
                alias: alias.into(),
                algorithm: KeyAlgorithm::Sm4,
                usage,
                mode: ModeOfUse::X,
                version: *b"00",
                exportability: Exportability::NonExportable,
            };
            hsm.import_key_components("test", header, &[&bytes], None)
                .unwrap();
        }
    }
    (dir, hsm)
}

pub fn keys() -> AuthorityKeys {
    AuthorityKeys {
        external_auth_alias: "ssc-ext-auth".into(),
        internal_auth_alias: Some("ssc-int-auth".into()),
    }
}

/// The in-process authority for `image_name` (its TempDir must outlive it).
pub fn authority_for(image_name: &str) -> (tempfile::TempDir, Authority) {
    let (dir, hsm) = hsm_for(image_name);
    (
        dir,
        Authority::in_process(Arc::new(Mutex::new(hsm)), "terminal-agent-test", keys()),
    )
}

pub fn settings(card_timeout_ms: u64) -> ApiSettings {
    ApiSettings {
        card_timeout_ms,
        terminal_no: "T0001".into(),
        device_no: "D0001".into(),
        default_reader: None,
    }
}

/// The agent on the real PC/SC stack, served on 127.0.0.1:<ephemeral>; stops when dropped.
pub struct Agent {
    pub base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Agent {
    pub async fn start(authority: Authority, card_timeout_ms: u64) -> Self {
        let watcher = Watcher::start_pcsc(100).unwrap();
        let factory: Arc<dyn BackendFactory> =
            Arc::new(|| Box::new(PcscBackend::new()) as Box<dyn CardBackend>);
        let readers = Arc::new(Readers::new(
            factory,
            ReadersConfig::default(),
            Some(watcher),
        ));
        let state = AppState {
            readers,
            authority,
            settings: settings(card_timeout_ms),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, api::app(state)).await.unwrap();
        });
        let agent = Self { base, server };
        // Wait until the watcher has listed the readers.
        let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
        loop {
            let readers: serde_json::Value = agent.get("/v1/readers").await.1;
            if readers
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["name"] == READER))
            {
                return agent;
            }
            assert!(Instant::now() < deadline, "the agent never listed {READER}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Waits until the agent's reader list shows the card `present`.
    pub async fn wait_listed(&self, present: bool) {
        let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
        loop {
            let (_, readers) = self.get("/v1/readers").await;
            let listed = readers
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == READER && r["card_present"] == present);
            if listed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent never showed card_present={present}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `path`'s URL form of the reader name.
pub fn reader_path(suffix: &str) -> String {
    format!("/v1/readers/{}{suffix}", READER.replace(' ', "%20"))
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
