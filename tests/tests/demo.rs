//! The README's main job, run as a test: `ssc-demo` starts the HSM, the settlement switch and the
//! terminal agent from their binaries, puts each fixture card into vpcd's reader and settles a
//! bill for its holder. Needs pcscd + vpcd (scripts/check runs scripts/ensure-pcsc first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries ssc-demo starts; `cargo test --workspace` builds them all, `cargo test -p
/// ssc-tests` alone does not, so the test builds what is missing.
const PLATFORM_BINARIES: [(&str, &str); 4] = [
    ("hsm", "hsm"),
    ("settlement", "settlement"),
    ("terminal-agent", "terminal-agent"),
    ("card-core", "ssc-vcard"),
];

fn ensure_binaries(bin_dir: &Path) {
    let missing: Vec<&str> = PLATFORM_BINARIES
        .iter()
        .filter(|(_, bin)| !bin_dir.join(bin).exists())
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return;
    }
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.arg("build").arg("--bins");
    for package in missing {
        command.args(["-p", package]);
    }
    assert!(
        command.status().unwrap().success(),
        "building the platform's binaries"
    );
}

fn yuan(cell: &str) -> i64 {
    let (whole, frac) = cell.split_once('.').unwrap();
    let fen =
        whole.trim_start_matches('-').parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if whole.starts_with('-') { -fen } else { fen }
}

#[test]
fn the_demo_settles_one_bill_per_fixture_card_and_its_totals_add_up() {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_ssc-demo"));
    ensure_binaries(demo.parent().unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let data = tempfile_dir();
    let output = Command::new(&demo)
        .current_dir(root)
        .args(["--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ssc-demo failed:\n{stderr}\n(if pcscd is missing: run scripts/ensure-pcsc as root)"
    );

    let cards = std::fs::read_dir(root.join("fixtures/cards"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    // The bill the demo's HIS sends, priced here from its lines (cnt × pric, in fen):
    // 1×10.00 + 1×25.00 + 20×1.50 + 28×3.20 + 1×300.00 + 1×680.00 + 10×0.50.
    let bill_fen = 1_000 + 2_500 + 20 * 150 + 28 * 320 + 30_000 + 68_000 + 10 * 50;
    assert_eq!(bill_fen, 113_960);

    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("card "))
        .skip(1)
        .take_while(|l| !l.starts_with("total"))
        .collect();
    assert_eq!(rows.len(), cards, "one row per fixture card:\n{stdout}");
    let mut totals = [0i64; 4];
    for row in &rows {
        let amounts: Vec<i64> = row
            .split_whitespace()
            .rev()
            .take(4)
            .map(yuan)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let [bill, fund, account, cash] = amounts[..] else {
            panic!("{row}")
        };
        assert_eq!(bill, bill_fen, "{row}");
        assert_eq!(
            bill,
            fund + account + cash,
            "bill = fund + account + cash: {row}"
        );
        assert!(fund >= 0 && account >= 0 && cash >= 0, "{row}");
        for (t, a) in totals.iter_mut().zip([bill, fund, account, cash]) {
            *t += a;
        }
        // Personal data stays masked in the summary: names show one character, PANs 6 + 4 digits.
        assert!(row.contains('*'), "{row}");
    }
    let total_row = stdout.lines().find(|l| l.starts_with("total")).unwrap();
    let printed: Vec<i64> = total_row.split_whitespace().skip(2).map(yuan).collect();
    assert_eq!(printed, totals.to_vec(), "{total_row}");
    let _ = std::fs::remove_dir_all(&data);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ssc-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
