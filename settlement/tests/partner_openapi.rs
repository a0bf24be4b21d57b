//! The partner API in a real `settlement serve` process (issue 8, Must show): the directory
//! imported with `settlement-directory`, persons with `settlement import-persons`; the OpenAPI
//! document at `/api/partner/v1/openapi.json` validates with `openapi-spec-validator` (PyPI);
//! a registration, an operator's approval and a call signed by the Python client go through the
//! binary; then `schemathesis` (PyPI) fuzzes every operation of the document (bounded: a fixed
//! seed and a few examples per operation, with the operator's token so the admin routes are
//! reached past authentication) and finds no 5xx. Python packages: scripts/ensure-python-deps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod partner_support;
mod service_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use partner_support::{SM2_PRIV, public_key, python};
use serde_json::{Value, json};

const OPERATOR_TOKEN: &str = "operator-token-fuzz-0123456789";
/// The whole schemathesis run, seconds.
const FUZZ_TIMEOUT_S: u64 = 420;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> (Serve, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = data.join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_settlement"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data)
        .arg("--refdata")
        .arg(workspace().join("fixtures"))
        .arg("--partner-hsm")
        .arg(data.join("hsm"))
        .env("SETTLEMENT_PAAS", "kiosk1=kiosk-token-0123456789")
        .env(
            "SETTLEMENT_PARTNER_OPERATORS",
            format!("ops1={OPERATOR_TOKEN}"),
        )
        .env("HSM_LMK_HEX", "5A".repeat(32))
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Serve { child, log }, format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(http: &reqwest::Client, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(reply) = http
            .get(format!("{url}/api/partner/v1/openapi.json"))
            .send()
            .await
            && reply.status().is_success()
        {
            return reply.json().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "settlement serve did not come up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_validates_and_fuzzing_finds_no_server_error() {
    let data = tempfile::tempdir().unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_settlement-directory"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["import", "--by", "admin", "--csv"])
        .arg(workspace().join("fixtures/catalog/uses.csv")));
    run(Command::new(env!("CARGO_BIN_EXE_settlement"))
        .arg("import-persons")
        .arg(workspace().join("fixtures/persons/cards.csv"))
        .arg("--data")
        .arg(data.path()));
    let (serve, url) = start(data.path());
    let http = reqwest::Client::new();
    let document = wait_ready(&http, &url).await;

    // The document: OpenAPI 3.1 with every partner route, valid for openapi-spec-validator.
    assert_eq!(document["openapi"], "3.1.0");
    let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
    for path in [
        "/api/partner/v1/applications",
        "/api/partner/v1/me",
        "/api/partner/v1/cards/verify",
        "/api/partner/v1/settlements/{setl_id}",
        "/api/partner/v1/consents",
        "/api/partner/v1/webhook-key",
        "/api/partner/v1/admin/applications/{app_id}/decision",
        "/api/partner/v1/admin/audit",
        "/api/partner/v1/admin/cards/status",
        "/api/partner/v1/admin/keys/{key_id}/revoke",
    ] {
        assert!(
            paths.iter().any(|p| *p == path),
            "{path} missing: {paths:?}"
        );
    }
    // Every signed operation documents the four signature headers, required.
    for (path, method) in [
        ("/api/partner/v1/me", "get"),
        ("/api/partner/v1/cards/verify", "post"),
        ("/api/partner/v1/settlements/{setl_id}", "get"),
    ] {
        let params = document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no parameters"));
        for header in [
            "x-ssc-key-id",
            "x-ssc-timestamp",
            "x-ssc-nonce",
            "x-ssc-signature",
        ] {
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == header && p["in"] == "header" && p["required"] == true),
                "{path}: {header} missing in {params:?}"
            );
        }
    }
    let spec = data.path().join("openapi.json");
    std::fs::write(&spec, document.to_string()).unwrap();
    let validated = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))\nprint('valid')",
        ])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}",
        String::from_utf8_lossy(&validated.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&validated.stdout).trim(), "valid");
    // A broken copy is refused by the same validator (the check can fail).
    let mut broken = document.clone();
    broken["paths"]["/api/partner/v1/me"]["get"]["responses"] = json!("none");
    let broken_file = data.path().join("broken.json");
    std::fs::write(&broken_file, broken.to_string()).unwrap();
    let refused = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\n\
             validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&broken_file)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // Through the binary: register, approve, a signed call.
    let public = tokio::task::spawn_blocking(|| public_key("sm2", SM2_PRIV))
        .await
        .unwrap();
    let registered: Value = http
        .post(format!("{url}/api/partner/v1/applications"))
        .json(&json!({
            "partner": {"code": "BANK-E2E", "name": "端到端测试银行", "kind": "bank"},
            "name": "核验",
            "scopes": [{"use": "P023", "operation": "settlement.status"}],
            "key": {"algorithm": "SM2", "public_key": public},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app_id = registered["app_id"].as_str().unwrap().to_owned();
    let key_id = registered["key_id"].as_str().unwrap().to_owned();
    let approved = http
        .post(format!(
            "{url}/api/partner/v1/admin/applications/{app_id}/decision"
        ))
        .bearer_auth(OPERATOR_TOKEN)
        .json(&json!({"action": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let base = url.clone();
    let me = tokio::task::spawn_blocking(move || {
        python(&[
            "call",
            "--base",
            &base,
            "--alg",
            "sm2",
            "--priv",
            SM2_PRIV,
            "--key-id",
            &key_id,
            "--method",
            "GET",
            "--path",
            "/api/partner/v1/me",
        ])
    })
    .await
    .unwrap();
    assert_eq!(me["responses"][0]["status"], 200, "{me}");
    assert_eq!(me["responses"][0]["body"]["app_id"], app_id.as_str());
    let key: Value = http
        .get(format!("{url}/api/partner/v1/webhook-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["public_key"].as_str().unwrap().len(), 130);

    // schemathesis over the whole document, bounded.
    let schema_url = format!("{url}/api/partner/v1/openapi.json");
    let report = data.path().join("schemathesis");
    let report_dir = report.clone();
    let fuzz = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg(FUZZ_TIMEOUT_S.to_string())
            // The interpreter scripts/ensure-python-deps installed into; its cache
            // (.schemathesis/) goes to the temporary directory, not the source tree.
            .args(["python3", "-m", "schemathesis.cli", "run"])
            .arg(&schema_url)
            .args([
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "12",
                "--seed",
                "20261130",
                "--workers",
                "1",
                "--no-color",
                "--suppress-health-check",
                "all",
                "--header",
                &format!("Authorization: Bearer {OPERATOR_TOKEN}"),
                "--report",
                "junit",
                "--report-dir",
            ])
            .arg(&report_dir)
            .current_dir(report_dir.parent().unwrap())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&fuzz.stdout).into_owned();
    let server_log = std::fs::read_to_string(&serve.log).unwrap_or_default();
    assert!(
        fuzz.status.success(),
        "schemathesis found failures (exit {:?}):\n{stdout}\n{}\n--- server log\n{server_log}",
        fuzz.status.code(),
        String::from_utf8_lossy(&fuzz.stderr)
    );
    // It ran every operation of the document.
    let junit: String = std::fs::read_dir(&report)
        .unwrap_or_else(|e| panic!("{}: {e}\n{stdout}", report.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "xml"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    println!("{stdout}");
    let cases = junit.matches("<testcase").count();
    assert!(cases >= 12, "only {cases} operations tested:\n{stdout}");
    assert!(!server_log.contains("panicked"), "{server_log}");
    drop(serve);
}
