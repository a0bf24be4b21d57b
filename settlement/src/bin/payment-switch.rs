//! `payment-switch`: the card payment switch of issue 7 as a process. Opens the ledger (whose
//! database also holds the payment tables), the HSM (its own data directory, LMK from
//! `HSM_LMK_HEX` or `--lmk-file`), reads the BIN routing table, recovers reversals left armed
//! by a previous run, signs on to every bank (0800/001), forwards pending reversals every
//! `--forward-interval-ms`, and serves the terminals' JSON API (`payments::api::router`) and,
//! with `--acquirer-listen`, the inbound ISO 8583 interface.
//!
//! The keys the routing table names (banks' MAC keys M3, issuer master keys E0, the terminals'
//! MAC key, partners' SM2 keys S0) must already be in the HSM's data directory (the `hsm`
//! binary's key ceremony); the SM2 key pair terminals seal the PAN to (`--pan-key`, usage D1)
//! is generated inside the HSM at the first start. Stops on Ctrl-C / SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Parser;
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use settlement::payments::qr::{QrOptions, QrPartner};
use settlement::payments::risk::TerminalMap;
use settlement::payments::{RoutingTable, Switch, SwitchOptions};
use settlement::{Admdvs, Ledger, LedgerOptions};

#[derive(Parser)]
#[command(
    name = "payment-switch",
    about = "Card payment switch (ISO 8583 toward issuer banks)"
)]
struct Cli {
    /// BIN routing table (TOML, fixtures/banks/routing.toml format).
    #[arg(long, env = "PAY_ROUTING")]
    routing: PathBuf,
    /// Ledger database: `sqlite:PATH` or `postgres://...`.
    #[arg(long, env = "PAY_DB")]
    db: String,
    /// The HSM's data directory.
    #[arg(long, env = "PAY_HSM_DIR")]
    hsm_dir: PathBuf,
    /// LMK file (else `HSM_LMK_HEX`).
    #[arg(long)]
    lmk_file: Option<PathBuf>,
    /// Terminals' JSON API address.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Inbound ISO 8583 address for POS terminals (off when absent).
    #[arg(long)]
    acquirer_listen: Option<String>,
    /// HSM alias of the POS terminals' MAC key.
    #[arg(long, default_value = "pos-tak")]
    pos_mac_key: String,
    /// Region of the payment accounts in the ledger.
    #[arg(long, default_value = "110000")]
    admdvs: String,
    /// Salt of the PAN hash (a deployment secret).
    #[arg(long, env = "PAY_PAN_SALT", hide_env_values = true)]
    pan_salt: String,
    /// Daily amount limit per card, fen.
    #[arg(long, default_value_t = 5_000_000)]
    daily_limit_fen: i64,
    /// Partner QR keys as `CODE=HSM_ALIAS` (SM2 ID 1234567812345678), repeatable.
    #[arg(long = "qr-partner")]
    qr_partners: Vec<String>,
    /// Longest QR token life, ms.
    #[arg(long, default_value_t = 120_000)]
    qr_lifetime_ms_max: i64,
    /// HSM alias of the SM2 key pair (usage D1) terminals seal the PAN to; created inside the
    /// HSM (non-exportable) at the first start when absent.
    #[arg(long, default_value = "payment-switch-pan")]
    pan_key: String,
    /// Reversal forwarder period, ms.
    #[arg(long, default_value_t = 1_000)]
    forward_interval_ms: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let routing = RoutingTable::from_toml(
        &std::fs::read_to_string(&cli.routing).context("reading the routing table")?,
    )
    .context("checking the routing table")?;
    let lmk = match &cli.lmk_file {
        Some(path) => hsm::lmk::Lmk::from_file(path),
        None => hsm::lmk::Lmk::from_env(),
    }
    .context("loading the LMK")?;
    let mut hsm = hsm::ops::Hsm::open(&cli.hsm_dir, lmk).context("opening the HSM")?;
    if hsm.store().get(&cli.pan_key).is_err() {
        let meta = hsm
            .create_key(
                "payment-switch",
                KeyHeader {
                    alias: cli.pan_key.clone(),
                    algorithm: KeyAlgorithm::Sm2,
                    usage: KeyUsage::D1,
                    mode: ModeOfUse::D,
                    version: *b"00",
                    exportability: Exportability::NonExportable,
                },
            )
            .context("creating the PAN sealing key in the HSM")?;
        tracing::info!(alias = %cli.pan_key, kcv = %meta.kcv_hex(), "PAN sealing key created (SM2, D1)");
    }
    let ledger = Ledger::open_url(&cli.db, LedgerOptions::default())
        .await
        .context("opening the ledger")?;
    let mut partners = HashMap::new();
    for spec in &cli.qr_partners {
        let (code, alias) = spec
            .split_once('=')
            .context("--qr-partner takes CODE=HSM_ALIAS")?;
        partners.insert(
            code.to_owned(),
            QrPartner {
                key_alias: alias.to_owned(),
                sm2_id: "1234567812345678".to_owned(),
            },
        );
    }
    let options = SwitchOptions {
        admdvs: Admdvs::parse(&cli.admdvs).context("--admdvs")?,
        pan_salt: cli.pan_salt,
        daily_limit_fen: cli.daily_limit_fen,
        hsm_caller: "payment-switch".to_owned(),
        terminals: TerminalMap::default(),
        qr: QrOptions {
            partners,
            lifetime_ms_max: cli.qr_lifetime_ms_max,
        },
        pan_key: Some(cli.pan_key.clone()),
    };
    let banks: Vec<String> = routing.banks.iter().map(|b| b.code.clone()).collect();
    let switch = Switch::open(routing, options, ledger, Arc::new(Mutex::new(hsm)))
        .await
        .context("opening the switch")?;
    // What terminals pin the key to (terminal-agent: SSC_SWITCH_PAN_KEY_SM3): a public value.
    if let Some(key) = switch
        .pan_public_key()
        .context("reading the PAN sealing key")?
    {
        tracing::info!(
            alias = %cli.pan_key,
            sm3 = %hex::encode_upper(hsm::sm::sm3_digest(&key)),
            "PAN sealing key fingerprint (SM3 of 04||X||Y; terminals pin it as SSC_SWITCH_PAN_KEY_SM3)"
        );
    }
    for bank in &banks {
        match switch.network(bank, "001").await {
            Ok(true) => tracing::info!(bank, "signed on"),
            Ok(false) => tracing::warn!(bank, "sign-on not answered; requests will retry the link"),
            Err(e) => tracing::warn!(bank, error = %e, "sign-on failed"),
        }
    }
    let forwarder = switch.spawn_reversal_forwarder(cli.forward_interval_ms);
    if let Some(addr) = &cli.acquirer_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(addr, "ISO 8583 acquirer interface listening");
        tokio::spawn(settlement::payments::acquirer::serve(
            listener,
            switch.clone(),
            cli.pos_mac_key.clone(),
        ));
    }
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .with_context(|| format!("binding {}", cli.listen))?;
    tracing::info!(addr = %cli.listen, "payment API listening");
    axum::serve(listener, settlement::payments::api::router(switch))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")?;
    forwarder.abort();
    Ok(())
}
