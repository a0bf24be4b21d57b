//! The deployment examples of `docs/deploy/` really parse: each component's file through
//! `ssc-demo serve COMPONENT --config FILE --check` (the same checks as a real start), the
//! agent's through its own loader, the region set through the settlement node's own loader.
//! A file with an unknown key, two database settings or an unset secret variable is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy")
}

/// `ssc-demo serve … --check` → (success, stdout, stderr).
fn check(component: &str, config: &Path, extra: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_ssc-demo"))
        .args(["serve", component, "--config", config.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_example_in_docs_deploy_parses_and_becomes_the_right_command() {
    let dir = deploy_dir();
    let mut covered = vec!["haproxy.cfg".to_owned()]; // not ours to parse: docs/deploy.md says so

    let (ok, out, err) = check("hsm", &dir.join("hsm.toml"), &["--check"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("/hsm --lmk-file /etc/ssc/hsm/lmk.hex serve --listen 10.0.1.5:8700"),
        "{out}"
    );
    assert!(
        out.contains("--callers-file /etc/ssc/hsm/callers --allow-remote"),
        "{out}"
    );
    covered.push("hsm.toml".into());

    for (region, ip) in [
        ("110000", "10.1.0.21"),
        ("120000", "10.2.0.21"),
        ("130000", "10.3.0.21"),
    ] {
        let file = format!("settlement-{region}.toml");
        let (ok, out, err) = check("settlement", &dir.join(&file), &["--check"]);
        assert!(ok, "{file}: {err}");
        // Secrets as variable names, never values.
        assert!(
            out.starts_with("SETTLEMENT_PAAS=$SSC_GATEWAY_CALLERS DATABASE_URL=$SSC_DATABASE_URL"),
            "{out}"
        );
        assert!(
            out.contains(&format!("/settlement serve --listen {ip}:8080")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "--region {region} --regions /etc/ssc/regions.toml"
            )),
            "{out}"
        );
        assert!(!out.contains("--data "), "PostgreSQL, not SQLite: {out}");
        covered.push(file);
    }

    let (ok, out, err) = check(
        "payment-switch",
        &dir.join("payment-switch.toml"),
        &["--check"],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with("PAY_DB=$SSC_PAYMENTS_DATABASE_URL PAY_PAN_SALT=$SSC_PAN_SALT"),
        "{out}"
    );
    assert!(out.contains("--acquirer-listen 10.0.1.30:8583"), "{out}");
    assert!(
        out.contains("--qr-partner WALLET01=partner-wallet01-sm2"),
        "{out}"
    );
    covered.push("payment-switch.toml".into());

    let agent =
        terminal_agent::config::Config::load(Some(&dir.join("terminal-agent.toml"))).unwrap();
    assert_eq!(agent.listen.to_string(), "127.0.0.1:7788");
    assert_eq!(agent.switch.fixmedins_code, "H11010500001");
    let (ok, out, err) = check(
        "terminal-agent",
        &dir.join("terminal-agent.toml"),
        &["--check"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("/terminal-agent --config"), "{out}");
    covered.push("terminal-agent.toml".into());

    let regions = settlement::region::Regions::load(&dir.join("regions.toml")).unwrap();
    assert_eq!(regions.all().len(), 3);
    let shijiazhuang = settlement::Admdvs::parse("130100").unwrap();
    assert_eq!(
        regions.route(shijiazhuang).unwrap().url,
        "https://settle-hb.internal"
    );
    covered.push("regions.toml".into());

    // No example left untested.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            covered.contains(&name),
            "docs/deploy/{name} is not checked here"
        );
    }
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("ssc-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    let base = "[settlement]\nlisten = \"127.0.0.1:8080\"\nrefdata = \"fixtures\"\n\
                gateway_callers_env = \"SSC_TEST_CALLERS\"\n";

    std::fs::write(
        &file,
        format!("{base}database_url_env = \"X\"\nlistn = \"typo\"\n"),
    )
    .unwrap();
    let (ok, _, err) = check("settlement", &file, &["--check"]);
    assert!(!ok && err.contains("unknown field `listn`"), "{err}");

    std::fs::write(
        &file,
        format!("{base}database_url_env = \"X\"\ndata_dir = \"d\"\n"),
    )
    .unwrap();
    let (ok, _, err) = check("settlement", &file, &["--check"]);
    assert!(
        !ok && err.contains("exactly one of database_url_env and data_dir"),
        "{err}"
    );

    std::fs::write(
        &file,
        format!("{base}data_dir = \"d\"\nregion = \"110000\"\n"),
    )
    .unwrap();
    let (ok, _, err) = check("settlement", &file, &["--check"]);
    assert!(
        !ok && err.contains("region and regions go together"),
        "{err}"
    );

    // A real start with the secret's variable unset stops before running anything.
    std::fs::write(
        &file,
        format!("{base}database_url_env = \"SSC_TEST_UNSET_DATABASE_URL\"\n"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ssc-demo"))
        .args(["serve", "settlement", "--config", file.to_str().unwrap()])
        .env_remove("SSC_TEST_CALLERS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{err}");
    assert!(
        err.contains("SSC_TEST_CALLERS") && err.contains("is not set"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
