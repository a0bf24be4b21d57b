//! `ssc-demo`: the README's main job. It starts the whole platform from its own binaries, on
//! the embedded default (SQLite), and plays a day of traffic from `fixtures/`:
//!
//! 1. the HSM (`hsm serve`) with a fresh LMK and fresh demo keys, the SSC authentication masters
//!    entered as components (`keys`);
//! 2. three regional settlement nodes, 北京 110000, 天津 120000, 河北 130000 (`settlement serve
//!    --region X --regions FILE`), each with its own database and insured persons (`cluster`);
//! 3. the issuer bank simulators (Python), the payment switch with its own HSM partition, and a
//!    QR partner (`payments`);
//! 4. the terminal agent with the virtual cards of `fixtures/cards/` — through pcscd + vpcd when
//!    present, else over an in-process reader, and it says which (`agent`);
//! 5. the day of `fixtures/day/day.toml` (`day`, `play`): visits at hospitals and pharmacies of
//!    each region, outpatient and inpatient, a cancellation, a reply lost and reversed (2601),
//!    card payments approved and declined, QR payments;
//! 6. the clearing windows closed, and a summary (`summary`).
//!
//! Ctrl-C (or SIGTERM) stops every child process (`procs`).
//!
//! `ssc-demo serve COMPONENT --config FILE` runs one component for deployment instead
//! (`serve`, `docs/deploy.md`). `ssc-demo cluster [--postgres]` (`scripts/cluster`) starts only
//! the three regional nodes, prints their addresses and credentials, and keeps them up until
//! Ctrl-C (`cluster`).

mod agent;
mod cards;
mod cluster;
mod day;
mod his;
mod keys;
mod money;
mod payments;
mod play;
mod procs;
mod progress;
mod relay;
mod serve;
mod summary;
mod web;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use agent::{Agent, AgentSetup};
use cluster::{Cluster, ClusterOptions, Database, Ports};
use payments::Payments;
use play::Player;
use progress::Progress;
use summary::Summary;

#[derive(Parser)]
#[command(
    name = "ssc-demo",
    about = "Start the platform (HSM, three regional nodes, payment switch, terminal agent) and play a day of traffic from fixtures/"
)]
struct Args {
    /// Without a command: the demo. `serve`: one component for deployment.
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The fixtures folder (cards/, persons/, policy/, catalogue/, institutions/, regions/,
    /// banks/, day/).
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    /// The day's script (default: FIXTURES/day/day.toml).
    #[arg(long)]
    day: Option<PathBuf>,
    /// Data folder; emptied at start.
    #[arg(long, default_value = "target/demo")]
    data: PathBuf,
    /// Use the in-process reader even when pcscd with vpcd is present.
    #[arg(long)]
    in_process_reader: bool,
    /// After the summary, keep everything running until Ctrl-C (to open the console).
    #[arg(long)]
    stay: bool,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Run one component of the platform configured by a TOML file (docs/deploy/*.toml).
    Serve {
        /// Which component.
        component: serve::Component,
        /// Its config file.
        #[arg(long)]
        config: PathBuf,
        /// Print the command it would run (secrets as variable names) and exit.
        #[arg(long)]
        check: bool,
    },
    /// Start the three regional settlement nodes only (one database each, linked by signed
    /// HTTP), print their addresses, the gateway credentials and each console's login, and keep
    /// them up until Ctrl-C.
    Cluster(ClusterArgs),
}

#[derive(clap::Args)]
struct ClusterArgs {
    /// The fixtures folder (regions/, persons/, catalog/, and the reference data).
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    /// Data folder (SQLite files, logs, the regions file); emptied at start.
    #[arg(long, default_value = "target/cluster")]
    data: PathBuf,
    /// One PostgreSQL database per node instead of SQLite: PREFIX_110000 … on the server of
    /// --pg-url, dropped and created afresh.
    #[arg(long)]
    postgres: bool,
    /// A PostgreSQL URL whose user may create databases (only its server and user are used).
    #[arg(
        long,
        env = "LEDGER_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
    /// Name prefix of the nodes' PostgreSQL databases.
    #[arg(long, default_value = "ssc_cluster")]
    db_prefix: String,
    /// Listen on free loopback ports instead of the regions file's (18110, 18120, 18130).
    #[arg(long)]
    free_ports: bool,
}

/// Set by the Ctrl-C handler.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// True once Ctrl-C (or SIGTERM) arrived.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::Acquire)
}

fn main() {
    let args = Args::parse();
    if let Some(Cmd::Serve {
        component,
        config,
        check,
    }) = &args.command
    {
        if let Err(e) = serve::serve(*component, config, *check) {
            let _ = writeln!(std::io::stderr(), "ssc-demo serve: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    let handler = ctrlc::set_handler(|| {
        if STOPPING.swap(true, Ordering::AcqRel) {
            return;
        }
        // Never panic on a closed stderr here: the children must be stopped.
        let mut err = std::io::stderr();
        let _ = writeln!(
            err,
            "\nssc-demo: interrupted; stopping every process it started"
        );
        let killed = procs::stop_all();
        if !killed.is_empty() {
            let _ = writeln!(err, "ssc-demo: killed after the grace period: {killed:?}");
        }
        std::process::exit(130);
    });
    if let Err(e) = handler {
        eprintln!("ssc-demo: cannot install the Ctrl-C handler: {e}");
        std::process::exit(1);
    }
    let result = match &args.command {
        Some(Cmd::Cluster(cluster_args)) => run_cluster(cluster_args),
        _ => run(&args),
    };
    if let Err(e) = result {
        if stopping() {
            // The handler is stopping the children and exits.
            std::thread::sleep(Duration::from_secs(60));
        }
        let _ = writeln!(std::io::stderr(), "ssc-demo: {e:#}");
        std::process::exit(1);
    }
}

/// A path as UTF-8 text (for command lines and config files).
pub fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Fixed steps before and after the day's events, for the progress bar.
const SETUP_STEPS: u64 = 4;
const CLOSING_STEPS: u64 = 1;

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let bins = procs::bin_dir()?;
    let fixtures = args.fixtures.canonicalize().with_context(|| {
        format!(
            "{} not found (run from the repository root)",
            args.fixtures.display()
        )
    })?;
    let root = fixtures
        .parent()
        .context("the fixtures folder has no parent")?
        .to_path_buf();
    let day_path = args
        .day
        .clone()
        .unwrap_or_else(|| fixtures.join("day/day.toml"));
    let day = day::Day::load(&day_path)?;
    let cards = cards::load_cards(&fixtures.join("cards"))?;
    let data = &args.data;
    if data.exists() {
        std::fs::remove_dir_all(data).with_context(|| format!("emptying {}", data.display()))?;
    }
    std::fs::create_dir_all(data)?;
    let data = data.canonicalize()?;
    procs::set_run_marker(&path_str(&data)?);
    let no_pcsc_reason = if args.in_process_reader {
        Some("--in-process-reader")
    } else if agent::pcsc_available() {
        None
    } else {
        Some("pcscd with vpcd not found")
    };

    let progress = Progress::new(SETUP_STEPS + day.event.len() as u64 + CLOSING_STEPS);
    progress.say(
        "[1/6] HSM: fresh LMK and demo keys; the SSC authentication masters entered as components",
    );
    let mut hsm = keys::start_hsm(&bins, &data, &cards)?;
    progress.say(&format!(
        "      {} demo keys generated; SSC masters: external KCV {}, internal KCV {}",
        hsm.demo_keys, hsm.kcvs.0, hsm.kcvs.1
    ));
    progress.step("HSM");

    progress.say("[2/6] three regional settlement nodes (SQLite each), linked by signed HTTP");
    let cluster = Cluster::start(&bins, &data, &fixtures, &ClusterOptions::default())?;
    for node in &cluster.nodes {
        progress.say(&format!(
            "      {} {} at {}",
            node.admdvs, node.name, node.url
        ));
    }
    progress.step("regional nodes");

    progress.say("[3/6] payments: issuer bank simulators (Python, pyiso8583), the payment switch, a QR partner");
    let payments = Payments::start(&bins, &root, &data, &fixtures, &cards)?;
    for bank in &payments.banks {
        progress.say(&format!("      bank {} {}", bank.code, bank.name));
    }
    progress.say(&format!("      payment switch at {}", payments.url));
    progress.step("payments");

    progress.say("[4/6] terminal agent and card reader");
    let setup = AgentSetup {
        hsm_url: &hsm.url,
        hsm_token: &hsm.agent_token,
        payments_url: &payments.url,
        terminal_id: play::TERMINAL_ID,
        merchant_id: play::MERCHANT_ID,
        merchant_name: "DEMO PHARMACY",
    };
    let mut agent = match no_pcsc_reason {
        None => Agent::start_pcsc(&bins, &data, &setup)?,
        Some(reason) => Agent::start_in_process(&setup, reason)?,
    };
    progress.say(&format!("      {}", agent.describe()));
    progress.step("agent");
    let reader_mode = agent.describe();

    progress.say(&format!(
        "[5/6] the day: {} events from {}",
        day.event.len(),
        day_path.display()
    ));
    let mut player = Player::new(&cluster, &mut agent, &payments, &cards, &fixtures)?;
    for (i, event) in day.event.iter().enumerate() {
        if stopping() {
            bail!("interrupted");
        }
        let line = player
            .play(&day, event)
            .with_context(|| format!("event {} of {}", i + 1, day_path.display()))?;
        progress.say(&format!("      {line}"));
        progress.step("the day");
    }
    player.finish()?;
    let result = std::mem::take(&mut player.result);
    drop(player);

    progress.say("[6/6] clearing: every node's window closed (atomic cut), net positions");
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    // The cross-region messages (reversals of cancelled settlements) are delivered by each
    // node's outbox; wait until both sides of every pair agree before closing.
    let positions = wait_balanced(&cluster, &client)?;
    let windows = cluster.close_windows(&client)?;
    progress.step("clearing");
    progress.finish();
    let bank_logs = payments
        .banks
        .iter()
        .map(Payments::bank_log)
        .collect::<Result<Vec<_>>>()?;
    let web_line = web_line(&cluster, &client)?;
    Summary {
        day: &result,
        cluster: &cluster,
        payments: &payments,
        bank_logs,
        positions: &positions,
        windows: &windows,
        reader_mode: &reader_mode,
        web_line,
        elapsed: started.elapsed(),
        data: &data,
    }
    .print();
    if args.stay {
        eprintln!("ssc-demo: everything keeps running; Ctrl-C stops it");
        while !stopping() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    agent.stop();
    payments.stop();
    cluster.stop();
    hsm.proc.stop();
    Ok(())
}

/// How long the outboxes get to deliver before the positions must balance.
const BALANCE_TIMEOUT_MS: u64 = 20_000;

/// Polls every node's positions until each pair's two sides cancel out (the outboxes have
/// delivered), then returns them.
fn wait_balanced(
    cluster: &Cluster,
    client: &reqwest::blocking::Client,
) -> Result<Vec<(String, String, i64)>> {
    let deadline = Instant::now() + Duration::from_millis(BALANCE_TIMEOUT_MS);
    loop {
        let positions = cluster.positions(client)?;
        let balanced = positions.iter().all(|(node, counter, fen)| {
            let other = positions
                .iter()
                .find(|(n, c, _)| n == counter && c == node)
                .map_or(0, |p| p.2);
            fen + other == 0
        });
        if balanced || Instant::now() > deadline {
            return Ok(positions);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Each node's console address and login (checked by logging in), else the directory's
/// address when no console is served.
fn web_line(cluster: &Cluster, client: &reqwest::blocking::Client) -> Result<String> {
    let first = cluster.nodes.first().context("no nodes")?;
    if cluster.console_login_ok(first)? {
        let mut text = "operators' console (each node its own; `--stay` keeps them up after the \
                        summary):"
            .to_owned();
        for node in &cluster.nodes {
            let (name, password) = &node.console_admin;
            text.push_str(&format!(
                "\n  {} {}/console/  log in as {name} / {password}",
                summary::pad(&format!("{} {}", node.admdvs, node.name), 12),
                node.url
            ));
        }
        return Ok(text);
    }
    let uses = web::get_ok(
        client,
        &format!("{}/api/directory/v1/uses?limit=1", first.url),
    )?;
    let total = uses["total"]
        .as_u64()
        .context("the directory API gave no total")?;
    Ok(format!(
        "directory of card uses: {total} uses (fixtures/catalog) at {}/directory/ (no operators' console is served)",
        first.url
    ))
}

/// `ssc-demo cluster`: the three regional nodes, up until Ctrl-C (the handler stops them and
/// exits 130) or until one of them exits (an error).
#[allow(clippy::print_stdout)]
fn run_cluster(args: &ClusterArgs) -> Result<()> {
    let bins = procs::bin_dir()?;
    let fixtures = args.fixtures.canonicalize().with_context(|| {
        format!(
            "{} not found (run from the repository root)",
            args.fixtures.display()
        )
    })?;
    if args.data.exists() {
        std::fs::remove_dir_all(&args.data)
            .with_context(|| format!("emptying {}", args.data.display()))?;
    }
    std::fs::create_dir_all(&args.data)?;
    let data = args.data.canonicalize()?;
    procs::set_run_marker(&path_str(&data)?);
    let options = ClusterOptions {
        ports: if args.free_ports {
            Ports::Free
        } else {
            Ports::FromFile
        },
        database: if args.postgres {
            Database::Postgres {
                admin_url: args.pg_url.clone(),
                prefix: args.db_prefix.clone(),
            }
        } else {
            Database::Sqlite
        },
    };
    let engine = if args.postgres {
        "PostgreSQL, a database each"
    } else {
        "SQLite, a file each"
    };
    eprintln!("ssc-demo cluster: starting three regional settlement nodes ({engine})");
    let mut cluster = Cluster::start(&bins, &data, &fixtures, &options)?;
    println!(
        "ssc-demo cluster: {} regional nodes ({engine}), linked by signed HTTP",
        cluster.nodes.len()
    );
    for node in &cluster.nodes {
        println!("node {} {} {}", node.admdvs, node.name, node.url);
        println!("     data: {}", node.store);
        println!(
            "     console: {}/console/ (log in as {} / {})",
            node.url, node.console_admin.0, node.console_admin.1
        );
    }
    println!(
        "regions file (fresh link keys): {}",
        cluster.regions_file.display()
    );
    println!(
        "HIS caller (x-tif-paasid, token): {} {}",
        cluster.his.paas_id, cluster.his.token
    );
    println!(
        "operator caller (x-tif-paasid, token): {} {}",
        cluster.operator.paas_id, cluster.operator.token
    );
    println!("logs: {}", data.display());
    println!("ready; Ctrl-C stops the nodes");
    std::io::stdout().flush()?;
    while !stopping() {
        for node in &mut cluster.nodes {
            node.proc
                .check_running()
                .with_context(|| format!("node {}", node.admdvs))?;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The Ctrl-C handler is stopping the nodes and exits with 130.
    std::thread::sleep(Duration::from_secs(60));
    cluster.stop();
    Ok(())
}
