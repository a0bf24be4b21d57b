//! The terminal agent and the card reader the demo's cards go into.
//!
//! Where pcscd with vsmartcard's vpcd listens (`scripts/ensure-pcsc`), the agent is its own
//! process (`terminal-agent serve`) on the real PC/SC stack and each card is an `ssc-vcard`
//! process plugged into vpcd's first slot. Where it does not, the agent runs inside the demo
//! (the `terminal-agent` library, same HTTP API) over an in-process reader: card-core's virtual
//! card behind the `CardTransport` seam, no PC/SC at all. The demo says which one it used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use card_core::vcard::{CardImage, VirtualCard};
use serde_json::Value;
use terminal_agent::api::payment::PaymentConfig;
use terminal_agent::api::{ApiSettings, AppState};
use terminal_agent::authority::{Authority, AuthorityKeys, Token};
use terminal_agent::reader::virtual_backend::VirtualReaders;
use terminal_agent::reader::{
    BackendFactory, ReaderEvent, ReaderEventKind, Readers, ReadersConfig, Watcher,
};

use crate::procs::{Proc, free_port, listening_on, wait_healthy};
use crate::web::get_ok;

/// vpcd's first slot: the reader "Virtual PCD 00 00" (card-hsm-anchors.md §2).
pub const VPCD_PORT: u16 = 35_963;
/// The reader the demo's cards go into, in both modes.
pub const READER: &str = "Virtual PCD 00 00";
/// pcscd polls vpcd about every 400 ms (limits.md §4); a card shows up well within this.
const CARD_DETECT_TIMEOUT_MS: u64 = 10_000;
/// One card job's limit inside the agent.
const CARD_TIMEOUT_MS: u64 = 5_000;

/// What the agent needs to know about the rest of the platform.
pub struct AgentSetup<'a> {
    /// `hsm serve` base URL (3.00 cards' authentication).
    pub hsm_url: &'a str,
    /// The agent's HSM bearer token.
    pub hsm_token: &'a str,
    /// The payment switch's base URL.
    pub payments_url: &'a str,
    /// Field 41 (8 characters).
    pub terminal_id: &'a str,
    /// Field 42 (15 characters).
    pub merchant_id: &'a str,
    /// 9F4E.
    pub merchant_name: &'a str,
}

/// The running agent and its reader.
pub enum Agent {
    /// `terminal-agent serve` over pcscd; cards are `ssc-vcard` processes.
    Pcsc {
        /// The agent process.
        agent: Proc,
        /// The card in the reader, if any.
        card: Option<Proc>,
        /// Where `ssc-vcard` lives.
        bins: PathBuf,
        /// Where card logs go.
        logs: PathBuf,
        /// Its base URL.
        url: String,
    },
    /// The agent library inside this process over an in-process virtual reader.
    InProcess {
        /// Runs the agent's HTTP server.
        runtime: tokio::runtime::Runtime,
        /// The reader table.
        table: VirtualReaders,
        /// The agent's readers (their watcher publishes card arrivals and removals).
        readers: Arc<Readers>,
        /// Its base URL.
        url: String,
        /// Why there is no PC/SC.
        reason: &'static str,
    },
}

/// True when pcscd with vpcd is there to take the cards.
pub fn pcsc_available() -> bool {
    listening_on(VPCD_PORT)
}

impl Agent {
    /// Starts `terminal-agent serve` on the PC/SC stack.
    pub fn start_pcsc(bins: &Path, data: &Path, setup: &AgentSetup<'_>) -> Result<Agent> {
        let port = free_port()?;
        let url = format!("http://127.0.0.1:{port}");
        let config = data.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\ncard_timeout_ms = {CARD_TIMEOUT_MS}\n\
                 terminal_no = \"T0001\"\ndevice_no = \"D0001\"\n[hsm]\nmode = \"http\"\nurl = \"{}\"\n",
                crate::path_str(&data.join("agent"))?,
                setup.hsm_url
            ),
        )?;
        let mut agent = Proc::start(
            "terminal-agent",
            bins,
            "terminal-agent",
            &["--config", &crate::path_str(&config)?, "serve"],
            &[
                ("TERMINAL_AGENT_HSM_TOKEN", setup.hsm_token),
                ("SSC_SWITCH_URL", setup.payments_url),
                ("SSC_TERMINAL_ID", setup.terminal_id),
                ("SSC_MERCHANT_ID", setup.merchant_id),
                ("SSC_MERCHANT_NAME", setup.merchant_name),
                ("SSC_PAYMENT_TIMEOUT_MS", "15000"),
            ],
            &data.join("agent.log"),
        )?;
        wait_healthy(&mut agent, &format!("{url}/v1/readers"))?;
        Ok(Agent::Pcsc {
            agent,
            card: None,
            bins: bins.to_path_buf(),
            logs: data.to_path_buf(),
            url,
        })
    }

    /// Starts the agent library in this process over an in-process reader named [`READER`].
    pub fn start_in_process(setup: &AgentSetup<'_>, reason: &'static str) -> Result<Agent> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the agent's runtime")?;
        let table = VirtualReaders::new([READER]);
        let watcher = Watcher::detached();
        watcher.apply(event(ReaderEventKind::ReaderAdded, None));
        let backend_table = table.clone();
        let factory: Arc<dyn BackendFactory> = Arc::new(move || backend_table.backend());
        let readers = Arc::new(Readers::new(
            factory,
            ReadersConfig::default(),
            Some(watcher),
        ));
        let authority = {
            let _guard = runtime.enter();
            Authority::http(
                setup.hsm_url,
                Token::new(setup.hsm_token),
                AuthorityKeys {
                    external_auth_alias: "ssc-ext-auth".into(),
                    internal_auth_alias: Some("ssc-int-auth".into()),
                },
                2_000,
                runtime.handle().clone(),
            )
            .map_err(|e| anyhow::anyhow!("the agent's HSM client: {e}"))?
        };
        terminal_agent::api::payment::configure(PaymentConfig {
            switch_url: setup.payments_url.to_owned(),
            terminal_id: setup.terminal_id.to_owned(),
            merchant_id: setup.merchant_id.to_owned(),
            merchant_name: setup.merchant_name.to_owned(),
            timeout_ms: 15_000,
            // The switch runs on this machine (loopback): trusted on first use.
            pan_key_sm3: None,
        });
        let state = AppState {
            readers: readers.clone(),
            authority,
            settings: ApiSettings {
                card_timeout_ms: CARD_TIMEOUT_MS,
                terminal_no: "T0001".into(),
                device_no: "D0001".into(),
                default_reader: None,
            },
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding the in-process agent")?;
        let url = format!("http://{}", listener.local_addr()?);
        runtime.spawn(async move {
            if let Err(error) = axum::serve(listener, terminal_agent::api::app(state)).await {
                eprintln!("ssc-demo: the in-process agent stopped: {error}");
            }
        });
        Ok(Agent::InProcess {
            runtime,
            table,
            readers,
            url,
            reason,
        })
    }

    /// The agent's base URL.
    pub fn url(&self) -> &str {
        match self {
            Agent::Pcsc { url, .. } | Agent::InProcess { url, .. } => url,
        }
    }

    /// How the cards reach the agent, for the demo's output.
    pub fn describe(&self) -> String {
        match self {
            Agent::Pcsc { .. } => {
                "PC/SC: terminal-agent serve on pcscd with vsmartcard-vpcd, each card an ssc-vcard process"
                    .to_owned()
            }
            Agent::InProcess { reason, .. } => format!(
                "IN-PROCESS READER ({reason}): the agent runs inside ssc-demo and the cards are \
                 card-core's virtual card behind the CardTransport seam, no PC/SC"
            ),
        }
    }

    /// Puts the card of `image` into the reader (taking out any other) and waits until the agent
    /// sees it.
    pub fn insert(
        &mut self,
        kiosk: &reqwest::blocking::Client,
        label: &str,
        image: &Path,
    ) -> Result<()> {
        self.remove(kiosk)?;
        match self {
            Agent::Pcsc {
                card, bins, logs, ..
            } => {
                let vcard = Proc::start(
                    "ssc-vcard",
                    bins,
                    "ssc-vcard",
                    &[
                        "--image",
                        &crate::path_str(image)?,
                        "--vpcd",
                        &format!("127.0.0.1:{VPCD_PORT}"),
                    ],
                    &[],
                    &logs.join(format!("vcard-{label}.log")),
                )?;
                *card = Some(vcard);
            }
            Agent::InProcess { table, readers, .. } => {
                let text = std::fs::read_to_string(image)
                    .with_context(|| format!("reading {}", image.display()))?;
                let image = CardImage::from_toml_str(&text)
                    .map_err(|e| anyhow::anyhow!("card image {label}: {e}"))?;
                let card = VirtualCard::new(image, 7);
                let atr = hex::encode_upper(card.atr());
                table.insert(READER, card);
                publish(readers, ReaderEventKind::CardInserted, Some(&atr));
            }
        }
        self.wait_card(kiosk, true)
    }

    /// Takes the card out of the reader, if there is one, and waits until the agent sees it go.
    pub fn remove(&mut self, kiosk: &reqwest::blocking::Client) -> Result<()> {
        let had = match self {
            Agent::Pcsc { card, .. } => card.take().map(|mut c| c.stop()).is_some(),
            Agent::InProcess { table, readers, .. } => {
                let had = table.remove(READER).is_some();
                if had {
                    publish(readers, ReaderEventKind::CardRemoved, None);
                }
                had
            }
        };
        if had {
            self.wait_card(kiosk, false)?;
        }
        Ok(())
    }

    /// Waits until the agent reports the reader with (`present`) or without a card.
    fn wait_card(&mut self, kiosk: &reqwest::blocking::Client, present: bool) -> Result<()> {
        let url = format!("{}/v1/readers", self.url());
        let deadline = Instant::now() + Duration::from_millis(CARD_DETECT_TIMEOUT_MS);
        while Instant::now() < deadline {
            if let Agent::Pcsc { agent, card, .. } = self {
                agent.check_running()?;
                if let Some(card) = card.as_mut() {
                    card.check_running()?;
                }
            }
            let readers: Value = get_ok(kiosk, &url)?;
            let seen = readers
                .as_array()
                .or(readers["readers"].as_array())
                .into_iter()
                .flatten()
                .any(|r| r["name"] == READER && r["card_present"] == present);
            if seen {
                return Ok(());
            }
            sleep(Duration::from_millis(50));
        }
        bail!(
            "the agent did not see the card {} within {CARD_DETECT_TIMEOUT_MS} ms",
            if present { "arrive" } else { "leave" }
        )
    }

    /// Stops the agent (and the card process).
    pub fn stop(self) {
        match self {
            Agent::Pcsc {
                mut agent, card, ..
            } => {
                drop(card);
                agent.stop();
            }
            Agent::InProcess { runtime, .. } => {
                runtime.shutdown_timeout(Duration::from_secs(2));
            }
        }
    }
}

fn publish(readers: &Readers, kind: ReaderEventKind, atr: Option<&str>) {
    if let Some(watcher) = readers.watcher() {
        watcher.apply(event(kind, atr));
    }
}

fn event(kind: ReaderEventKind, atr: Option<&str>) -> ReaderEvent {
    ReaderEvent {
        kind,
        reader: READER.into(),
        atr: atr.map(str::to_owned),
        at_unix_ms: 0,
    }
}
