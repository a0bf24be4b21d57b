//! `ssc-demo cluster` (`scripts/cluster`), the one command that starts a three-region cluster
//! on this machine, run as a test: it starts the three nodes (SQLite files; and PostgreSQL
//! databases of their own), a Beijing-insured person settles one outpatient visit at a Tianjin
//! hospital through it (2201, 2204, 2207 with the gateway's `x-tif-*` headers, computed here),
//! the split is checked against `demo_oracle` (the policy arithmetic written out from the
//! fixtures), the Tianjin node's claim on Beijing and Beijing's debt to Tianjin against that
//! split, each console's printed login is tried, then Ctrl-C stops it and no process is left.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod demo_oracle;
#[path = "../support/workspace_build.rs"]
mod workspace_build;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use demo_oracle::{first_settlement, shanghai_today};
use workspace_build::workspace_binary;

/// The person (fixture card beijing-2g, insured in 110000) and the hospital (天津 level 3).
const PERSON: &str = "11000000000000000001";
const HOSPITAL: &str = "H12010100001";
const TREATING_AREA: &str = "120000";
const INSURED_AREA: &str = "110000";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// What `ssc-demo cluster` printed before "ready".
struct Printed {
    /// (admdvs, url, console name, console password)
    nodes: Vec<(String, String, String, String)>,
    his: (String, String),
    operator: (String, String),
    lines: Vec<String>,
}

/// The running `ssc-demo cluster`: interrupted (SIGINT, as Ctrl-C) and reaped when dropped, so
/// a failing assertion leaves no cluster behind.
struct Running(Child);

impl Running {
    fn interrupt(&self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.0.id()).unwrap()),
            nix::sys::signal::Signal::SIGINT,
        );
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.interrupt();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn read_until_ready(child: &mut Child) -> Printed {
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = Printed {
        nodes: Vec::new(),
        his: Default::default(),
        operator: Default::default(),
        lines: Vec::new(),
    };
    for line in stdout.lines() {
        let line = line.unwrap();
        printed.lines.push(line.clone());
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("node ") {
            printed.nodes.push((
                words[1].to_owned(),
                words[3].to_owned(),
                String::new(),
                String::new(),
            ));
        } else if line.trim_start().starts_with("console: ") {
            // "console: URL/console/ (log in as NAME / PASSWORD)"
            let node = printed.nodes.last_mut().unwrap();
            assert_eq!(words[1], format!("{}/console/", node.1), "{line}");
            node.2 = words[5].to_owned();
            node.3 = words[7].trim_end_matches(')').to_owned();
        } else if line.starts_with("HIS caller") {
            // "HIS caller (x-tif-paasid, token): ID TOKEN"
            printed.his = (words[4].to_owned(), words[5].to_owned());
        } else if line.starts_with("operator caller") {
            printed.operator = (words[4].to_owned(), words[5].to_owned());
        } else if line.starts_with("ready") {
            return printed;
        }
    }
    panic!(
        "ssc-demo cluster ended before ready:\n{}",
        printed.lines.join("\n")
    );
}

/// The gateway's headers (medical-settlement.md §1.0: signature = lowercase hex SHA-256 of
/// timestamp + token + nonce + timestamp), computed here.
fn gateway_headers(caller: &(String, String), seq: u32) -> Vec<(&'static str, String)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let timestamp = now.as_secs().to_string();
    let nonce = format!("t{:09}{seq:04}", now.subsec_nanos());
    let signature = hex::encode(Sha256::digest(
        format!("{timestamp}{}{nonce}{timestamp}", caller.1).as_bytes(),
    ));
    vec![
        ("x-tif-paasid", caller.0.clone()),
        ("x-tif-timestamp", timestamp),
        ("x-tif-nonce", nonce),
        ("x-tif-signature", signature),
    ]
}

/// Posts one national-interface envelope from the Tianjin hospital's HIS; returns `output`.
fn his_call(
    client: &reqwest::blocking::Client,
    node: &str,
    his: &(String, String),
    seq: u32,
    infno: &str,
    input: Value,
) -> Value {
    let msgid = format!("{HOSPITAL}20261130{seq:010}");
    let envelope = json!({"infno": infno, "msgid": msgid, "mdtrtarea_admvs": TREATING_AREA,
        "insuplc_admdvs": INSURED_AREA, "recer_sys_code": "HIS", "infver": "V1.0",
        "opter_type": "1", "opter": "OP001", "opter_name": "收费员",
        "inf_time": "2026-11-30 10:00:00", "fixmedins_code": HOSPITAL,
        "fixmedins_name": "天津市和平区示例三级医院", "sign_no": "", "input": input});
    let mut request = client
        .post(format!("{node}/fsi/api/rsfComIfsService/callService"))
        .json(&envelope);
    for (name, value) in gateway_headers(his, seq) {
        request = request.header(name, value);
    }
    let reply: Value = request.send().unwrap().json().unwrap();
    assert_eq!(reply["infcode"].as_i64(), Some(0), "{infno}: {reply}");
    reply["output"].clone()
}

fn fen(value: &Value) -> i64 {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let negative = text.starts_with('-');
    let magnitude = demo_oracle::fen(text.trim_start_matches('-'));
    if negative { -magnitude } else { magnitude }
}

/// Each node's net position toward `counter` (fen; + = `counter` owes the node).
fn position(
    client: &reqwest::blocking::Client,
    node: &str,
    operator: &(String, String),
    counter: &str,
) -> i64 {
    let mut request = client.get(format!("{node}/region/v1/admin/positions"));
    for (name, value) in gateway_headers(operator, 9_000) {
        request = request.header(name, value);
    }
    let reply: Value = request.send().unwrap().json().unwrap();
    reply
        .as_array()
        .unwrap_or_else(|| panic!("positions: {reply}"))
        .iter()
        .find(|p| p["counter"].to_string().trim_matches('"') == counter)
        .map_or(0, |p| p["net_fen"].as_i64().unwrap())
}

/// Processes whose environment carries ssc-demo's run marker for `data`.
fn marked_processes(data: &Path) -> Vec<String> {
    let marker = format!("SSC_DEMO_RUN={}", data.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == marker.as_bytes())
        {
            found.push(name);
        }
    }
    found
}

fn settle_one_cross_region_visit_through_the_cluster(extra: &[&str], label: &str) {
    // Every platform binary, built beside ssc-demo (which finds them there).
    workspace_binary("ssc-demo");
    let root = root();
    let data = std::env::temp_dir().join(format!("ssc-cluster-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let data = data.canonicalize().unwrap();
    let today = shanghai_today();
    let mut cluster = Running(
        Command::new(env!("CARGO_BIN_EXE_ssc-demo"))
            .current_dir(&root)
            .args(["cluster", "--free-ports", "--data", data.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let printed = read_until_ready(&mut cluster.0);
    let regions: Vec<&str> = printed.nodes.iter().map(|n| n.0.as_str()).collect();
    assert_eq!(
        regions,
        ["110000", "120000", "130000"],
        "{:#?}",
        printed.lines
    );
    let url_of = |admdvs: &str| {
        printed
            .nodes
            .iter()
            .find(|n| n.0 == admdvs)
            .map(|n| n.1.clone())
            .unwrap()
    };
    let (beijing, tianjin) = (url_of("110000"), url_of("120000"));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // The bill: `specialist` of the day script (above every region's outpatient deductible).
    let day: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("fixtures/day/day.toml")).unwrap())
            .unwrap();
    let bill = &day["bills"]["specialist"];
    let (treating, insured, expected) = first_settlement(
        &root.join("fixtures"),
        PERSON,
        HOSPITAL,
        bill,
        "outpatient",
        today,
    );
    assert_eq!((treating.as_str(), insured.as_str()), ("120000", "110000"));

    let his = &printed.his;
    let reg = his_call(
        &client,
        &tianjin,
        his,
        1,
        "2201",
        json!({"data": {"psn_no": PERSON, "insutype": "310",
            "begntime": "2026-11-30 09:00:00", "med_type": "11",
            "ipt_otp_no": "MZ0001", "atddr_no": "D001", "dr_name": "医生",
            "dept_code": "A03", "dept_name": "内科", "caty": "A03"}}),
    );
    let mdtrt_id = reg["data"]["mdtrt_id"].as_str().unwrap().to_owned();
    let mut feedetail = Vec::new();
    let mut bill_fen = 0;
    for (i, line) in bill["lines"].as_array().unwrap().iter().enumerate() {
        let cnt = line["cnt"].as_integer().unwrap();
        let pric = line["pric"].as_str().unwrap();
        let det = cnt * demo_oracle::fen(pric);
        bill_fen += det;
        feedetail.push(
            json!({"feedetl_sn": format!("{:04}", i + 1), "mdtrt_id": mdtrt_id,
            "psn_no": PERSON, "chrg_bchno": "B0001", "med_list_codg": line["code"].as_str(),
            "det_item_fee_sumamt": format!("{}.{:02}", det / 100, det % 100),
            "cnt": cnt.to_string(), "pric": pric, "fee_ocur_time": "2026-11-30 09:10:00"}),
        );
    }
    his_call(
        &client,
        &tianjin,
        his,
        2,
        "2204",
        json!({"feedetail": feedetail}),
    );
    let out = his_call(
        &client,
        &tianjin,
        his,
        3,
        "2207",
        json!({"data": {"psn_no": PERSON, "mdtrt_id": mdtrt_id, "insutype": "310",
            "medfee_sumamt": format!("{}.{:02}", bill_fen / 100, bill_fen % 100),
            "acct_used_flag": "1", "med_type": "11", "psn_setlway": "01",
            "chrg_bchno": "B0001", "mid_setl_flag": "0"}}),
    );
    let setl = &out["setlinfo"];
    let got = [
        fen(&setl["medfee_sumamt"]),
        fen(&setl["fund_pay_sumamt"]),
        fen(&setl["acct_pay"]),
        fen(&setl["psn_cash_pay"]),
    ];
    assert_eq!(got, expected, "[bill, fund, account, cash]: {setl}");
    assert!(expected[1] > 0 && expected[2] > 0, "{expected:?}");

    // Tianjin paid the hospital and claims the funds' and the account's part on Beijing;
    // Beijing's books say the same from its side (its reply carried the split).
    let claim = expected[1] + expected[2];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tj = position(&client, &tianjin, &printed.operator, "110000");
        let bj = position(&client, &beijing, &printed.operator, "120000");
        if (tj, bj) == (claim, -claim) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "positions: Tianjin toward Beijing {tj}, Beijing toward Tianjin {bj}, expected ±{claim}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Each printed console login works.
    let no_redirect = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for (admdvs, url, name, password) in &printed.nodes {
        let reply = no_redirect
            .post(format!("{url}/console/login"))
            .form(&[("username", name), ("password", password)])
            .send()
            .unwrap();
        assert_eq!(reply.status().as_u16(), 303, "console login at {admdvs}");
        assert!(reply.headers().contains_key("set-cookie"), "{admdvs}");
    }

    // Ctrl-C: the nodes stop, nothing is left.
    cluster.interrupt();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ssc-demo cluster ignored SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "exit status after Ctrl-C");
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = marked_processes(&data);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = marked_processes(&data);
    }
    assert!(left.is_empty(), "left running after Ctrl-C: {left:?}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn one_command_cluster_on_sqlite_settles_a_cross_region_visit_and_stops_on_ctrl_c() {
    settle_one_cross_region_visit_through_the_cluster(&[], "sqlite");
}

#[test]
fn one_command_cluster_on_postgres_settles_a_cross_region_visit_and_stops_on_ctrl_c() {
    let prefix = format!("ssc_cluster_t{}", std::process::id());
    let url = pg_url();
    settle_one_cross_region_visit_through_the_cluster(
        &["--postgres", "--pg-url", &url, "--db-prefix", &prefix],
        "postgres",
    );
    // The cluster leaves its databases for inspection by design; the test's are removed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        for region in ["110000", "120000", "130000"] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {prefix}_{region} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await
            .unwrap();
        }
    });
}
