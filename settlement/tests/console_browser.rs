//! Browser test of the operators' console: serves the real routers (national interface,
//! identity, console) on a loopback port over a fresh SQLite database holding the fixture
//! persons, one outpatient settlement (fixtures/his/outpatient-beijing-310.json, replayed as
//! HIS sends it) and one card sign-in (the tianjin-3g virtual card), with three accounts
//! (admin, operator, viewer), and runs the headless-Chromium driver `tests/browser/console.mjs`:
//! refused without login, what each role sees and may not see, the audited holder lookup, an
//! account created, log out, a phone-sized viewport. Screenshots go to
//! `target/browser-screenshots/` at the workspace root.
//!
//! FAILS (never skips) when Chromium, Node or the driver's npm packages are missing:
//! `scripts/ensure-chromium` installs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod identity_support;
mod service_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Db;
use identity_support::{CERTNO, IdHarness, NAME};
use serde_json::{Value, json};
use service_support::fixtures;
use settlement::console::{Console, ConsoleOptions, Role};
use settlement::identity::api::{IdentityState, router as identity_router};

/// The driver's whole run, ms.
const DRIVER_TIMEOUT_MS: u64 = 240_000;
const PASSWORD: &str = "correct horse battery staple";
const REASON: &str = "12333 热线工单 0042";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_driver(base: &str, shots: &Path, expected: &Value) -> (bool, String, String) {
    let browser_dir = workspace_root().join("tests/browser");
    let mut child = Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .arg(base)
        .arg(shots)
        .arg(expected.to_string())
        .current_dir(&browser_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (run scripts/ensure-chromium)");
    let deadline = Instant::now() + Duration::from_millis(DRIVER_TIMEOUT_MS);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    (
        status.is_some_and(|s| s.success()),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Replays a HIS visit file through the national interface; returns the 2207 output.
async fn settle_visit(t: &IdHarness, file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("his").join(file)).unwrap();
    let steps: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut mdtrt_id, mut sign_no, mut settled) = (String::new(), String::new(), Value::Null);
    for step in steps {
        let text = step
            .to_string()
            .replace("${mdtrt_id}", &mdtrt_id)
            .replace("${sign_no}", &sign_no);
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let output = t.h.ok(&envelope).await;
        if let Some(id) = output["data"]["mdtrt_id"]
            .as_str()
            .or(output["result"]["mdtrt_id"].as_str())
        {
            mdtrt_id = id.to_owned();
        }
        if let Some(no) = output["signinoutb"]["sign_no"].as_str() {
            sign_no = no.to_owned();
        }
        if envelope["infno"] == "2207" {
            settled = output;
        }
    }
    settled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/ensure-chromium"
    );
    assert!(
        workspace_root()
            .join("tests/browser/node_modules/playwright-core/package.json")
            .exists(),
        "tests/browser/node_modules/playwright-core is missing: run scripts/ensure-chromium"
    );
    let t = IdHarness::new(Db::Sqlite).await;
    let holder_token = t.token().await;
    let settled = settle_visit(&t, "outpatient-beijing-310.json").await;
    let setl_id = settled["setlinfo"]["setl_id"].as_str().unwrap().to_owned();
    assert!(t.identity.collect_trail().await.unwrap() >= 1);

    let console = Arc::new(Console::new(
        t.h.ledger.clone(),
        Some(t.identity.clone()),
        ConsoleOptions::default(),
    ));
    console.ensure_admin("admin", PASSWORD).await.unwrap();
    console
        .create_user("op1", Role::Operator, PASSWORD, "admin")
        .await
        .unwrap();
    console
        .create_user("view1", Role::Viewer, PASSWORD, "admin")
        .await
        .unwrap();
    let app = settlement::service::app(t.h.state.clone())
        .merge(identity_router(IdentityState {
            identity: t.identity.clone(),
            service: t.h.state.clone(),
        }))
        .merge(settlement::console::router(console.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });

    let shots = workspace_root().join("target/browser-screenshots");
    let expected = json!({
        "password": PASSWORD, "setl_id": setl_id, "certno": CERTNO, "name": NAME, "reason": REASON,
    });
    let base = format!("http://{address}");
    let shots_dir = shots.clone();
    let (ok, stdout, stderr) =
        tokio::task::spawn_blocking(move || run_driver(&base, &shots_dir, &expected))
            .await
            .unwrap();
    server.abort();
    assert!(
        ok,
        "browser driver failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("ALL CHECKS PASSED"), "{stdout}");
    let checks = stdout.lines().filter(|l| l.starts_with("CHECK ok")).count();
    assert!(checks >= 30, "only {checks} checks ran:\n{stdout}");
    for name in [
        "console-login.png",
        "console-viewer-dashboard.png",
        "console-viewer-refused.png",
        "console-operator-operations.png",
        "console-operator-holder.png",
        "console-admin.png",
        "console-phone.png",
    ] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    }

    // The lookup typed in the browser is in the holder's read log, with the reason typed.
    let (status, reads) = t
        .request(
            "GET",
            "/identity/v1/me/reads",
            &IdHarness::bearer(&holder_token),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let reads = reads["reads"].as_array().unwrap();
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|r| r["reader"] == "console:op1" && r["reason"] == REASON)
    );
    drop(console);
    t.finish().await;
}
