//! The real card payment switch as its own process (`payment-switch`, settlement/src/bin), in
//! front of the Python issuer bank simulator (tests/bank-sim/bank_sim.py, pyiso8583: needs
//! scripts/ensure-python-deps), on an SQLite ledger the test can read afterwards.
//!
//! Keys (test keys only): the banks' MAC keys are this file's constants (the simulator is given
//! the same); each fixture card's issuer master key (`[pboc] issuer_master_key`) is read from
//! its image, under the alias fixtures/banks/routing.toml names for its BIN.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};

/// Bank A's MAC key (HSM alias `bank-a-zak`), test key.
pub const BANK_A_MAC_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";
/// Bank B's MAC key (HSM alias `bank-b-zak`), test key.
pub const BANK_B_MAC_KEY: &str = "89ABCDEF0123456776543210FEDCBA98";
/// The merchant of fixtures' payments tests (15 characters, field 42).
pub const MERCHANT: &str = "M11000000000001";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running `bank_sim.py serve`; killed when dropped.
pub struct BankSim {
    child: Child,
    pub port: u16,
    events: PathBuf,
}

impl BankSim {
    pub fn start(events: PathBuf, key_hex: &str) -> Self {
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/bank-sim/bank_sim.py"))
            .args(["serve", "--port", "0", "--mac-key", key_hex])
            .arg("--events")
            .arg(&events)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (scripts/ensure-python-deps)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("bank_sim.py said {line:?}; run scripts/ensure-python-deps"))
            .parse()
            .unwrap();
        Self {
            child,
            port,
            events,
        }
    }

    /// The events the simulator applied (one JSON object per line), of `kind`.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["kind"] == kind)
            .collect()
    }
}

impl Drop for BankSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn import(hsm: &mut hsm::ops::Hsm, alias: &str, usage: KeyUsage, mode: ModeOfUse, key_hex: &str) {
    let header = KeyHeader {
        alias: alias.into(),
        algorithm: KeyAlgorithm::Tdes2,
        usage,
        mode,
        version: *b"00",
        exportability: Exportability::NonExportable,
    };
    hsm.import_key_components("test", header, &[&hex::decode(key_hex).unwrap()], None)
        .unwrap();
}

/// A running `payment-switch`; killed when dropped.
pub struct PaymentSwitch {
    child: Child,
    pub port: u16,
    /// The ledger database (the payment tables included).
    pub db: PathBuf,
    pub log: PathBuf,
}

impl PaymentSwitch {
    /// Starts the switch in `dir`: an HSM key store under a fresh LMK with the banks' MAC keys
    /// and the issuer master keys of beijing-2g and hebei-3g, the routing table of
    /// fixtures/banks/routing.toml with bank A at `bank_a_port` and bank B at `bank_b_port`.
    pub async fn start(dir: &Path, bank_a_port: u16, bank_b_port: u16) -> Self {
        let lmk_hex = "42".repeat(32);
        let lmk_file = dir.join("lmk.hex");
        std::fs::write(&lmk_file, &lmk_hex).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&lmk_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let hsm_dir = dir.join("hsm");
        {
            let lmk = hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap();
            let mut hsm = hsm::ops::Hsm::open(&hsm_dir, lmk).unwrap();
            import(
                &mut hsm,
                "bank-a-zak",
                KeyUsage::M3,
                ModeOfUse::C,
                BANK_A_MAC_KEY,
            );
            import(
                &mut hsm,
                "bank-b-zak",
                KeyUsage::M3,
                ModeOfUse::C,
                BANK_B_MAC_KEY,
            );
            for (alias, image) in [
                ("beijing-imk-ac", "beijing-2g.toml"),
                ("hebei-imk-ac", "hebei-3g.toml"),
            ] {
                let key = super::image(image)["pboc"]["issuer_master_key"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                import(&mut hsm, alias, KeyUsage::E0, ModeOfUse::X, &key);
            }
        }
        // The routing table with the simulators' ports: bank A's host line comes first.
        let routing = std::fs::read_to_string(workspace().join("fixtures/banks/routing.toml"))
            .unwrap()
            .replacen(
                "host = \"127.0.0.1:0\"",
                &format!("host = \"127.0.0.1:{bank_a_port}\""),
                1,
            )
            .replacen(
                "host = \"127.0.0.1:0\"",
                &format!("host = \"127.0.0.1:{bank_b_port}\""),
                1,
            );
        assert!(routing.contains(&format!("127.0.0.1:{bank_a_port}")));
        let routing_file = dir.join("routing.toml");
        std::fs::write(&routing_file, routing).unwrap();
        let port = super::agent_process::free_port();
        let db = dir.join("ledger.db");
        let log = dir.join("payment-switch.log");
        let child = Command::new(super::workspace_binary("payment-switch"))
            .arg("--routing")
            .arg(&routing_file)
            .arg("--db")
            .arg(format!("sqlite:{}", db.display()))
            .arg("--hsm-dir")
            .arg(&hsm_dir)
            .arg("--lmk-file")
            .arg(&lmk_file)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--pan-salt", "test-salt", "--forward-interval-ms", "200"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut switch = Self {
            child,
            port,
            db,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = switch.child.try_wait().unwrap() {
                panic!(
                    "payment-switch exited ({status}):\n{}",
                    std::fs::read_to_string(&switch.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "payment-switch not listening after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        switch
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A read-only connection to the switch's database (WAL: readable while it runs).
    pub async fn db(&self) -> sqlx::SqliteConnection {
        use sqlx::ConnectOptions as _;
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&self.db)
            .read_only(true)
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for PaymentSwitch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
