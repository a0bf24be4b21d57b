//! The `hsm` binary: `demo-keys` prints the demo key set, `exec` answers one JSON request and
//! exits non-zero on error, `serve` refuses a non-loopback address without `--allow-remote`.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};

const LMK: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";

fn hsm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsm"));
    c.env("HSM_LMK_HEX", LMK).env_remove("HSM_CALLERS");
    c
}

fn exec(data: &std::path::Path, request: &str) -> (bool, serde_json::Value) {
    let mut child = hsm()
        .args(["exec", "--data"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[test]
fn demo_keys_then_exec() {
    let dir = tempfile::tempdir().unwrap();
    let out = hsm()
        .args(["demo-keys", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "alias\tusage\talgorithm\tkcv");
    assert_eq!(lines.len(), 14, "{text}");
    assert!(lines.iter().any(|l| l.starts_with("imk-ac-sm4\tE0\tSM4\t")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ssc-ext-master\t11\tSM4\t"))
    );
    // Running it again keeps the same keys (same KCVs).
    let again = hsm()
        .args(["demo-keys", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);
    let kcv = lines
        .iter()
        .find(|l| l.starts_with("mac-cmac\t"))
        .unwrap()
        .rsplit('\t')
        .next()
        .unwrap();
    let (ok, reply) = exec(dir.path(), r#"{"operation":"GetKey","alias":"mac-cmac"}"#);
    assert!(ok);
    assert_eq!(reply["kcv"], kcv);
    let (ok, reply) = exec(
        dir.path(),
        r#"{"operation":"GenerateMac","alias":"pek-zone","message_data":"00"}"#,
    );
    assert!(!ok);
    assert_eq!(reply["code"], "KEY_USAGE");
    let (ok, reply) = exec(dir.path(), "not json");
    assert!(!ok);
    assert_eq!(reply["code"], "BAD_JSON");
}

#[test]
fn wrong_lmk_and_remote_listen_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        hsm()
            .args(["init", "--data"])
            .arg(dir.path())
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = hsm()
        .env("HSM_LMK_HEX", LMK.replace("FF", "FE"))
        .args(["init", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong LMK"));
    let out = hsm()
        .env("HSM_CALLERS", "a:0123456789abcdefgh")
        .args(["serve", "--listen", "0.0.0.0:1", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}
