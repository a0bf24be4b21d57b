//! Card payments: the issuer bank simulators (`tests/bank-sim/bank_sim.py`, Python on
//! `pyiso8583`, one process per bank of `fixtures/banks/routing.toml`), the payment switch
//! (`payment-switch`, its own HSM partition and SQLite ledger) and a QR partner (a payment app
//! that signs dynamic QR tokens with SM2 in its own HSM partition).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cards::CardImage;
use crate::keys::{KeyEntry, hsm_exec, load_partition, random_hex};
use crate::procs::{self, Proc, free_port};

/// The QR partner the demo plays (a payment app's electronic social security card).
pub const QR_PARTNER: &str = "WALLET01";
const QR_PARTNER_ALIAS: &str = "partner-wallet01-sm2";
/// How long a QR token lives, ms.
const QR_TOKEN_LIFETIME_MS: u128 = 60_000;

/// One issuer bank of the routing table and its simulator.
pub struct Bank {
    /// Bank code (`B0001`).
    pub code: String,
    /// Display name.
    pub name: String,
    /// The simulator.
    pub sim: Proc,
    /// The simulator's event log (one JSON line per applied message).
    pub events: PathBuf,
}

/// A bank's own count of the day (its simulator's event log).
#[derive(Debug, Default, Clone, Copy)]
pub struct BankLog {
    /// Authorisations approved (00, or 10 partial).
    pub approved: usize,
    /// Their amounts, fen.
    pub approved_fen: i64,
    /// Authorisations declined.
    pub declined: usize,
}

/// The running payment side.
pub struct Payments {
    /// The banks.
    pub banks: Vec<Bank>,
    /// The switch process.
    pub switch: Proc,
    /// The switch's terminal API base URL.
    pub url: String,
    /// BIN prefix → bank code, from the routing table.
    pub ranges: Vec<(String, String)>,
    partner_dir: PathBuf,
    partner_lmk: String,
    bins: PathBuf,
    log: PathBuf,
}

/// A `serve`-style wait: until something accepts on `port`.
fn wait_port(proc: &mut Proc, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(procs::SERVICE_START_TIMEOUT_MS);
    while Instant::now() < deadline {
        proc.check_running()?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}

fn start_sim(root: &Path, data: &Path, code: &str, mac_key: &str) -> Result<(Proc, u16, PathBuf)> {
    let events = data.join(format!("bank-{code}.jsonl"));
    let mut command = Command::new("python3");
    command
        .arg(root.join("tests/bank-sim/bank_sim.py"))
        .args(["serve", "--port", "0", "--mac-key", mac_key, "--events"])
        .arg(&events)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(
            data.join(format!("bank-{code}.log")),
        )?);
    let mut sim = Proc::spawn_command("bank simulator", command, &[])?;
    let stdout = sim
        .child_mut()
        .stdout
        .take()
        .context("the bank simulator's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .with_context(|| {
            format!(
                "bank simulator {code} did not start (python3 with pyiso8583 and pycryptodome: \
                 scripts/ensure-python-deps); see bank-{code}.log"
            )
        })?;
    Ok((sim, port, events))
}

fn algorithm_name(pboc: &str) -> Result<&'static str> {
    match pboc {
        "tdes" => Ok("TDES_2KEY"),
        "sm4" => Ok("SM4"),
        other => bail!("unknown PBOC algorithm {other}"),
    }
}

/// A random SM2 private key (a scalar in 1..n-1: the top byte below 0x80 keeps it under n).
fn sm2_private_key() -> Result<String> {
    let mut key = random_hex(32)?;
    let top = u8::from_str_radix(&key[..2], 16)? & 0x7F;
    key.replace_range(..2, &format!("{:02X}", top.max(1)));
    Ok(key)
}

impl Payments {
    /// Starts the banks, loads the switch's HSM partition and starts the switch.
    pub fn start(
        bins: &Path,
        root: &Path,
        data: &Path,
        fixtures: &Path,
        cards: &[CardImage],
    ) -> Result<Payments> {
        let text = std::fs::read_to_string(fixtures.join("banks/routing.toml"))?;
        let mut routing: toml::Table = text
            .parse()
            .context("parsing fixtures/banks/routing.toml")?;
        let mut keys = Vec::new();
        let mut banks = Vec::new();
        let mac_keys_and_banks = routing
            .get_mut("bank")
            .and_then(|v| v.as_array_mut())
            .context("routing.toml: no [[bank]]")?;
        for bank in mac_keys_and_banks
            .iter_mut()
            .filter_map(|b| b.as_table_mut())
        {
            let field = |k: &str| bank.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let code = field("code").context("[[bank]] without code")?;
            let name = field("name").unwrap_or_default();
            let mac_alias = field("mac_key").context("[[bank]] without mac_key")?;
            let mac_key = random_hex(16)?;
            let (sim, port, events) = start_sim(root, data, &code, &mac_key)?;
            bank.insert(
                "host".into(),
                toml::Value::String(format!("127.0.0.1:{port}")),
            );
            keys.push(KeyEntry {
                alias: mac_alias,
                algorithm: "TDES_2KEY",
                usage: "M3",
                mode: "C",
                key_hex: mac_key,
            });
            banks.push(Bank {
                code,
                name,
                sim,
                events,
            });
        }
        let mut ranges = Vec::new();
        for range in routing
            .get("range")
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let field = |k: &str| {
                range
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let prefix = field("bin_prefix");
            ranges.push((prefix.clone(), field("bank")));
            // The issuer master key for AC of the card with this BIN (test keys of the images).
            if let Some(card) = cards.iter().find(|c| c.pan.starts_with(&prefix)) {
                keys.push(KeyEntry {
                    alias: field("imk_ac"),
                    algorithm: algorithm_name(&card.pboc_algorithm)?,
                    usage: "E0",
                    mode: "X",
                    key_hex: card.issuer_master_key.clone(),
                });
            }
        }
        let routing_file = data.join("routing.toml");
        std::fs::write(&routing_file, toml::to_string(&routing)?)?;

        // The partner signs with its own key; the switch's HSM holds it for verification only
        // (mode V; the HSM has no public-key import, so the pair is entered).
        let partner_key = sm2_private_key()?;
        keys.push(KeyEntry {
            alias: QR_PARTNER_ALIAS.into(),
            algorithm: "SM2",
            usage: "S0",
            mode: "V",
            key_hex: partner_key.clone(),
        });
        let log = data.join("hsm-exec.log");
        let switch_hsm = data.join("payments-hsm");
        let switch_lmk = random_hex(32)?;
        load_partition(bins, &switch_hsm, &switch_lmk, &keys, &log)?;
        let partner_dir = data.join("partner-hsm");
        let partner_lmk = random_hex(32)?;
        load_partition(
            bins,
            &partner_dir,
            &partner_lmk,
            &[KeyEntry {
                alias: QR_PARTNER_ALIAS.into(),
                algorithm: "SM2",
                usage: "S0",
                mode: "S",
                key_hex: partner_key,
            }],
            &log,
        )?;

        let port = free_port()?;
        let pan_salt = random_hex(16)?;
        let mut switch = Proc::start(
            "payment-switch",
            bins,
            "payment-switch",
            &[
                "--routing",
                &crate::path_str(&routing_file)?,
                "--db",
                &format!(
                    "sqlite:{}",
                    crate::path_str(&data.join("payments.sqlite3"))?
                ),
                "--hsm-dir",
                &crate::path_str(&switch_hsm)?,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admdvs",
                "110000",
                "--qr-partner",
                &format!("{QR_PARTNER}={QR_PARTNER_ALIAS}"),
            ],
            &[("HSM_LMK_HEX", &switch_lmk), ("PAY_PAN_SALT", &pan_salt)],
            &data.join("payment-switch.log"),
        )?;
        wait_port(&mut switch, port)?;
        Ok(Payments {
            banks,
            switch,
            url: format!("http://127.0.0.1:{port}"),
            ranges,
            partner_dir,
            partner_lmk,
            bins: bins.to_path_buf(),
            log,
        })
    }

    /// The bank code of `pan` (longest BIN prefix).
    pub fn bank_of(&self, pan: &str) -> Option<&str> {
        self.ranges
            .iter()
            .filter(|(prefix, _)| pan.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, bank)| bank.as_str())
    }

    /// The partner app's dynamic QR token for `amount_fen` on `pan`, signed with SM2 in the
    /// partner's HSM partition (format: settlement::payments::qr).
    pub fn qr_token(&self, pan: &str, amount_fen: i64) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let token_id = random_hex(16)?;
        let signed = format!(
            "SSCQR1|{QR_PARTNER}|{token_id}|{pan}|{amount_fen}|{now}|{}",
            now + QR_TOKEN_LIFETIME_MS
        );
        let reply = hsm_exec(
            &self.bins,
            &self.partner_dir,
            &self.partner_lmk,
            "partner-wallet01",
            &json!({"operation": "SignData", "alias": QR_PARTNER_ALIAS,
                    "message": hex::encode_upper(signed.as_bytes())}),
            &self.log,
        )?;
        let signature = reply["signature"]
            .as_str()
            .with_context(|| format!("SignData: {reply}"))?;
        Ok(format!("{signed}|{signature}"))
    }

    /// What a bank's simulator says it did (its own event log): approved authorisations and
    /// their fen, declined ones.
    pub fn bank_log(bank: &Bank) -> Result<BankLog> {
        let text = std::fs::read_to_string(&bank.events).unwrap_or_default();
        let mut log = BankLog::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let event: Value = serde_json::from_str(line)
                .with_context(|| format!("{}: {line}", bank.events.display()))?;
            if event["kind"] != "auth" {
                continue;
            }
            if event["rc"] == "00" || event["rc"] == "10" {
                log.approved += 1;
                log.approved_fen += event["amount"].as_i64().unwrap_or(0);
            } else {
                log.declined += 1;
            }
        }
        Ok(log)
    }

    /// Stops the switch and the simulators.
    pub fn stop(mut self) {
        self.switch.stop();
        for mut bank in self.banks.drain(..) {
            bank.sim.stop();
        }
    }
}
