//! `ssc-demo serve COMPONENT --config FILE`: one component of the platform for deployment,
//! configured by a TOML file (examples in `docs/deploy/`, described in `docs/deploy.md`). The
//! file is checked (unknown keys refused), turned into the component's own command line and
//! environment, and the component's binary (beside this one) replaces this process. Secrets
//! never sit in the file: it names the environment variables or mode-0600 files that hold them.
//! `--check` prints the command instead of running it (secrets shown as their variable names).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The components `serve` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// `hsm serve`.
    Hsm,
    /// `settlement serve`: a regional node (several per region behind a load balancer).
    Settlement,
    /// `payment-switch`.
    PaymentSwitch,
    /// `terminal-agent serve` (its own config format, `terminal-agent/src/config.rs`).
    TerminalAgent,
}

/// `[hsm]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Listen address (loopback unless `allow_remote`).
    pub listen: String,
    /// Key store directory (key journal, audit log): back it up.
    pub data_dir: PathBuf,
    /// The LMK file (64 hex, mode 0600), held under dual control.
    pub lmk_file: PathBuf,
    /// `name:token` lines (mode 0600), one per caller (agents, switch, ceremony).
    pub callers_file: PathBuf,
    /// Allow a non-loopback listen address (behind TLS termination on a private network).
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[settlement]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementConfig {
    /// Listen address.
    pub listen: String,
    /// Reference data: `catalogue/`, `policy/`, `institutions/institutions.csv`.
    pub refdata: PathBuf,
    /// SQLite data directory, when no `database_url_env` is given (one process only).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The variable holding the PostgreSQL URL (`postgres://user:password@host/db`).
    #[serde(default)]
    pub database_url_env: Option<String>,
    /// The variable holding the gateway callers (`id=token,id2=token2`).
    pub gateway_callers_env: String,
    /// This node's region (`110000`), with `regions`.
    #[serde(default)]
    pub region: Option<String>,
    /// The region set and link keys (`settlement::region::config` format, mode 0600).
    #[serde(default)]
    pub regions: Option<PathBuf>,
    /// The variable holding the operators' console's first administrator (`name:password`).
    #[serde(default)]
    pub console_admin_env: Option<String>,
    /// Further `settlement serve` flags, as given.
    #[serde(default)]
    pub extra_args: Vec<String>,
}

/// `[payment_switch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSwitchConfig {
    /// Terminals' JSON API address.
    pub listen: String,
    /// Inbound ISO 8583 address for POS terminals (off when absent).
    #[serde(default)]
    pub acquirer_listen: Option<String>,
    /// BIN routing table (`fixtures/banks/routing.toml` format).
    pub routing: PathBuf,
    /// The variable holding the ledger URL (`postgres://…` or `sqlite:PATH`).
    pub database_url_env: String,
    /// The switch's HSM partition (key store directory).
    pub hsm_dir: PathBuf,
    /// Its LMK file (mode 0600).
    pub lmk_file: PathBuf,
    /// Region of the payment accounts.
    pub admdvs: String,
    /// The variable holding the PAN hash salt.
    pub pan_salt_env: String,
    /// Daily amount limit per card, fen.
    #[serde(default)]
    pub daily_limit_fen: Option<i64>,
    /// QR partners, `CODE=HSM_ALIAS`.
    #[serde(default)]
    pub qr_partners: Vec<String>,
}

/// The whole file: exactly one table, named after the component.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    /// `[hsm]`.
    #[serde(default)]
    pub hsm: Option<HsmConfig>,
    /// `[settlement]`.
    #[serde(default)]
    pub settlement: Option<SettlementConfig>,
    /// `[payment_switch]`.
    #[serde(default)]
    pub payment_switch: Option<PaymentSwitchConfig>,
}

/// A command to run: program, arguments, environment (name → the variable it is copied from,
/// so `--check` can print names instead of secrets).
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// The binary's name.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// (variable the component reads, variable of this process it comes from).
    pub env: Vec<(String, String)>,
}

fn text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// The plan for `component` from the config file's text.
pub fn plan(component: Component, toml_text: &str) -> Result<Plan> {
    if component == Component::TerminalAgent {
        bail!("the terminal agent reads its own file: plan_agent");
    }
    let file: ServeFile = toml::from_str(toml_text).context("parsing the config file")?;
    match component {
        Component::Hsm => {
            let c = file.hsm.context("no [hsm] table")?;
            let mut args = vec![
                "--lmk-file".to_owned(),
                text(&c.lmk_file)?,
                "serve".to_owned(),
                "--listen".to_owned(),
                c.listen,
                "--data".to_owned(),
                text(&c.data_dir)?,
                "--callers-file".to_owned(),
                text(&c.callers_file)?,
            ];
            if c.allow_remote {
                args.push("--allow-remote".to_owned());
            }
            Ok(Plan {
                program: "hsm".into(),
                args,
                env: Vec::new(),
            })
        }
        Component::Settlement => {
            let c = file.settlement.context("no [settlement] table")?;
            let mut args = vec![
                "serve".to_owned(),
                "--listen".to_owned(),
                c.listen,
                "--refdata".to_owned(),
                text(&c.refdata)?,
            ];
            let mut env = vec![("SETTLEMENT_PAAS".to_owned(), c.gateway_callers_env)];
            match (&c.database_url_env, &c.data_dir) {
                (Some(var), None) => env.push(("DATABASE_URL".to_owned(), var.clone())),
                (None, Some(dir)) => args.extend(["--data".to_owned(), text(dir)?]),
                _ => bail!("[settlement] needs exactly one of database_url_env and data_dir"),
            }
            match (c.region, c.regions) {
                (Some(region), Some(regions)) => {
                    args.extend(["--region".to_owned(), region, "--regions".to_owned()]);
                    args.push(text(&regions)?);
                }
                (None, None) => {}
                _ => bail!("[settlement] region and regions go together"),
            }
            if let Some(var) = c.console_admin_env {
                env.push(("SETTLEMENT_CONSOLE_ADMIN".to_owned(), var));
            }
            args.extend(c.extra_args);
            Ok(Plan {
                program: "settlement".into(),
                args,
                env,
            })
        }
        Component::PaymentSwitch => {
            let c = file.payment_switch.context("no [payment_switch] table")?;
            let mut args = vec![
                "--routing".to_owned(),
                text(&c.routing)?,
                "--hsm-dir".to_owned(),
                text(&c.hsm_dir)?,
                "--lmk-file".to_owned(),
                text(&c.lmk_file)?,
                "--listen".to_owned(),
                c.listen,
                "--admdvs".to_owned(),
                c.admdvs,
            ];
            if let Some(addr) = c.acquirer_listen {
                args.extend(["--acquirer-listen".to_owned(), addr]);
            }
            if let Some(limit) = c.daily_limit_fen {
                args.extend(["--daily-limit-fen".to_owned(), limit.to_string()]);
            }
            for partner in c.qr_partners {
                args.extend(["--qr-partner".to_owned(), partner]);
            }
            Ok(Plan {
                program: "payment-switch".into(),
                args,
                env: vec![
                    ("PAY_DB".to_owned(), c.database_url_env),
                    ("PAY_PAN_SALT".to_owned(), c.pan_salt_env),
                ],
            })
        }
        Component::TerminalAgent => bail!("unreachable"),
    }
}

/// Runs (or with `check`, prints) `component` configured by `config`.
#[allow(clippy::print_stdout)]
pub fn serve(component: Component, config: &Path, check: bool) -> Result<()> {
    let plan = if component == Component::TerminalAgent {
        // The agent's own loader checks its file (unknown keys refused, ranges checked).
        terminal_agent::config::Config::load(Some(config)).map_err(|e| anyhow::anyhow!("{e}"))?;
        Plan {
            program: "terminal-agent".into(),
            args: vec!["--config".into(), text(config)?, "serve".into()],
            env: Vec::new(),
        }
    } else {
        let toml_text = std::fs::read_to_string(config)
            .with_context(|| format!("reading {}", config.display()))?;
        plan(component, &toml_text).with_context(|| format!("{}", config.display()))?
    };
    let program = crate::procs::bin_dir()?.join(&plan.program);
    if check {
        let env: Vec<String> = plan
            .env
            .iter()
            .map(|(to, from)| format!("{to}=${from}"))
            .collect();
        println!(
            "{} {} {}",
            env.join(" "),
            program.display(),
            plan.args.join(" ")
        );
        return Ok(());
    }
    let mut command = Command::new(&program);
    command.args(&plan.args);
    for (to, from) in &plan.env {
        let value = std::env::var(from)
            .with_context(|| format!("the variable {from} (for {to}) is not set"))?;
        command.env(to, value);
    }
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    bail!("starting {}: {error}", program.display())
}
