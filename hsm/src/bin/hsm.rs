//! The `hsm` binary: `serve` (HTTP/JSON on loopback), `exec` (one JSON request on stdin),
//! `init` (create the data directory) and `demo-keys` (a fresh demo key set).
//!
//! The LMK comes from `--lmk-file` (mode 0600) or `HSM_LMK_HEX`; its KCV is printed at start.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use hsm::lmk::Lmk;
use hsm::ops::Hsm;
use hsm::server::{AppState, CALLERS_ENV, Callers};
use serde_json::{Value, json};

/// Largest request read by `hsm exec`, in bytes.
const EXEC_REQUEST_LEN_MAX: u64 = 256 * 1024;

#[derive(Parser)]
#[command(
    name = "hsm",
    version,
    about = "A software payment HSM (keys under an LMK, TR-31, EMV/PBOC, PIN, MAC, SM2/SM4)"
)]
struct Cli {
    /// File holding the LMK as 64 hex characters (mode 0600); default: the HSM_LMK_HEX variable.
    #[arg(long, global = true)]
    lmk_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve POST /v1/<OperationName> over HTTP/JSON.
    Serve {
        /// Listen address; loopback only unless --allow-remote.
        #[arg(long, default_value = "127.0.0.1:8700")]
        listen: SocketAddr,
        /// Data directory (key journal and audit log).
        #[arg(long)]
        data: PathBuf,
        /// File of `name:token` lines (mode 0600); default: the HSM_CALLERS variable.
        #[arg(long)]
        callers_file: Option<PathBuf>,
        /// Allow a non-loopback listen address.
        #[arg(long)]
        allow_remote: bool,
    },
    /// Run one JSON request `{"operation": "...", ...}` read from stdin; print the JSON reply.
    Exec {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// Caller name written to the audit log.
        #[arg(long, default_value = "cli")]
        caller: String,
    },
    /// Create the data directory and its key journal; print the LMK's KCV.
    Init {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Generate the demo key set (issuer MK-AC 3DES and SM4, PIN, MAC, SSC, KBPK, ...).
    DemoKeys {
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

fn load_lmk(file: Option<&Path>) -> Result<Lmk, String> {
    match file {
        Some(path) => Lmk::from_file(path),
        None => Lmk::from_env(),
    }
    .map_err(|e| e.to_string())
}

fn open(data: &Path, lmk_file: Option<&Path>) -> Result<Hsm, String> {
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let hsm = Hsm::open(data, load_lmk(lmk_file)?).map_err(|e| e.to_string())?;
    eprintln!("hsm: LMK KCV {}", hsm.lmk_kcv_hex());
    Ok(hsm)
}

fn out(text: &str) -> Result<(), String> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(|e| e.to_string())
}

/// The demo key set: (alias, algorithm, usage, mode of use, exportability).
const DEMO_KEYS: [(&str, KeyAlgorithm, KeyUsage, ModeOfUse, Exportability); 13] = [
    (
        "kbpk-aes",
        KeyAlgorithm::Aes256,
        KeyUsage::K1,
        ModeOfUse::B,
        Exportability::NonExportable,
    ),
    (
        "imk-ac-tdes",
        KeyAlgorithm::Tdes2,
        KeyUsage::E0,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "imk-ac-sm4",
        KeyAlgorithm::Sm4,
        KeyUsage::E0,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "imk-smi-sm4",
        KeyAlgorithm::Sm4,
        KeyUsage::E2,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "imk-smc-sm4",
        KeyAlgorithm::Sm4,
        KeyUsage::E1,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "pek-zone",
        KeyAlgorithm::Tdes2,
        KeyUsage::P0,
        ModeOfUse::B,
        Exportability::Exportable,
    ),
    (
        "pvk-ibm3624",
        KeyAlgorithm::Tdes2,
        KeyUsage::V1,
        ModeOfUse::C,
        Exportability::NonExportable,
    ),
    (
        "pvk-visa",
        KeyAlgorithm::Tdes2,
        KeyUsage::V2,
        ModeOfUse::C,
        Exportability::NonExportable,
    ),
    (
        "mac-retail",
        KeyAlgorithm::Tdes2,
        KeyUsage::M3,
        ModeOfUse::C,
        Exportability::Exportable,
    ),
    (
        "mac-cmac",
        KeyAlgorithm::Aes128,
        KeyUsage::M6,
        ModeOfUse::C,
        Exportability::Exportable,
    ),
    (
        "ssc-int-master",
        KeyAlgorithm::Sm4,
        KeyUsage::SscInternalAuth,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "ssc-ext-master",
        KeyAlgorithm::Sm4,
        KeyUsage::SscExternalAuth,
        ModeOfUse::X,
        Exportability::Exportable,
    ),
    (
        "sig-sm2",
        KeyAlgorithm::Sm2,
        KeyUsage::S0,
        ModeOfUse::S,
        Exportability::NonExportable,
    ),
];

fn demo_keys(hsm: &mut Hsm) -> Result<(), String> {
    out("alias\tusage\talgorithm\tkcv")?;
    for (alias, algorithm, usage, mode, exportability) in DEMO_KEYS {
        let meta = match hsm.store().get(alias) {
            Ok(existing) => existing.clone(),
            Err(_) => hsm
                .create_key(
                    "demo-keys",
                    KeyHeader {
                        alias: alias.to_owned(),
                        algorithm,
                        usage,
                        mode,
                        version: *b"00",
                        exportability,
                    },
                )
                .map_err(|e| e.to_string())?,
        };
        out(&format!(
            "{alias}\t{}\t{}\t{}",
            usage.code(),
            algorithm.name(),
            meta.kcv_hex()
        ))?;
    }
    Ok(())
}

fn exec(hsm: &mut Hsm, caller: &str) -> Result<bool, String> {
    let mut text = String::new();
    std::io::stdin()
        .take(EXEC_REQUEST_LEN_MAX)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let reply = match serde_json::from_str::<Value>(&text) {
        Err(e) => Err(
            json!({"code": "BAD_JSON", "message": format!("request is not JSON (line {}, column {})", e.line(), e.column())}),
        ),
        Ok(mut request) => {
            let operation = request
                .as_object_mut()
                .and_then(|m| m.remove("operation"))
                .and_then(|v| v.as_str().map(str::to_owned));
            match operation {
                None => Err(
                    json!({"code": "INVALID_REQUEST", "message": "field 'operation': is required"}),
                ),
                Some(op) => hsm::ops::api::execute(hsm, caller, &op, &request)
                    .map_err(|e| json!({"code": e.code(), "message": e.to_string()})),
            }
        }
    };
    match reply {
        Ok(v) => out(&v.to_string()).map(|()| true),
        Err(v) => out(&v.to_string()).map(|()| false),
    }
}

async fn serve(
    listen: SocketAddr,
    data: &Path,
    lmk_file: Option<&Path>,
    callers_file: Option<&Path>,
    allow_remote: bool,
) -> Result<(), String> {
    if !listen.ip().is_loopback() && !allow_remote {
        return Err(format!(
            "refusing to listen on non-loopback address {listen}; pass --allow-remote to do so"
        ));
    }
    let callers = match callers_file {
        Some(path) => Callers::from_file(path),
        None => Callers::parse(&std::env::var(CALLERS_ENV).unwrap_or_default()),
    }
    .map_err(|e| e.to_string())?;
    let hsm = open(data, lmk_file)?;
    let app = hsm::server::app(AppState::new(hsm, callers));
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "hsm serving POST /v1/<OperationName>");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<bool, String> {
    let lmk_file = cli.lmk_file.as_deref();
    match cli.command {
        Command::Init { data } => {
            let hsm = open(&data, lmk_file)?;
            out(&format!(
                "initialised {} (LMK KCV {})",
                data.display(),
                hsm.lmk_kcv_hex()
            ))?;
            Ok(true)
        }
        Command::DemoKeys { data } => demo_keys(&mut open(&data, lmk_file)?).map(|()| true),
        Command::Exec { data, caller } => exec(&mut open(&data, lmk_file)?, &caller),
        Command::Serve {
            listen,
            data,
            callers_file,
            allow_remote,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(serve(
                    listen,
                    &data,
                    lmk_file,
                    callers_file.as_deref(),
                    allow_remote,
                ))
                .map(|()| true)
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("hsm: {message}");
            ExitCode::from(2)
        }
    }
}
