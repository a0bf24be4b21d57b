//! `settlement`: the medical settlement service and its operator commands.
//!
//! - `settlement serve [--listen ADDR] [--data DIR] [--refdata DIR] [--region X --regions FILE]`:
//!   the HTTP service (SQLite `DIR/ledger.sqlite3` unless `DATABASE_URL` names PostgreSQL); with
//!   `--region` it is that region's node (`settlement::region`, `--region-*-ms` its timeouts).
//!   On PostgreSQL several `serve` processes may serve one database (advisory locks, no state
//!   cache: `Medical::share_database`) unless `--sole-process` says this one is alone. Gateway callers come from
//!   `SETTLEMENT_PAAS` (`id=token,id2=token2`); without it, `--no-gateway-auth` must be given.
//!   SIGINT/SIGTERM: stop accepting, finish in-flight requests (settlements included), drain the
//!   ledger writer, exit.
//!   With `--hsm-dir DIR` (LMK from `--lmk-file` or `HSM_LMK_HEX`): card sign-in, personal data
//!   and the card-use trail (`/identity/v1`, `settlement::identity`), in-process hsm.
//!   The operators' console is at `/console/` (`SETTLEMENT_CONSOLE_ADMIN=name:password` seeds an
//!   admin account).
//!   The partner API (`/api/partner/v1`) is mounted too: operators from
//!   `SETTLEMENT_PARTNER_OPERATORS` (`account=token,...`), consent issuers = the gateway callers,
//!   webhooks signed with the SM2 key `partner-webhook` of the hsm key store `--partner-hsm DIR`
//!   under the LMK in `HSM_LMK_HEX` (without `--partner-hsm`, webhooks wait in the outbox).
//! - `settlement import-persons FILE [--data DIR]`: import a persons CSV
//!   (`refdata::load_persons_csv`) and open each personal account with its balance.

/// mimalloc instead of glibc's malloc: settle_bench spent ~19 % of the service's CPU in glibc's
/// allocator (perf), and with mimalloc the service + load generator took ~20 % less CPU per
/// settlement and settled more per second in each of three interleaved runs (ARCHITECTURE.md
/// "The pooled fund is a hot account").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use settlement::catalogue::CatalogueSet;
use settlement::medical::{Medical, PersonImport, RefData};
use settlement::partner::{PartnerOptions, PartnerPlatform, WebhookSigner};
use settlement::policy::PolicySet;
use settlement::service::{AppState, Gateway, GatewayConfig, app};
use settlement::{Ledger, LedgerOptions};

#[derive(Parser)]
#[command(
    name = "settlement",
    about = "Medical settlement at the national interface"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Data directory (SQLite file), unless DATABASE_URL is set.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// Reference data: catalogue/, policy/, institutions/institutions.csv below it.
        #[arg(long, default_value = "fixtures")]
        refdata: PathBuf,
        /// Accept envelopes without x-tif-* headers (trusted network, tests).
        #[arg(long)]
        no_gateway_auth: bool,
        /// This node's region (e.g. 110000) for cross-region settlement; needs --regions.
        #[arg(long, requires = "regions")]
        region: Option<String>,
        /// The region set and routing table (fixtures/regions/regions.toml).
        #[arg(long, requires = "region")]
        regions: Option<PathBuf>,
        /// Inter-node request timeout, ms: a split not answered in time is "unknown" and is
        /// resolved by query or reversal.
        #[arg(long, default_value_t = 3_000)]
        region_request_timeout_ms: u64,
        /// Inter-node connect timeout, ms: a node not accepting in time is unreachable and the
        /// settlement is refused at once.
        #[arg(long, default_value_t = 500)]
        region_connect_timeout_ms: u64,
        /// An intent with no outcome for this long (a crash in the middle) is abandoned with a
        /// durable reversal, ms.
        #[arg(long, default_value_t = 10_000)]
        region_intent_stale_ms: i64,
        /// Period of the outbox delivery and intent resolver, ms.
        #[arg(long, default_value_t = 200)]
        region_tick_ms: u64,
        /// PostgreSQL: this is the only process serving the database, so the state cache may
        /// keep accumulators and balances and no advisory locks are taken. Without it several
        /// `serve` processes can serve one database at once.
        #[arg(long)]
        sole_process: bool,
        /// The hsm's data directory: enables card sign-in (/identity/v1).
        #[arg(long)]
        hsm_dir: Option<PathBuf>,
        /// LMK file of the hsm (else `HSM_LMK_HEX`).
        #[arg(long, requires = "hsm_dir")]
        lmk_file: Option<PathBuf>,
        /// Life of a sign-in challenge, ms.
        #[arg(long, default_value_t = 60_000)]
        challenge_ttl_ms: i64,
        /// Key store (hsm data directory) of the partner platform's webhook signing key.
        #[arg(long)]
        partner_hsm: Option<PathBuf>,
    },
    /// Import insured persons from a CSV.
    ImportPersons {
        /// The CSV (refdata::load_persons_csv format).
        file: PathBuf,
        /// Data directory (SQLite file), unless DATABASE_URL is set.
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

async fn open_ledger(data: &Path) -> Result<Ledger> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ledger::open_url(&url, LedgerOptions::default())
            .await
            .context("opening DATABASE_URL"),
        _ => {
            std::fs::create_dir_all(data)
                .with_context(|| format!("creating {}", data.display()))?;
            Ledger::open_data_dir(data, LedgerOptions::default())
                .await
                .with_context(|| format!("opening the ledger in {}", data.display()))
        }
    }
}

fn load_refdata(dir: &Path) -> Result<RefData> {
    let catalogues =
        CatalogueSet::load_dir(&dir.join("catalogue")).context("loading catalogues")?;
    let policies = PolicySet::load_dir(&dir.join("policy")).context("loading policies")?;
    let institutions =
        settlement::refdata::load_institutions(&dir.join("institutions").join("institutions.csv"))
            .context("loading institutions")?;
    Ok(RefData {
        catalogues,
        policies,
        institutions: institutions
            .into_iter()
            .map(|i| (i.fixmedins_code, i.hosp_lv))
            .collect(),
    })
}

fn gateway_config(no_auth: bool) -> Result<GatewayConfig> {
    let mut callers = HashMap::new();
    if let Ok(spec) = std::env::var("SETTLEMENT_PAAS") {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let (id, token) = pair
                .split_once('=')
                .context("SETTLEMENT_PAAS must be id=token[,id=token]")?;
            callers.insert(id.to_owned(), token.to_owned());
        }
    }
    if callers.is_empty() && !no_auth {
        bail!("set SETTLEMENT_PAAS=id=token or pass --no-gateway-auth");
    }
    Ok(GatewayConfig {
        callers,
        ..GatewayConfig::default()
    })
}

/// Partner platform settings: operators from `SETTLEMENT_PARTNER_OPERATORS`, consent issuers =
/// the gateway's callers.
fn partner_options(gateway: &GatewayConfig) -> Result<PartnerOptions> {
    let mut operators = Vec::new();
    if let Ok(spec) = std::env::var("SETTLEMENT_PARTNER_OPERATORS") {
        for pair in spec.split(',').filter(|p| !p.is_empty()) {
            let (account, token) = pair
                .split_once('=')
                .context("SETTLEMENT_PARTNER_OPERATORS must be account=token[,account=token]")?;
            if token.len() < settlement::partner::OPERATOR_TOKEN_LEN_MIN {
                bail!("SETTLEMENT_PARTNER_OPERATORS: tokens have at least 16 characters");
            }
            operators.push((account.to_owned(), token.to_owned()));
        }
    }
    Ok(PartnerOptions {
        operators,
        consent_issuers: gateway.clone(),
        ..PartnerOptions::default()
    })
}

fn partner_platform(
    ledger: &settlement::Ledger,
    directory: &Arc<settlement::directory::Directory>,
    options: PartnerOptions,
    hsm_dir: Option<&Path>,
) -> Result<PartnerPlatform> {
    let signer = match hsm_dir {
        None => None,
        Some(dir) => {
            let lmk = hsm::lmk::Lmk::from_env().context("--partner-hsm needs HSM_LMK_HEX")?;
            Some(
                WebhookSigner::open(dir, lmk, "partner-webhook")
                    .context("opening the partner platform's webhook key")?,
            )
        }
    };
    Ok(PartnerPlatform::new(
        ledger,
        directory.clone(),
        options,
        signer,
    ))
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

// One argument per `serve` flag group; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn serve(
    listen: SocketAddr,
    data: &Path,
    refdata: &Path,
    no_auth: bool,
    region: Option<(String, PathBuf, settlement::region::NodeOptions)>,
    sole_process: bool,
    hsm: Option<IdentityArgs>,
    partner_hsm: Option<&Path>,
) -> Result<()> {
    let gateway = gateway_config(no_auth)?;
    let partner_options = partner_options(&gateway)?;
    let refdata = load_refdata(refdata)?;
    let ledger = Arc::new(open_ledger(data).await?);
    let medical = Arc::new(Medical::new(ledger.clone(), refdata));
    if !sole_process
        && medical
            .share_database()
            .await
            .context("setting up the advisory locks")?
    {
        tracing::info!("PostgreSQL shared by several processes: advisory locks, no state cache");
    }
    let state = Arc::new(AppState {
        medical: medical.clone(),
        gateway: Gateway::new(gateway),
        ready: AtomicBool::new(false),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "settlement serving");
    state.ready.store(true, Ordering::Release);
    let shutdown_state = state.clone();
    // The open directory of card uses: public, read-only (`/api/directory/v1`, `/directory/`).
    let directory = Arc::new(
        settlement::directory::Directory::from_ledger(&ledger)
            .await
            .context("loading the application directory")?,
    );
    // The partner platform (`/api/partner/v1`) over the same database and directory.
    let partner = Arc::new(partner_platform(
        &ledger,
        &directory,
        partner_options,
        partner_hsm,
    )?);
    let partner_worker = PartnerPlatform::spawn_worker(partner.clone());
    let mut router = app(state.clone())
        .merge(settlement::directory::api::router(directory))
        .merge(settlement::partner::api::router(partner.clone()));
    let mut identity = None;
    if let Some(args) = hsm {
        let node_admdvs = region.as_ref().map(|(r, _, _)| r.clone());
        let (service, routes) = identity_routes(&ledger, &state, args, node_admdvs).await?;
        identity = Some(service);
        router = router.merge(routes);
    }
    router = router.merge(console_routes(&ledger, identity, partner).await?);
    if let Some((region, regions, options)) = region {
        let (_, routes) = settlement::region::attach(&medical, state, &region, &regions, options)
            .await
            .context("starting the region node")?;
        router = router.merge(routes);
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            shutdown_state.ready.store(false, Ordering::Release);
        })
        .await
        .context("serving")?;
    partner_worker.abort();
    drop(medical);
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `serve`'s identity settings.
struct IdentityArgs {
    hsm_dir: PathBuf,
    lmk_file: Option<PathBuf>,
    challenge_ttl_ms: i64,
}

/// The identity service (`settlement::identity`) on an in-process hsm, its routes, and the task
/// that copies settlements and payments into the card-use trail every 2 s.
async fn identity_routes(
    ledger: &Ledger,
    state: &Arc<AppState>,
    args: IdentityArgs,
    node_admdvs: Option<String>,
) -> Result<(Arc<settlement::identity::Identity>, axum::Router)> {
    let lmk = match &args.lmk_file {
        Some(path) => hsm::lmk::Lmk::from_file(path),
        None => hsm::lmk::Lmk::from_env(),
    }
    .context("loading the LMK (--lmk-file or HSM_LMK_HEX)")?;
    let hsm = hsm::ops::Hsm::open(&args.hsm_dir, lmk).context("opening the hsm")?;
    let mut options = settlement::identity::IdentityOptions {
        challenge_ttl_ms: args.challenge_ttl_ms,
        ..settlement::identity::IdentityOptions::default()
    };
    if let Some(admdvs) = node_admdvs {
        options.node_admdvs = admdvs;
    }
    let identity = Arc::new(
        settlement::identity::Identity::open(ledger, Arc::new(std::sync::Mutex::new(hsm)), options)
            .await
            .context("opening the identity service")?,
    );
    // The persons table from now on: records sealed, lookups keyed (settlement::medical::vault).
    let sealed = settlement::medical::seal_persons(ledger, identity.shared_data_keys())
        .await
        .context("sealing the persons table under the personal-data keys")?;
    tracing::info!(sealed, "persons table sealed under the personal-data keys");
    let collector = identity.clone();
    tokio::spawn(async move {
        loop {
            if let Err(error) = collector.collect_trail().await {
                tracing::warn!(%error, "card-use trail collection failed");
            }
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    });
    let routes = settlement::identity::api::router(settlement::identity::api::IdentityState {
        identity: identity.clone(),
        service: state.clone(),
    });
    Ok((identity, routes))
}

/// The operators' console (`/console/`, with the partner applications page over `partner`);
/// `SETTLEMENT_CONSOLE_ADMIN=name:password` seeds an
/// admin account (created if missing, never changed).
async fn console_routes(
    ledger: &Arc<Ledger>,
    identity: Option<Arc<settlement::identity::Identity>>,
    partner: Arc<PartnerPlatform>,
) -> Result<axum::Router> {
    let console = Arc::new(
        settlement::console::Console::new(
            ledger.clone(),
            identity,
            settlement::console::ConsoleOptions::default(),
        )
        .with_partner(partner),
    );
    if let Ok(seed) = std::env::var("SETTLEMENT_CONSOLE_ADMIN") {
        let (name, password) = seed
            .split_once(':')
            .context("SETTLEMENT_CONSOLE_ADMIN must be name:password")?;
        console
            .ensure_admin(name, password)
            .await
            .context("seeding the console admin")?;
    }
    Ok(settlement::console::router(console))
}

async fn import_persons(file: &Path, data: &Path) -> Result<()> {
    let persons = settlement::refdata::load_persons_csv(file)
        .with_context(|| format!("loading {}", file.display()))?;
    let imports: Vec<PersonImport> = persons.iter().map(PersonImport::from).collect();
    let ledger = Arc::new(open_ledger(data).await?);
    let medical = Medical::new(ledger.clone(), RefData::default());
    let added = medical
        .import_persons(&imports)
        .await
        .context("importing")?;
    tracing::info!(added, total = imports.len(), "persons imported");
    drop(medical);
    if let Ok(ledger) = Arc::try_unwrap(ledger) {
        ledger.close().await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            listen,
            data,
            refdata,
            no_gateway_auth,
            region,
            regions,
            region_request_timeout_ms,
            region_connect_timeout_ms,
            region_intent_stale_ms,
            region_tick_ms,
            sole_process,
            hsm_dir,
            lmk_file,
            challenge_ttl_ms,
            partner_hsm,
        } => {
            let options = settlement::region::NodeOptions {
                request_timeout_ms: region_request_timeout_ms,
                connect_timeout_ms: region_connect_timeout_ms,
                intent_stale_ms: region_intent_stale_ms,
                tick_ms: region_tick_ms,
            };
            let node = region
                .zip(regions)
                .map(|(region, regions)| (region, regions, options));
            let hsm = hsm_dir.map(|hsm_dir| IdentityArgs {
                hsm_dir,
                lmk_file,
                challenge_ttl_ms,
            });
            serve(
                listen,
                &data,
                &refdata,
                no_gateway_auth,
                node,
                sole_process,
                hsm,
                partner_hsm.as_deref(),
            )
            .await
        }
        Command::ImportPersons { file, data } => import_persons(&file, &data).await,
    }
}
