//! The README's main job, run as a test: `ssc-demo` starts the HSM, three regional settlement
//! nodes, the payment switch with the issuer bank simulators and the terminal agent from their
//! binaries, and plays the day of `fixtures/day/day.toml`. Its summary is checked against
//! totals computed independently from the fixtures (`demo_oracle`), never against figures the
//! demo computed. A second test interrupts it and checks that no child process survives.
//!
//! Needs python3 with the bank simulator's packages (scripts/ensure-python-deps). With pcscd +
//! vpcd (scripts/ensure-pcsc) the cards go through PC/SC; without, the demo says it used its
//! in-process reader, and the money is the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod demo_oracle;
#[path = "../support/workspace_build.rs"]
mod workspace_build;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use demo_oracle::{Oracle, shanghai_today};
use workspace_build::workspace_binary;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssc-demo-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn yuan(cell: &str) -> i64 {
    demo_oracle::fen(cell.trim_start_matches('-')) * if cell.starts_with('-') { -1 } else { 1 }
}

/// The lines of the summary section that starts with a line beginning `head`, up to the next
/// blank line.
fn section<'a>(stdout: &'a str, head: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(head))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn the_days_summary_matches_an_independent_computation_from_the_fixtures() {
    // Every platform binary, built beside ssc-demo (which finds them there).
    workspace_binary("ssc-demo");
    let root = root();
    let data = data_dir("day");
    let today = shanghai_today();
    let output = Command::new(env!("CARGO_BIN_EXE_ssc-demo"))
        .current_dir(&root)
        .args(["--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ssc-demo failed:\n{stderr}\n(python3 packages: scripts/ensure-python-deps)"
    );
    let oracle = Oracle::compute(&root.join("fixtures"), today);
    // If the date changed while the demo ran (midnight in Shanghai), ages may differ: redo.
    assert_eq!(
        today,
        shanghai_today(),
        "the day crossed midnight; run again"
    );

    // The header: kept, cancelled, reversed.
    let kept: Vec<_> = oracle.settlements.iter().filter(|s| s.kept).collect();
    let header = stdout
        .lines()
        .find(|l| l.starts_with("ssc-demo: a day"))
        .unwrap();
    assert!(
        header.contains(&format!("{} settlements kept", kept.len())),
        "{header}"
    );
    let words: Vec<&str> = header
        .split([' ', ',', ';'])
        .filter(|w| !w.is_empty())
        .collect();
    let count_before = |word: &str| -> usize {
        let i = words.iter().position(|w| *w == word).unwrap();
        words[i - 1].parse().unwrap()
    };
    // The events that cancel (2208/2305) or lose the reply (2601) are not kept.
    assert_eq!(
        count_before("cancelled") + count_before("reversed"),
        oracle.settlements.len() - kept.len(),
        "{header}"
    );
    assert!(
        stdout.contains("cards: "),
        "the summary says how the cards were read"
    );

    // Settlements by treating region.
    let mut expected: BTreeMap<String, ([i64; 4], usize, usize)> = BTreeMap::new();
    for s in &kept {
        let e = expected.entry(s.treating.clone()).or_default();
        for (t, a) in e.0.iter_mut().zip(s.amounts) {
            *t += a;
        }
        e.1 += 1;
        e.2 += usize::from(s.treating != s.insured);
        // The identity every settlement keeps: bill = fund + account + cash.
        assert_eq!(s.amounts[0], s.amounts[1] + s.amounts[2] + s.amounts[3]);
    }
    let rows = section(&stdout, "settlements ");
    let mut printed: BTreeMap<String, ([i64; 4], usize, usize)> = BTreeMap::new();
    for row in rows.iter().filter(|r| !r.starts_with("total")) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let [
            region,
            _name,
            count,
            bill,
            fund,
            account,
            cash,
            cross,
            "cross",
        ] = cells[..]
        else {
            panic!("{row}")
        };
        printed.insert(
            region.to_owned(),
            (
                [yuan(bill), yuan(fund), yuan(account), yuan(cash)],
                count.parse().unwrap(),
                cross.parse().unwrap(),
            ),
        );
    }
    expected.retain(|_, v| v.1 > 0);
    printed.retain(|_, v| v.1 > 0);
    assert_eq!(printed, expected, "settlements by region:\n{stdout}");
    let total_row = rows.iter().find(|r| r.starts_with("total")).unwrap();
    let total: Vec<i64> = total_row.split_whitespace().skip(2).map(yuan).collect();
    let mut sums = [0i64; 4];
    for s in &kept {
        for (t, a) in sums.iter_mut().zip(s.amounts) {
            *t += a;
        }
    }
    assert_eq!(total, sums.to_vec(), "{total_row}");

    // Net positions between regions: the treating node is owed what the insured node's funds
    // and the person's account paid (the cash went to the hospital directly).
    let mut owed: BTreeMap<(String, String), i64> = BTreeMap::new();
    for s in kept.iter().filter(|s| s.treating != s.insured) {
        *owed
            .entry((s.treating.clone(), s.insured.clone()))
            .or_default() += s.amounts[1] + s.amounts[2];
        *owed
            .entry((s.insured.clone(), s.treating.clone()))
            .or_default() -= s.amounts[1] + s.amounts[2];
    }
    owed.retain(|_, v| *v > 0);
    let mut printed_owed = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.contains(" is owed by ")) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        printed_owed.insert(
            (cells[0].to_owned(), cells[5].to_owned()),
            yuan(cells.last().unwrap()),
        );
    }
    assert_eq!(printed_owed, owed, "net positions:\n{stdout}");
    let sum_line = stdout
        .lines()
        .find(|l| l.starts_with("sum of every node's positions"))
        .unwrap();
    assert!(sum_line.contains(" 0.00 (balanced)"), "{sum_line}");

    // Payments by bank, and each bank's own log agreeing.
    // Every payment of the day is played, the QR ones included (POST /payments/v1/qr).
    assert!(
        !stdout.contains("skipped"),
        "the demo skipped part of the day:\n{stdout}"
    );
    assert!(
        oracle.payments.iter().any(|p| p.channel == "qr"),
        "the day has QR payments"
    );
    let routing: toml::Value =
        toml::from_str(&std::fs::read_to_string(root.join("fixtures/banks/routing.toml")).unwrap())
            .unwrap();
    for bank in routing["bank"].as_array().unwrap() {
        let code = bank["code"].as_str().unwrap();
        let name = bank["name"].as_str().unwrap();
        let mine: Vec<_> = oracle.payments.iter().filter(|p| p.bank == code).collect();
        let approved: Vec<_> = mine.iter().filter(|p| p.approved_fen > 0).collect();
        let approved_fen: i64 = approved.iter().map(|p| p.approved_fen).sum();
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{code} {name}")))
            .unwrap_or_else(|| panic!("no row for {code}:\n{stdout}"));
        let rest = row[format!("{code} {name}").len()..].replace([',', ';'], " ");
        let cells: Vec<&str> = rest.split_whitespace().collect();
        assert_eq!(cells[0].parse::<usize>().unwrap(), approved.len(), "{row}");
        assert_eq!(yuan(cells[1]), approved_fen, "{row}");
        assert_eq!(
            cells[2].parse::<usize>().unwrap(),
            mine.len() - approved.len(),
            "{row}"
        );
        // The bank's own log: same count and amount approved.
        assert_eq!(cells[3].parse::<usize>().unwrap(), approved.len(), "{row}");
        assert_eq!(yuan(cells[5]), approved_fen, "{row}");
        // The QR payments among them, played (not skipped).
        let qr = mine.iter().filter(|p| p.channel == "qr").count();
        if qr > 0 {
            assert!(row.ends_with(&format!("; {qr} by QR")), "{row}");
        }
    }

    // Personal data stays masked: no holder name, ID number or PAN in clear.
    for clear in [
        "赵文博",
        "王喆",
        "120101198805121236",
        "6214830200000087653",
        "6217001234000000016",
    ] {
        assert!(!stdout.contains(clear), "{clear} in clear:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&data);
}

/// Processes whose environment carries the demo's run marker for `data`.
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
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
    }
    found
}

#[test]
fn ctrl_c_stops_every_process_the_demo_started() {
    // Every platform binary, built beside ssc-demo (which finds them there).
    workspace_binary("ssc-demo");
    let data = data_dir("ctrlc");
    std::fs::create_dir_all(&data).unwrap();
    let data = data.canonicalize().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ssc-demo"))
        .current_dir(root())
        // The in-process reader: this test must not take vpcd's slot from the other one.
        .args(["--in-process-reader", "--data", data.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        // Every service is up once the day starts.
        if line.starts_with("[5/6]") {
            break;
        }
    }
    // Keep draining stderr, as a terminal would.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    assert!(
        seen.iter().any(|l| l.starts_with("[5/6]")),
        "the demo did not reach the day:\n{}",
        seen.join("\n")
    );
    let running = marked_processes(&data);
    // HSM, three nodes, two bank simulators, the payment switch at least.
    assert!(running.len() >= 7, "{running:#?}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(demo.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "ssc-demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest = drain.join().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "exit status after Ctrl-C; stderr:\n{}",
        rest.join("\n")
    );
    // Orphans would have been re-parented and still carry the marker.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut left = marked_processes(&data);
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = marked_processes(&data);
    }
    assert!(left.is_empty(), "left running after Ctrl-C: {left:#?}");
    let _ = std::fs::remove_dir_all(&data);
}
