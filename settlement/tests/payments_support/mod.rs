//! Helpers shared by the payments tests: the Python issuer bank simulator (tests/bank-sim, built
//! on pyiso8583 + pycryptodome) as a codec oracle and as a TCP server, and an HSM holding the
//! test keys of fixtures/banks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};

/// The MAC key (ZAK) of test bank A, fixtures/banks/keys.toml (test key only).
pub const BANK_A_MAC_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sim_script() -> PathBuf {
    workspace().join("tests/bank-sim/bank_sim.py")
}

/// Runs `bank_sim.py <command>` with one stdin line per input, returns stdout lines.
pub fn sim_lines(command: &str, key_hex: &str, input: &[String]) -> Vec<String> {
    let mut child = Command::new("python3")
        .arg(sim_script())
        .args([command, "--mac-key", key_hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with pyiso8583 (scripts/ensure-python-deps)");
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in input {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bank_sim.py {command} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A running simulator: killed on drop.
pub struct BankSim {
    pub child: Child,
    pub port: u16,
    pub events: PathBuf,
}

impl BankSim {
    /// Starts `bank_sim.py serve` on a free port (or `port`), appending events to `events`.
    pub fn start(events: PathBuf, port: u16) -> BankSim {
        let mut child = Command::new("python3")
            .arg(sim_script())
            .args([
                "serve",
                "--port",
                &port.to_string(),
                "--mac-key",
                BANK_A_MAC_KEY,
            ])
            .arg("--events")
            .arg(&events)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .expect("listening line")
            .parse()
            .unwrap();
        BankSim {
            child,
            port,
            events,
        }
    }

    /// The events the simulator recorded, as JSON values.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for BankSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn header(alias: &str, algorithm: KeyAlgorithm, usage: KeyUsage, mode: ModeOfUse) -> KeyHeader {
    KeyHeader {
        alias: alias.into(),
        algorithm,
        usage,
        mode,
        version: *b"00",
        exportability: Exportability::NonExportable,
    }
}

/// An HSM with bank A's MAC key (`bank-a-zak`, M3 retail MAC) and the issuer master keys (E0)
/// of the fixture cards' banks (`bank-a-imk-ac`: beijing-2g and hebei-3g share bank A's BIN
/// ranges in fixtures/banks/routing.toml; the keys are the cards' `issuer_master_key`).
pub fn hsm() -> (tempfile::TempDir, hsm::ops::Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let lmk = hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir.path(), lmk).unwrap();
    let mac = hex::decode(BANK_A_MAC_KEY).unwrap();
    hsm.import_key_components(
        "test",
        header(
            "bank-a-zak",
            KeyAlgorithm::Tdes2,
            KeyUsage::M3,
            ModeOfUse::C,
        ),
        &[&mac],
        None,
    )
    .unwrap();
    for (alias, key) in [
        ("beijing-imk-ac", "9E15204313F7318ACB79B90BD986AD29"),
        ("hebei-imk-ac", "0123456789ABCDEFFEDCBA9876543210"),
    ] {
        let key = hex::decode(key).unwrap();
        hsm.import_key_components(
            "test",
            header(alias, KeyAlgorithm::Tdes2, KeyUsage::E0, ModeOfUse::X),
            &[&key],
            None,
        )
        .unwrap();
    }
    (dir, hsm)
}
