//! `terminal-agent`: the card-reader daemon and its command line.
//!
//! ```text
//! terminal-agent serve [--config FILE]            # the local HTTP API on 127.0.0.1
//! terminal-agent readers                          # list PC/SC readers and cards
//! terminal-agent read [--reader NAME] [--reveal]  # read the card's identity (masked)
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use terminal_agent::api::{self, ApiSettings, AppState};
use terminal_agent::authority::{Authority, AuthorityKeys, Token};
use terminal_agent::config::{Config, HsmMode};
use terminal_agent::journal::switch::{GatewayCredentials, PaasToken};
use terminal_agent::journal::{EnvelopeHeader, Journal, SwitchClient, forwarder};
use terminal_agent::reader::pcsc_backend::{PcscBackend, list_with_state};
use terminal_agent::reader::{BackendFactory, CardBackend, Readers, ReadersConfig, Watcher};

/// Command line.
#[derive(Parser)]
#[command(version, about = "The social security card reader daemon")]
struct Cli {
    /// Configuration file (TOML); environment variables TERMINAL_AGENT_* override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the local HTTP API.
    Serve,
    /// List the readers and their cards.
    Readers,
    /// Read the card's identity and holder.
    Read {
        /// Reader name (default: the first reader holding a card).
        #[arg(long)]
        reader: Option<String>,
        /// Print personal data in clear.
        #[arg(long)]
        reveal: bool,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading the configuration")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve => runtime.block_on(serve(config)),
        Command::Readers => readers(),
        Command::Read { reader, reveal } => runtime.block_on(read(config, reader, reveal)),
    }
}

fn pcsc_factory() -> Arc<dyn BackendFactory> {
    Arc::new(|| Box::new(PcscBackend::new()) as Box<dyn CardBackend>)
}

fn authority(config: &Config) -> anyhow::Result<Authority> {
    let keys = AuthorityKeys {
        external_auth_alias: config.hsm.external_auth_alias.clone(),
        internal_auth_alias: (!config.hsm.internal_auth_alias.is_empty())
            .then(|| config.hsm.internal_auth_alias.clone()),
    };
    Ok(match config.hsm.mode {
        HsmMode::None => Authority::none(),
        HsmMode::InProcess => {
            let dir = config
                .hsm
                .data_dir
                .as_deref()
                .context("hsm.data_dir is required in in-process mode")?;
            let lmk = match &config.hsm.lmk_file {
                Some(path) => hsm::lmk::Lmk::from_file(path),
                None => hsm::lmk::Lmk::from_env(),
            }
            .map_err(|e| anyhow::anyhow!("loading the LMK: {e}"))?;
            let hsm = hsm::ops::Hsm::open(dir, lmk)
                .map_err(|e| anyhow::anyhow!("opening the HSM: {e}"))?;
            Authority::in_process(Arc::new(Mutex::new(hsm)), "terminal-agent", keys)
        }
        HsmMode::Http => {
            let token = std::env::var(&config.hsm.token_env).with_context(|| {
                format!("the HSM token variable {} is not set", config.hsm.token_env)
            })?;
            Authority::http(
                &config.hsm.url,
                Token::new(token),
                keys,
                config.hsm.timeout_ms,
                tokio::runtime::Handle::current(),
            )?
        }
    })
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let authority = authority(&config)?;
    let watcher =
        Watcher::start_pcsc(config.watch_poll_ms).context("starting the reader watcher")?;
    let readers = Arc::new(Readers::new(
        pcsc_factory(),
        ReadersConfig::default(),
        Some(watcher),
    ));
    let state = AppState {
        readers,
        authority,
        settings: ApiSettings {
            card_timeout_ms: config.card_timeout_ms,
            terminal_no: config.terminal_no.clone(),
            device_no: config.device_no.clone(),
            default_reader: config.default_reader.clone(),
        },
    };
    // The journal (one agent process per journal file: its lock refuses a second agent on the
    // same data_dir) when the agent talks to a switch: the national interface, card payments,
    // or both.
    let payments = api::payment::reversal_client();
    let mut background = Vec::new();
    let mut journal = None;
    if !config.switch.url.is_empty() || payments.is_some() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let opened = Journal::open(&config.data_dir.join("journal.sqlite"))
            .await
            .context("opening the journal")?;
        let backoff =
            forwarder::Backoff::new(config.switch.retry_initial_ms, config.switch.retry_max_ms);
        if let Some(payments) = payments {
            api::payment::configure_journal(opened.clone());
            background.push(tokio::spawn(terminal_agent::journal::payrev::run(
                opened.clone(),
                payments,
                backoff,
            )));
        }
        if !config.switch.url.is_empty() {
            let mut client = SwitchClient::new(&config.switch.url, config.switch.timeout_ms)?;
            let mut signin_credentials = None;
            if !config.switch.paas_id.is_empty() {
                let token = std::env::var(&config.switch.paas_token_env).with_context(|| {
                    format!(
                        "the gateway token variable {} is not set",
                        config.switch.paas_token_env
                    )
                })?;
                let credentials = GatewayCredentials {
                    paas_id: config.switch.paas_id.clone(),
                    token: PaasToken::new(token),
                };
                signin_credentials = Some(credentials.clone());
                client = client.with_gateway(credentials);
            }
            // Card sign-in goes to the same node, as the same terminal.
            api::signin::configure(api::signin::SigninContext {
                node_url: config.switch.url.clone(),
                credentials: signin_credentials,
                timeout_ms: config.switch.timeout_ms,
            });
            api::settle::configure(api::settle::SettleContext {
                journal: opened.clone(),
                client: client.clone(),
                header: EnvelopeHeader {
                    fixmedins_code: config.switch.fixmedins_code.clone(),
                    fixmedins_name: config.switch.fixmedins_name.clone(),
                    mdtrtarea_admvs: config.switch.mdtrtarea_admvs.clone(),
                    recer_sys_code: "HIS".into(),
                    opter_type: "2".into(),
                    opter: config.terminal_no.clone(),
                    opter_name: config.device_no.clone(),
                    sign_no: String::new(),
                },
            });
            background.push(tokio::spawn(forwarder::run(
                opened.clone(),
                client,
                backoff,
            )));
        }
        journal = Some(opened);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "terminal-agent serving");
    axum::serve(listener, api::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving HTTP")?;
    for task in background {
        task.abort();
    }
    if let Some(journal) = journal {
        journal.close().await;
    }
    Ok(())
}

fn readers() -> anyhow::Result<()> {
    let list = list_with_state()?;
    let mut out = std::io::stdout().lock();
    for reader in list {
        let card = match reader.atr {
            Some(atr) => format!("card ATR {atr}"),
            None => "empty".to_owned(),
        };
        writeln!(out, "{}\t{card}", reader.name)?;
    }
    Ok(())
}

async fn read(config: Config, reader: Option<String>, reveal: bool) -> anyhow::Result<()> {
    let reader = match reader {
        Some(r) => r,
        None => match list_with_state()?.into_iter().find(|r| r.card_present) {
            Some(r) => r.name,
            None => bail!("no reader holds a card"),
        },
    };
    let authority = authority(&config)?;
    let readers = Readers::new(pcsc_factory(), ReadersConfig::default(), None);
    let started = Instant::now();
    let progress = tokio::spawn(async move {
        // A slow card (or a real T=0 reader at 9600 baud) takes seconds: say so on stderr.
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.tick().await;
        loop {
            tick.tick().await;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rreading the card... {:.1} s",
                started.elapsed().as_secs_f64()
            );
            let _ = err.flush();
        }
    });
    let result = readers
        .run(&reader, config.card_timeout_ms, move |link| {
            terminal_agent::card::read_social_security(link, &authority)
        })
        .await;
    progress.abort();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\rread in {} ms                 ",
        started.elapsed().as_millis()
    );
    let reading = result.map_err(|e| anyhow::anyhow!("{e} ({})", e.catalogue().action))?;
    let identity = api::IdentityView::from(&reading.identity);
    let holder = api::HolderView::new(&reading.holder, reveal);
    let mut out = std::io::stdout().lock();
    writeln!(out, "reader\t{reader}")?;
    writeln!(out, "卡识别码\t{}", identity.card_id)?;
    writeln!(out, "规范版本\t{}", identity.spec_version)?;
    writeln!(out, "卡号\t{}", identity.card_number)?;
    writeln!(out, "发卡日期\t{}", identity.issue_date)?;
    writeln!(
        out,
        "卡有效期\t{}",
        identity.expiry_date.unwrap_or_default()
    )?;
    writeln!(out, "社会保障号码\t{}", holder.ssn)?;
    writeln!(out, "姓名\t{}", holder.name)?;
    writeln!(out, "性别\t{}", holder.sex)?;
    writeln!(out, "出生日期\t{}", holder.birth_date.unwrap_or_default())?;
    writeln!(out, "apdus\t{}", reading.apdus)?;
    Ok(())
}
