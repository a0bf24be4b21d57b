//! `ssc-bench` (`scripts/bench`): runs the project's benchmarks one after another with short,
//! fixed parameters and prints ONE table (Markdown, ready for the README's "Measured") with the
//! machine's cores, the load average before each benchmark, and the conditions.
//!
//! Each benchmark is the project's own (`cargo bench -p … --bench …`); this program only picks
//! the parameters and reads the figures from its output (`parse`). A benchmark that is missing
//! (not written yet) or fails is listed as such, never given a figure. The raw outputs are kept
//! under `target/bench-logs/`.

mod parse;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ssc-bench",
    about = "Run the project's benchmarks with fixed short parameters and print one table"
)]
struct Args {
    /// Also run the settlement and ledger benchmarks on PostgreSQL (LEDGER_TEST_PG_URL).
    #[arg(long)]
    postgres: bool,
    /// Only the benchmarks whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Where the raw outputs go.
    #[arg(long, default_value = "target/bench-logs")]
    logs: PathBuf,
}

/// One row of the table.
struct Row {
    what: String,
    figure: String,
    load: String,
    how: String,
}

/// One benchmark run: package, bench target, arguments after `--`.
struct Run {
    name: &'static str,
    package: &'static str,
    bench: &'static str,
    file: &'static str,
    args: Vec<String>,
    needs_pcsc: bool,
}

fn runs(postgres: bool) -> Vec<Run> {
    let db = if postgres { "both" } else { "sqlite" };
    let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        Run {
            name: "settle",
            package: "settlement",
            bench: "settle_bench",
            file: "settlement/benches/settle_bench.rs",
            args: owned(&[
                "--db",
                db,
                "--clients",
                "32",
                "--settlements",
                "4000",
                "--persons",
                "20000",
                "--connections",
                "8",
            ]),
            needs_pcsc: false,
        },
        Run {
            name: "region",
            package: "settlement",
            bench: "region_bench",
            file: "settlement/benches/region_bench.rs",
            args: owned(&["--db", db, "--clients", "16", "--settlements", "1000"]),
            needs_pcsc: false,
        },
        Run {
            name: "ledger",
            package: "settlement",
            bench: "ledger_bench",
            file: "settlement/benches/ledger_bench.rs",
            args: owned(&["--db", db, "--submitters", "32", "--postings", "5000"]),
            needs_pcsc: false,
        },
        Run {
            name: "payments",
            package: "settlement",
            bench: "payments_bench",
            file: "settlement/benches/payments_bench.rs",
            args: owned(&["--terminals", "16", "--auths", "2000"]),
            needs_pcsc: false,
        },
        Run {
            name: "hsm",
            package: "hsm",
            bench: "hsm_ops",
            file: "hsm/benches/hsm_ops.rs",
            args: owned(&["--warm-up-time", "1", "--measurement-time", "3", "--noplot"]),
            needs_pcsc: false,
        },
        Run {
            name: "card_read",
            package: "terminal-agent",
            bench: "card_read",
            file: "terminal-agent/benches/card_read.rs",
            args: Vec::new(),
            needs_pcsc: true,
        },
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "?".to_owned(), |kb| format!("{} GiB", kb / 1_048_576));
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({model}), {memory} RAM, {rustc}")
}

/// True when pcscd's vpcd listens (its second slot is what card_read uses, the first one
/// tells us the driver is loaded).
fn pcsc_present() -> bool {
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|t| {
        t.lines()
            .any(|l| l.contains(":8C7B ") && l.contains(" 0A "))
    })
}

/// Runs one benchmark; returns its stdout (and keeps it in `logs`).
fn run_bench(run: &Run, logs: &Path) -> Result<Option<String>> {
    let log = logs.join(format!("{}.txt", run.name));
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args([
            "bench",
            "--locked",
            "-p",
            run.package,
            "--bench",
            run.bench,
            "--",
        ])
        .args(&run.args)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(
            logs.join(format!("{}.err.txt", run.name)),
        )?);
    let output = command
        .output()
        .with_context(|| format!("running {}", run.bench))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::write(&log, &text)?;
    Ok(output.status.success().then_some(text))
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

fn per_s(v: f64) -> String {
    let whole = format!("{v:.0}");
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table rows for one benchmark's output.
fn rows(run: &Run, text: &str, load: &str, how: &str) -> Vec<Row> {
    let row = |what: &str, figure: Option<String>| Row {
        what: what.to_owned(),
        figure: figure.unwrap_or_else(|| "figure not found in the output".to_owned()),
        load: load.to_owned(),
        how: how.to_owned(),
    };
    match run.name {
        "settle" => ["sqlite", "postgres"]
            .iter()
            .filter(|db| text.contains(&format!("[{db}]")))
            .map(|db| {
                let tag = format!("[{db}]");
                let rate = parse::rate_on(text, &tag, "settlements/s");
                let p99 = parse::after(text, &format!("{tag} 2204+2207 latency"), "p99");
                row(
                    &format!("medical settlement 2204+2207, same region, {db}, 32 HIS clients"),
                    rate.zip(p99)
                        .map(|(r, p)| format!("{}/s, p99 {}", per_s(r), ms(p))),
                )
            })
            .collect(),
        "region" => text
            .lines()
            .filter(|l| l.contains("settlements (2207)"))
            .map(|line| {
                let db = line
                    .split(']')
                    .next()
                    .unwrap_or("?")
                    .trim_start_matches('[');
                let name = line
                    .split(':')
                    .next()
                    .and_then(|head| head.split("] ").nth(1))
                    .unwrap_or("?");
                row(
                    &format!("2207 through three region nodes, {name}, {db}, 16 HIS clients"),
                    parse::rate(line, "/s")
                        .zip(parse::after(line, "/s", "p99"))
                        .map(|(r, p)| format!("{}/s, p99 {}", per_s(r), ms(p))),
                )
            })
            .collect(),
        "ledger" => text
            .lines()
            .filter(|l| l.contains("postings/s"))
            .map(|line| {
                let label = line.split(':').next().unwrap_or("?").to_owned();
                row(
                    &format!("ledger 4-leg postings, one hot account, {label}, 32 submitters"),
                    parse::rate(line, "postings/s")
                        .zip(parse::after(line, "postings/s", "p99"))
                        .map(|(r, p)| format!("{}/s, p99 {}", per_s(r), ms(p))),
                )
            })
            .collect(),
        "payments" => vec![row(
            "card authorisations through the switch (ARQC, ISO 8583, issuer on loopback), 16 terminals",
            parse::rate(text, "auths/s")
                .zip(parse::after(text, "auths/s", "p99"))
                .map(|(r, p)| format!("{}/s, p99 {}", per_s(r), ms(p))),
        )],
        "hsm" => [
            (
                "emv/arqc_verify_arpc_tdes",
                "HSM: ARQC verification + ARPC, 3DES",
            ),
            (
                "emv/arqc_verify_arpc_sm4",
                "HSM: ARQC verification + ARPC, SM4",
            ),
            (
                "pin/translate_iso0_tdes",
                "HSM: PIN translation ISO 0 → ISO 0, 3DES",
            ),
        ]
        .iter()
        .map(|(id, what)| {
            row(
                what,
                parse::criterion_ns(text, id)
                    .map(|ns| format!("{:.1} µs, {}/s on one core", ns / 1e3, per_s(1e9 / ns))),
            )
        })
        .collect(),
        "card_read" => {
            let mut blocks: Vec<(String, String)> = Vec::new();
            for line in text.lines() {
                if line.contains("APDUs per read") {
                    let image = line
                        .split(':')
                        .next()
                        .unwrap_or("?")
                        .trim_end_matches(".toml");
                    blocks.push((image.to_owned(), String::new()));
                }
                if let Some(block) = blocks.last_mut() {
                    block.1.push_str(line);
                    block.1.push('\n');
                }
            }
            blocks
                .iter()
                .map(|(image, block)| {
                    let total = parse::after(block, "inserted → identity", "median");
                    let read = parse::after(block, "event → identity", "median");
                    let apdus = parse::rate(block, "APDUs per read");
                    row(
                        &format!("card {image} inserted → identity returned (pcscd + vpcd)"),
                        total.zip(read).map(|(t, r)| {
                            format!(
                                "{} (of which {} after the insertion event), {} APDUs",
                                ms(t),
                                ms(r),
                                apdus.map_or("?".to_owned(), |a| format!("{a:.0}"))
                            )
                        }),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

#[allow(clippy::print_stdout)]
fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.logs)?;
    let started = Instant::now();
    let load_before = load_average();
    let mut table = Vec::new();
    for run in runs(args.postgres) {
        if args.only.as_deref().is_some_and(|o| !run.name.contains(o)) {
            continue;
        }
        let how = format!(
            "`cargo bench -p {} --bench {}{}{}`",
            run.package,
            run.bench,
            if run.args.is_empty() { "" } else { " -- " },
            run.args
                .iter()
                .filter(|a| *a != "--noplot")
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        );
        if !Path::new(run.file).exists() {
            table.push(Row {
                what: format!("{} benchmark", run.bench),
                figure: "not in the repository yet".to_owned(),
                load: String::new(),
                how: format!("({})", run.file),
            });
            continue;
        }
        if run.needs_pcsc && !pcsc_present() {
            table.push(Row {
                what: format!("{} benchmark", run.bench),
                figure: "skipped: pcscd with vpcd is not running (scripts/ensure-pcsc)".to_owned(),
                load: String::new(),
                how,
            });
            continue;
        }
        let load = load_average();
        let mut err = std::io::stderr();
        let _ = writeln!(err, "ssc-bench: {} (load average {load})", run.bench);
        match run_bench(&run, &args.logs)? {
            Some(text) => table.extend(rows(&run, &text, &load, &how)),
            None => table.push(Row {
                what: format!("{} benchmark", run.bench),
                figure: format!("FAILED (see {}/{}.err.txt)", args.logs.display(), run.name),
                load,
                how,
            }),
        }
    }
    println!(
        "Measured by `scripts/bench` on {}; load average {} before, {} after; {:.0} s in all.",
        machine(),
        load_before,
        load_average(),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| what | figure | load avg at start | how |");
    println!("|---|---|---|---|");
    for row in &table {
        println!(
            "| {} | {} | {} | {} |",
            row.what, row.figure, row.load, row.how
        );
    }
    Ok(())
}
