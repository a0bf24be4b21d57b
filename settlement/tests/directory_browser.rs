//! Browser test of the directory page: serves the real router (`directory::api::router`) on a
//! loopback port over a fresh SQLite database holding the fixture catalogue plus one illustrative
//! row, and runs the headless-Chromium driver `tests/browser/directory.mjs` (Node + playwright-core
//! on Debian's /usr/bin/chromium) against it: search, filters, load-more, the 示例 label, a
//! phone-sized viewport. Screenshots go to `target/browser-screenshots/` at the workspace root.
//!
//! This test FAILS (never skips) when Chromium, Node or the driver's npm packages are missing:
//! `scripts/ensure-chromium` installs them, and `scripts/check` runs it before `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Db, TestDb};
use settlement::LedgerOptions;
use settlement::directory::{Directory, api};

/// The driver's whole run, ms (Chromium start, two viewports, a dozen page loads).
const DRIVER_TIMEOUT_MS: u64 = 180_000;

/// One use that is NOT from any public document, to check the page labels it 示例.
const ILLUSTRATIVE_ROW: &str = "X-DEMO,公共服务,示例用途（测试数据）,身份凭证,app,120000,,\
                                illustrative,,,仅用于测试页面的示例标注，不是任何目录的条目。\n";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `node directory.mjs URL SHOTS TOTAL` with a deadline; returns (success, stdout, stderr).
fn run_driver(url: &str, shots: &Path, total: usize) -> (bool, String, String) {
    let browser_dir = workspace_root().join("tests/browser");
    let mut child = Command::new("node")
        .arg(browser_dir.join("directory.mjs"))
        .arg(url)
        .arg(shots)
        .arg(total.to_string())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_page_in_headless_chromium() {
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

    let db = TestDb::new(Db::Sqlite).await;
    let ledger = db.open(LedgerOptions::default()).await;
    let directory = Directory::from_ledger(&ledger).await.unwrap();
    let mut csv = std::fs::read(workspace_root().join("fixtures/catalog/uses.csv")).unwrap();
    csv.extend_from_slice(ILLUSTRATIVE_ROW.as_bytes());
    directory.import_csv(&csv, "test.browser").await.unwrap();
    // Expected total, counted independently of the parser: data lines of the file.
    let total = String::from_utf8(csv)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .count();
    assert_eq!(total, directory.snapshot().uses.len());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(Arc::new(directory)))
            .await
            .unwrap();
    });

    let shots = workspace_root().join("target/browser-screenshots");
    let url = format!("http://{address}/directory/");
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run_driver(&url, &shots, total))
        .await
        .unwrap();
    server.abort();
    assert!(
        ok,
        "browser driver failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("ALL CHECKS PASSED"), "{stdout}");
    let checks = stdout.lines().filter(|l| l.starts_with("CHECK ok")).count();
    assert!(checks >= 20, "only {checks} checks ran:\n{stdout}");
    for name in [
        "directory-desktop-search.png",
        "directory-desktop-filters.png",
        "directory-phone.png",
    ] {
        let png = std::fs::read(
            workspace_root()
                .join("target/browser-screenshots")
                .join(name),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
    }
    drop(ledger);
    db.drop_db().await;
}
