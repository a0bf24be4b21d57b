//! Benchmark on the real stack (pcscd + vpcd + `ssc-vcard` on "Virtual PCD 00 01", port 35964):
//! for each fixture card, the time from the card's insertion (the `ssc-vcard` process starting
//! and connecting to vpcd) to the identity and holder returned by the agent, split into
//! insertion → watcher event and event → identity; then the APDUs per read and warm reads per
//! second with the card left in. Prints figures; it asserts only the APDU count.
//!
//! `cargo bench -p terminal-agent --bench card_read` (needs pcscd with vpcd: scripts/ensure-pcsc;
//! do not run it while the agent's tests use the same slot).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use terminal_agent::authority::{Authority, AuthorityKeys};
use terminal_agent::card::read_social_security;
use terminal_agent::reader::pcsc_backend::PcscBackend;
use terminal_agent::reader::{
    BackendFactory, CardBackend, ReaderEventKind, Readers, ReadersConfig, Watcher,
};

const READER: &str = "Virtual PCD 00 01";
const PORT: u16 = 35964;
const INSERTIONS: usize = 10;
const WARM_READS: usize = 200;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vcard_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
    let target_dir = profile_dir.parent().unwrap().to_owned();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "-p", "card-core", "--bin", "ssc-vcard"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .current_dir(manifest());
    if profile_dir.ends_with("release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success(), "building ssc-vcard");
    profile_dir.join("ssc-vcard")
}

struct Card(Child);

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_card(bin: &PathBuf, image: &str) -> Card {
    let path = manifest().join("../fixtures/cards").join(image);
    Card(
        Command::new(bin)
            .args([
                "--image",
                path.to_str().unwrap(),
                "--vpcd",
                &format!("127.0.0.1:{PORT}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn authority(image: &str) -> (tempfile::TempDir, Authority) {
    let dir = tempfile::tempdir().unwrap();
    let mut hsm =
        hsm::ops::Hsm::open(dir.path(), hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap()).unwrap();
    let text = std::fs::read_to_string(manifest().join("../fixtures/cards").join(image)).unwrap();
    let t: toml::Table = text.parse().unwrap();
    if let Some(keys) = t.get("keys").and_then(|k| k.as_table()) {
        for (alias, usage, key) in [
            (
                "ssc-ext-auth",
                KeyUsage::SscExternalAuth,
                "ssse_external_auth_master",
            ),
            (
                "ssc-int-auth",
                KeyUsage::SscInternalAuth,
                "ssse_internal_auth_master",
            ),
        ] {
            let header = KeyHeader {
                alias: alias.into(),
                algorithm: KeyAlgorithm::Sm4,
                usage,
                mode: ModeOfUse::X,
                version: *b"00",
                exportability: Exportability::NonExportable,
            };
            let bytes = hex::decode(keys[key].as_str().unwrap()).unwrap();
            hsm.import_key_components("bench", header, &[&bytes], None)
                .unwrap();
        }
    }
    let keys = AuthorityKeys {
        external_auth_alias: "ssc-ext-auth".into(),
        internal_auth_alias: Some("ssc-int-auth".into()),
    };
    (
        dir,
        Authority::in_process(Arc::new(Mutex::new(hsm)), "bench", keys),
    )
}

fn stats(label: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    format!(
        "{label}: median {median:.2} ms, min {:.2}, max {:.2} (n={})",
        ms[0],
        ms[ms.len() - 1],
        ms.len()
    )
}

async fn wait_for(
    events: &mut tokio::sync::broadcast::Receiver<terminal_agent::reader::ReaderEvent>,
    kind: ReaderEventKind,
) -> Instant {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect(
                "no reader event within 10 s: is pcscd with vpcd running? (scripts/ensure-pcsc)",
            )
            .unwrap();
        if event.reader == READER && event.kind == kind {
            return Instant::now();
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bin = vcard_binary();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "terminal-agent card_read bench on {READER} (pcscd + vpcd + ssc-vcard)"
    )
    .unwrap();
    // The fewest APDUs the card's files allow (tests/common/expect.rs `fewest_apdus`): 2.00:
    // SELECT SSSE, SELECT EF05, 7 READ RECORD, SELECT EF06, 7 READ RECORD; 3.00 adds INTERNAL
    // AUTHENTICATE, GET CHALLENGE, EXTERNAL AUTHENTICATE; strict T=0 adds a GET RESPONSE after
    // SELECT SSSE and after INTERNAL AUTHENTICATE.
    for (image, expected_apdus) in [
        ("beijing-2g.toml", 17),
        ("tianjin-3g.toml", 20),
        ("hebei-3g.toml", 22),
    ] {
        let (_dir, authority) = authority(image);
        let watcher = Watcher::start_pcsc(50).unwrap();
        let mut events = watcher.subscribe();
        let factory: Arc<dyn BackendFactory> =
            Arc::new(|| Box::new(PcscBackend::new()) as Box<dyn CardBackend>);
        let readers = Readers::new(factory, ReadersConfig::default(), Some(watcher));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut detect, mut read, mut total) = (Vec::new(), Vec::new(), Vec::new());
        let mut apdus = 0;
        for _ in 0..INSERTIONS {
            let inserted = Instant::now();
            let card = start_card(&bin, image);
            let seen = wait_for(&mut events, ReaderEventKind::CardInserted).await;
            let a = authority.clone();
            let reading = readers
                .run(READER, 5_000, move |link| read_social_security(link, &a))
                .await
                .unwrap();
            let done = Instant::now();
            apdus = reading.apdus;
            detect.push((seen - inserted).as_secs_f64() * 1e3);
            read.push((done - seen).as_secs_f64() * 1e3);
            total.push((done - inserted).as_secs_f64() * 1e3);
            drop(card);
            wait_for(&mut events, ReaderEventKind::CardRemoved).await;
        }
        writeln!(out, "{image}: {apdus} APDUs per read (identity + holder)").unwrap();
        assert_eq!(apdus, expected_apdus, "{image}: APDU count changed");
        writeln!(out, "  {}", stats("inserted → identity returned", total)).unwrap();
        writeln!(
            out,
            "  {}",
            stats("  inserted → card_inserted event", detect)
        )
        .unwrap();
        writeln!(out, "  {}", stats("  event → identity returned", read)).unwrap();
        let card = start_card(&bin, image);
        wait_for(&mut events, ReaderEventKind::CardInserted).await;
        let started = Instant::now();
        for _ in 0..WARM_READS {
            let a = authority.clone();
            readers
                .run(READER, 5_000, move |link| read_social_security(link, &a))
                .await
                .unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        writeln!(
            out,
            "  warm reads, card left in: {:.2} ms per read, {:.0} reads/s, {:.0} APDU/s",
            secs * 1e3 / WARM_READS as f64,
            WARM_READS as f64 / secs,
            (WARM_READS as f64 * f64::from(apdus)) / secs
        )
        .unwrap();
        drop(card);
        wait_for(&mut events, ReaderEventKind::CardRemoved).await;
    }
}
