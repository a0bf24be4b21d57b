//! Keys: the HSM (`hsm serve`) with a fresh LMK and a fresh demo key set (`hsm demo-keys`), the
//! national SSC authentication masters the virtual cards were personalised with entered as
//! components (a key ceremony, demo style), and the payment switch's own HSM partition (fresh
//! bank MAC keys, the cards' issuer master keys, a QR partner's SM2 key) loaded with `hsm exec`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::cards::CardImage;
use crate::procs::{self, Proc, free_port};

/// The running HSM and what the rest of the platform needs from it.
pub struct HsmService {
    /// The process.
    pub proc: Proc,
    /// Its base URL.
    pub url: String,
    /// The terminal agent's bearer token.
    pub agent_token: String,
    /// KCVs of the SSC external and internal authentication masters.
    pub kcvs: (String, String),
    /// How many keys `hsm demo-keys` generated.
    pub demo_keys: usize,
}

/// Random bytes as upper-case hex, from the kernel.
pub fn random_hex(len_bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; len_bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode_upper(bytes))
}

/// Starts `hsm serve` on a fresh data directory and LMK with the demo key set and the SSC masters.
pub fn start_hsm(bins: &Path, data: &Path, cards: &[CardImage]) -> Result<HsmService> {
    let dir = data.join("hsm");
    let lmk_hex = random_hex(32)?;
    let log = data.join("hsm-demo-keys.log");
    let listing = Command::new(bins.join("hsm"))
        .args(["demo-keys", "--data", &crate::path_str(&dir)?])
        .env("HSM_LMK_HEX", &lmk_hex)
        .stderr(std::fs::File::create(&log)?)
        .output()
        .context("running hsm demo-keys")?;
    if !listing.status.success() {
        bail!("hsm demo-keys failed; see {}", log.display());
    }
    let demo_keys = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .count()
        .saturating_sub(1);
    let agent_token = random_hex(16)?;
    let ceremony_token = random_hex(16)?;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let callers = format!("agent:{agent_token},key-ceremony:{ceremony_token}");
    let mut proc = Proc::start(
        "hsm",
        bins,
        "hsm",
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
            &crate::path_str(&dir)?,
        ],
        &[("HSM_LMK_HEX", &lmk_hex), ("HSM_CALLERS", &callers)],
        &data.join("hsm.log"),
    )?;
    wait_for_hsm(&mut proc, &url, &ceremony_token)?;
    let kcvs = load_national_masters(&url, &ceremony_token, cards)?;
    Ok(HsmService {
        proc,
        url,
        agent_token,
        kcvs,
        demo_keys,
    })
}

fn wait_for_hsm(hsm: &mut Proc, url: &str, token: &str) -> Result<()> {
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_millis(procs::SERVICE_START_TIMEOUT_MS);
    while Instant::now() < deadline {
        hsm.check_running()?;
        let ok = client
            .post(format!("{url}/v1/Ping"))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("the HSM did not answer Ping")
}

/// The key ceremony, demo style: each national SSC authentication master enters the HSM as one
/// component (a real ceremony has 2-3 custodians). Returns the KCVs (external, internal).
fn load_national_masters(url: &str, token: &str, cards: &[CardImage]) -> Result<(String, String)> {
    let mut masters = cards.iter().filter_map(|c| c.national_masters.as_ref());
    let Some((external, internal)) = masters.next() else {
        bail!("no 3.00 card image carries the SSC authentication masters");
    };
    if masters.any(|m| m != &(external.clone(), internal.clone())) {
        bail!("the card images disagree on the national SSC authentication masters");
    }
    let client = reqwest::blocking::Client::new();
    let mut kcvs = Vec::new();
    for (alias, usage, key) in [
        ("ssc-ext-auth", "11", external),
        ("ssc-int-auth", "10", internal),
    ] {
        let reply: Value = client
            .post(format!("{url}/v1/ImportKeyComponents"))
            .bearer_auth(token)
            .json(&json!({
                "alias": alias, "algorithm": "SM4", "usage": usage, "mode_of_use": "X",
                "exportability": "N", "components": [key],
            }))
            .send()?
            .json()?;
        let kcv = reply["kcv"]
            .as_str()
            .with_context(|| format!("ImportKeyComponents {alias}: {reply}"))?;
        kcvs.push(kcv.to_owned());
    }
    Ok((kcvs[0].clone(), kcvs[1].clone()))
}

/// One key for [`load_partition`].
pub struct KeyEntry {
    /// HSM alias.
    pub alias: String,
    /// `TDES_2KEY`, `SM4`, `SM2`.
    pub algorithm: &'static str,
    /// TR-31 usage (`M3`, `E0`, `S0`).
    pub usage: &'static str,
    /// TR-31 mode of use.
    pub mode: &'static str,
    /// The clear key (one component), hex.
    pub key_hex: String,
}

/// Runs one `hsm exec` request against the partition `dir` under `lmk_hex` as `caller`;
/// returns the JSON reply (an error reply is an error here).
pub fn hsm_exec(
    bins: &Path,
    dir: &Path,
    lmk_hex: &str,
    caller: &str,
    request: &Value,
    log: &Path,
) -> Result<Value> {
    let mut child = Command::new(bins.join("hsm"))
        .args(["exec", "--caller", caller, "--data", &crate::path_str(dir)?])
        .env("HSM_LMK_HEX", lmk_hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?,
        )
        .spawn()
        .context("running hsm exec")?;
    child
        .stdin
        .take()
        .context("hsm exec stdin")?
        .write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let operation = request["operation"].as_str().unwrap_or("?");
    let reply: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("hsm exec {operation}: no JSON reply"))?;
    if !out.status.success() {
        bail!("hsm exec {operation}: {reply}");
    }
    Ok(reply)
}

/// Creates the HSM partition `dir` under `lmk_hex` and enters `keys` with `hsm exec`, as an
/// operator does before starting the payment switch. Returns each alias with its KCV.
pub fn load_partition(
    bins: &Path,
    dir: &Path,
    lmk_hex: &str,
    keys: &[KeyEntry],
    log: &Path,
) -> Result<Vec<(String, String)>> {
    let mut kcvs = Vec::new();
    for key in keys {
        let request = json!({
            "operation": "ImportKeyComponents", "alias": key.alias, "algorithm": key.algorithm,
            "usage": key.usage, "mode_of_use": key.mode, "exportability": "N",
            "components": [key.key_hex],
        });
        let reply = hsm_exec(bins, dir, lmk_hex, "key-ceremony", &request, log)?;
        let kcv = reply["kcv"]
            .as_str()
            .with_context(|| format!("ImportKeyComponents {}: {reply}", key.alias))?;
        kcvs.push((key.alias.clone(), kcv.to_owned()));
    }
    Ok(kcvs)
}
