//! `settlement-directory`: the administrator's tool for the open application directory (issue 8).
//!
//! - `import --csv FILE --by ACCOUNT`: imports the whole list as the new directory; prints the new
//!   version and its added/changed/removed counts, or "unchanged".
//! - `versions [--limit N]`: the versions, newest first (who, when in UTC, counts).
//! - `show-version N`: one version's per-use changes.
//! - `export --csv FILE`: writes the current directory in the import format.
//! - `serve --listen ADDR`: serves only the directory's API and page (for a look at the page; the
//!   switch's `settlement serve` mounts the same router).
//!
//! The database is the switch's: `DATABASE_URL` (PostgreSQL or `sqlite:PATH`) if set, else
//! `DATA_DIR/ledger.sqlite3`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use settlement::directory::api::wire::utc;
use settlement::directory::{Directory, ImportOutcome, to_csv};
use settlement::{Ledger, LedgerOptions};

/// Prints a line to stdout (the command's output; a closed pipe is not an error worth a panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(about = "Administer the open application directory of card uses")]
struct Cli {
    /// Data directory (SQLite file), unless DATABASE_URL is set.
    #[arg(long, default_value = "data", global = true)]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import the whole list from a CSV file (fixtures/catalog/README.md gives the format).
    Import {
        /// The CSV file.
        #[arg(long)]
        csv: PathBuf,
        /// The importing operator's account id (ASCII; published with the version).
        #[arg(long)]
        by: String,
    },
    /// List versions, newest first.
    Versions {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one version's changes.
    ShowVersion {
        /// The version number.
        version: i64,
    },
    /// Write the current directory as CSV.
    Export {
        /// The output file.
        #[arg(long)]
        csv: PathBuf,
    },
    /// Serve the directory's API and page only.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
    },
}

async fn open(data_dir: &std::path::Path) -> Result<Ledger> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ledger::open_url(&url, LedgerOptions::default())
            .await
            .context("opening DATABASE_URL"),
        _ => {
            std::fs::create_dir_all(data_dir).context("creating the data directory")?;
            Ledger::open_data_dir(data_dir, LedgerOptions::default())
                .await
                .context("opening the data directory")
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let ledger = open(&cli.data_dir).await?;
    let directory = Directory::from_ledger(&ledger)
        .await
        .context("loading the directory")?;
    match cli.command {
        Command::Import { csv, by } => {
            let bytes =
                std::fs::read(&csv).with_context(|| format!("reading {}", csv.display()))?;
            match directory.import_csv(&bytes, &by).await.context("import")? {
                ImportOutcome::NewVersion(v) => out!(
                    "version {} at {} by {}: {} added, {} changed, {} removed, {} uses",
                    v.version,
                    utc(v.at_ms),
                    v.by,
                    v.added,
                    v.changed,
                    v.removed,
                    v.uses_total
                ),
                ImportOutcome::Unchanged(v) => out!(
                    "unchanged: the file equals version {}",
                    v.map_or(0, |v| v.version)
                ),
            }
        }
        Command::Versions { limit } => {
            for v in directory.versions(None, limit).await? {
                out!(
                    "{}\t{}\t{}\t+{} ~{} -{}\t{} uses\t{}",
                    v.version,
                    utc(v.at_ms),
                    v.by,
                    v.added,
                    v.changed,
                    v.removed,
                    v.uses_total,
                    v.file_sha256
                );
            }
        }
        Command::ShowVersion { version } => {
            let (info, changes) = directory
                .version(version)
                .await?
                .with_context(|| format!("no version {version}"))?;
            out!(
                "version {} at {} by {}",
                info.version,
                utc(info.at_ms),
                info.by
            );
            for change in changes {
                out!(
                    "{}\t{}\t{}",
                    change.number,
                    change.kind.code(),
                    change.fields.join(",")
                );
            }
        }
        Command::Export { csv } => {
            let bytes = to_csv(&directory.snapshot().uses).context("writing CSV")?;
            std::fs::write(&csv, bytes).with_context(|| format!("writing {}", csv.display()))?;
        }
        Command::Serve { listen } => {
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("binding {listen}"))?;
            out!("directory page: http://{listen}/directory/");
            axum::serve(
                listener,
                settlement::directory::api::router(Arc::new(directory)),
            )
            .await
            .context("serving")?;
        }
    }
    Ok(())
}
