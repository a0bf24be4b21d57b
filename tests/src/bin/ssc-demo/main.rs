//! `ssc-demo`: the README's main job. It starts the platform from its own binaries — the HSM
//! (`hsm serve`), the settlement switch (`settlement serve`, SQLite under the data directory),
//! the terminal agent (`terminal-agent serve`, PC/SC through pcscd) — then puts each virtual card
//! of `fixtures/cards/` into the vpcd reader (`ssc-vcard`) and plays a hospital visit with it:
//! the kiosk reads the card through the agent (3.00 cards authenticated by the HSM), the holder
//! enters the PIN, and the hospital's HIS settles a bill at the national interface (1101, 2201,
//! 2203, 2204, 2207). It ends with a summary a person reads in ten seconds.
//!
//! It needs pcscd with vsmartcard's vpcd (`scripts/ensure-pcsc` installs and starts them).

mod his;
mod procs;

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

use his::His;
use procs::{Proc, bin_dir, free_port, listening_on, wait_healthy};

/// vpcd's first slot: the reader "Virtual PCD 00 00" (card-hsm-anchors.md §2).
const VPCD_PORT: u16 = 35_963;
const READER: &str = "Virtual PCD 00 00";
/// pcscd polls vpcd about every 400 ms (limits.md §4); a card shows up well within this.
const CARD_DETECT_TIMEOUT_MS: u64 = 10_000;

#[derive(Parser)]
#[command(
    name = "ssc-demo",
    about = "Run the platform on the fixtures and print a summary"
)]
struct Args {
    /// The fixtures folder (cards/, persons/, policy/, catalogue/, institutions/).
    #[arg(long, default_value = "fixtures")]
    fixtures: PathBuf,
    /// Data folder; emptied at start.
    #[arg(long, default_value = "target/demo")]
    data: PathBuf,
}

/// A virtual card image and the facts the demo needs from it.
struct CardImage {
    path: PathBuf,
    label: String,
    pin: String,
    region: String,
    national_masters: Option<(String, String)>,
}

/// What one card's visit produced.
struct Visit {
    label: String,
    spec_version: String,
    holder: String,
    pan: String,
    hospital: String,
    insured: String,
    setlinfo: Value,
}

fn main() {
    if let Err(e) = run(&Args::parse()) {
        eprintln!("ssc-demo: {e:#}");
        std::process::exit(1);
    }
}

fn say(line: &str) {
    eprintln!("{line}");
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let bins = bin_dir()?;
    if !listening_on(VPCD_PORT) {
        bail!(
            "pcscd with the vpcd driver is not listening on 127.0.0.1:{VPCD_PORT}; \
             run scripts/ensure-pcsc (as root) first"
        );
    }
    let cards = load_cards(&args.fixtures.join("cards"))?;
    let data = &args.data;
    if data.exists() {
        std::fs::remove_dir_all(data).with_context(|| format!("emptying {}", data.display()))?;
    }
    std::fs::create_dir_all(data)?;
    let data = data.canonicalize()?;
    let fixtures = args.fixtures.canonicalize()?;

    say("[1/4] HSM: fresh LMK, the issuers' test keys entered as components");
    let lmk_hex = random_hex(32)?;
    let agent_token = random_hex(16)?;
    let ceremony_token = random_hex(16)?;
    let hsm_port = free_port()?;
    let hsm_url = format!("http://127.0.0.1:{hsm_port}");
    let callers = format!("agent:{agent_token},key-ceremony:{ceremony_token}");
    let mut hsm = Proc::start(
        "hsm",
        &bins,
        "hsm",
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{hsm_port}"),
            "--data",
            &path_str(&data.join("hsm"))?,
        ],
        &[("HSM_LMK_HEX", &lmk_hex), ("HSM_CALLERS", &callers)],
        &data.join("hsm.log"),
    )?;
    wait_for_hsm(&mut hsm, &hsm_url, &ceremony_token)?;
    let kcvs = load_national_masters(&hsm_url, &ceremony_token, &cards)?;
    say(&format!(
        "      SSC authentication masters loaded: external KCV {}, internal KCV {}",
        kcvs.0, kcvs.1
    ));

    say("[2/4] settlement switch: SQLite ledger, persons, policy tables and catalogues");
    let settlement_dir = path_str(&data.join("settlement"))?;
    let persons = path_str(&fixtures.join("persons/cards.csv"))?;
    let status = std::process::Command::new(bins.join("settlement"))
        .args(["import-persons", &persons, "--data", &settlement_dir])
        .stderr(std::fs::File::create(data.join("settlement-import.log"))?)
        .status()
        .context("running settlement import-persons")?;
    if !status.success() {
        bail!("settlement import-persons failed; see settlement-import.log");
    }
    let status = std::process::Command::new(bins.join("settlement-directory"))
        .args(["--data-dir", &settlement_dir, "import", "--csv"])
        .arg(fixtures.join("catalog/uses.csv"))
        .args(["--by", "ssc-demo"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(data.join("directory-import.log"))?)
        .status()
        .context("running settlement-directory import")?;
    if !status.success() {
        bail!("settlement-directory import failed; see directory-import.log");
    }
    let his_token = random_hex(16)?;
    let switch_port = free_port()?;
    let switch_url = format!("http://127.0.0.1:{switch_port}");
    let mut switch = Proc::start(
        "settlement",
        &bins,
        "settlement",
        &[
            "serve",
            "--listen",
            &format!("127.0.0.1:{switch_port}"),
            "--data",
            &settlement_dir,
            "--refdata",
            &path_str(&fixtures)?,
        ],
        &[("SETTLEMENT_PAAS", &format!("demo-his={his_token}"))],
        &data.join("settlement.log"),
    )?;
    wait_healthy(&mut switch, &format!("{switch_url}/health"))?;

    say("[3/4] terminal agent: PC/SC readers, the HSM over HTTP");
    let agent_port = free_port()?;
    let agent_url = format!("http://127.0.0.1:{agent_port}");
    let agent_config = data.join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "listen = \"127.0.0.1:{agent_port}\"\ndata_dir = \"{}\"\nterminal_no = \"T0001\"\n\
             device_no = \"D0001\"\n[hsm]\nmode = \"http\"\nurl = \"{hsm_url}\"\n",
            path_str(&data.join("agent"))?
        ),
    )?;
    let mut agent = Proc::start(
        "terminal-agent",
        &bins,
        "terminal-agent",
        &["--config", &path_str(&agent_config)?, "serve"],
        &[("TERMINAL_AGENT_HSM_TOKEN", &agent_token)],
        &data.join("agent.log"),
    )?;
    wait_healthy(&mut agent, &format!("{agent_url}/v1/readers"))?;
    let kiosk = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;

    say("[4/4] patients: card in the reader, read, PIN, hospital bill settled");
    let hospitals = Hospitals::new(&switch_url, &his_token, &fixtures)?;
    let mut visits = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        let hospital = hospitals.for_patient(i, &card.region)?;
        let visit = visit(&bins, &data, &kiosk, &agent_url, card, hospital)
            .with_context(|| format!("card {}", card.label))?;
        say(&format!(
            "      {} ({}) at {}: bill {} settled",
            visit.label,
            visit.spec_version,
            visit.hospital,
            fen_to_yuan(json_fen(&visit.setlinfo["medfee_sumamt"])?)
        ));
        visits.push(visit);
    }
    let uses: Value = get_ok(
        &kiosk,
        &format!("{switch_url}/api/directory/v1/uses?limit=1"),
    )?;
    let uses_total = uses["total"]
        .as_u64()
        .context("the directory API gave no total")?;
    print_summary(&visits, started.elapsed(), &data);
    println_directory(&switch_url, uses_total);
    agent.stop();
    switch.stop();
    hsm.stop();
    Ok(())
}

fn load_cards(dir: &Path) -> Result<Vec<CardImage>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut cards = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        let t: toml::Table = text
            .parse()
            .with_context(|| format!("{}", path.display()))?;
        let field = |table: &str, key: &str| -> Result<String> {
            t.get(table)
                .and_then(|v| v.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .with_context(|| format!("{}: [{table}] {key} missing", path.display()))
        };
        let card_id = field("ssse", "card_id")?;
        let national_masters = match (
            field("keys", "ssse_external_auth_master"),
            field("keys", "ssse_internal_auth_master"),
        ) {
            (Ok(e), Ok(i)) => Some((e, i)),
            _ => None,
        };
        cards.push(CardImage {
            label: t
                .get("label")
                .and_then(|v| v.as_str())
                .unwrap_or("card")
                .to_owned(),
            pin: field("pin", "value")?,
            region: card_id.get(..6).unwrap_or("").to_owned(),
            national_masters,
            path,
        });
    }
    if cards.is_empty() {
        bail!("no card images in {}", dir.display());
    }
    Ok(cards)
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

/// The hospitals the demo's patients visit, one HIS each.
struct Hospitals {
    his: Vec<(String, His)>,
}

impl Hospitals {
    /// A level-3 hospital in each region of `fixtures/institutions/institutions.csv`.
    fn new(switch_url: &str, token: &str, fixtures: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(fixtures.join("institutions/institutions.csv"))?;
        let mut his = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')).skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            let [code, name, admdvs, level, kind] = cols[..] else {
                continue;
            };
            if kind != "hospital" || level != "level3" || his.iter().any(|(a, _)| a == admdvs) {
                continue;
            }
            let mut h = His::new(switch_url, "demo-his", token, code, name, admdvs)?;
            h.sign_in()
                .with_context(|| format!("9001 sign-in of {code}"))?;
            his.push((admdvs.to_owned(), h));
        }
        if his.is_empty() {
            bail!("no level-3 hospital in institutions.csv");
        }
        Ok(Self { his })
    }

    /// The first patient is treated at home; the others cross to the next region (京津冀).
    fn for_patient(&self, index: usize, insured_region: &str) -> Result<&His> {
        let home = self
            .his
            .iter()
            .position(|(a, _)| a.get(..2) == insured_region.get(..2))
            .unwrap_or(0);
        let pick = if index == 0 {
            home
        } else {
            (home + 1) % self.his.len()
        };
        Ok(&self.his[pick].1)
    }
}

fn visit(
    bins: &Path,
    data: &Path,
    kiosk: &reqwest::blocking::Client,
    agent_url: &str,
    card: &CardImage,
    his: &His,
) -> Result<Visit> {
    let mut vcard = Proc::start(
        "ssc-vcard",
        bins,
        "ssc-vcard",
        &[
            "--image",
            &path_str(&card.path)?,
            "--vpcd",
            &format!("127.0.0.1:{VPCD_PORT}"),
        ],
        &[],
        &data.join(format!("vcard-{}.log", card.label)),
    )?;
    wait_card(kiosk, agent_url, true, &mut vcard)?;
    let reader = READER.replace(' ', "%20");
    let read: Value = get_ok(kiosk, &format!("{agent_url}/v1/readers/{reader}/card"))?;
    let pin: Value = post_ok(
        kiosk,
        &format!("{agent_url}/v1/readers/{reader}/verify-pin"),
        &json!({"pin": card.pin}),
    )?;
    if pin["verified"] != true {
        bail!("PIN not verified: {pin}");
    }
    let bank: Value = get_ok(kiosk, &format!("{agent_url}/v1/readers/{reader}/bank"))?;
    let card_number = read["identity"]["card_number"]
        .as_str()
        .context("no card_number")?
        .to_owned();

    // The HIS: who is this (1101), register (2201), visit info (2203), fees (2204), settle (2207).
    let info = his.call(
        "1101",
        &his.mdtrtarea_admvs,
        json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_number,
               "card_sn": "", "psn_cert_type": "", "certno": "", "psn_name": ""}}),
    )?;
    let psn_no = info["baseinfo"]["psn_no"]
        .as_str()
        .context("1101: no psn_no")?
        .to_owned();
    let insuinfo = &info["insuinfo"][0];
    let insutype = insuinfo["insutype"].as_str().unwrap_or("310").to_owned();
    let insuplc = insuinfo["insuplc_admdvs"]
        .as_str()
        .context("1101: no insuplc_admdvs")?
        .to_owned();
    let now = his::shanghai_display(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    );
    let reg = his.call(
        "2201",
        &insuplc,
        json!({"data": {"psn_no": psn_no, "insutype": insutype, "begntime": now,
               "mdtrt_cert_type": "03", "mdtrt_cert_no": card_number, "ipt_otp_no": "MZ0001",
               "atddr_no": "D001", "dr_name": "医生", "dept_code": "A03", "dept_name": "内科",
               "caty": "A03"}}),
    )?;
    let mdtrt_id = reg["data"]["mdtrt_id"]
        .as_str()
        .or(reg["result"]["mdtrt_id"].as_str())
        .context("2201: no mdtrt_id")?
        .to_owned();
    his.call(
        "2203",
        &insuplc,
        json!({"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": "11",
               "begntime": now, "dise_codg": "J06.900", "dise_name": "急性上呼吸道感染"},
               "diseinfo": []}),
    )?;
    // A bill with each kind of line, codes present in every fixture catalogue: 甲类 (consultation,
    // blood test, amoxicillin), 乙类 with 先行自付 (atorvastatin, CT), 乙类 above its price cap
    // (MRI at 680.00), 丙类 (surgical masks).
    let lines = [
        ("0001", "001101000010000", "1", "10.00"),
        ("0002", "001201000010000", "1", "25.00"),
        ("0003", "XJ01CAA001A000000007919", "20", "1.50"),
        ("0004", "XC10AAA005A000000039595", "28", "3.20"),
        ("0005", "002101000010000", "1", "300.00"),
        ("0006", "002102000010000", "1", "680.00"),
        ("0007", "C1010100100000000002", "10", "0.50"),
    ];
    let mut feedetail = Vec::new();
    let mut total_fen: i64 = 0;
    for (sn, code, cnt, pric) in lines {
        let fen = yuan_to_fen(pric)? * cnt.parse::<i64>()?;
        total_fen += fen;
        feedetail.push(
            json!({"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": psn_no,
            "chrg_bchno": "B0001", "med_list_codg": code, "medins_list_codg": code,
            "det_item_fee_sumamt": fen_to_yuan(fen), "cnt": cnt, "pric": pric,
            "fee_ocur_time": now}),
        );
    }
    let fees = his.call("2204", &insuplc, json!({"feedetail": feedetail}))?;
    let sum = |field: &str| -> Result<i64> {
        let mut fen = 0;
        for line in fees["result"].as_array().context("2204: no result[]")? {
            fen += json_fen(&line[field])?;
        }
        Ok(fen)
    };
    let settle = his.call(
        "2207",
        &insuplc,
        json!({"data": {"psn_no": psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": card_number,
               "med_type": "11", "medfee_sumamt": fen_to_yuan(total_fen), "psn_setlway": "01",
               "mdtrt_id": mdtrt_id, "chrg_bchno": "B0001", "insutype": insutype,
               "acct_used_flag": "1", "invono": format!("FP{}", &mdtrt_id),
               "fulamt_ownpay_amt": fen_to_yuan(sum("fulamt_ownpay_amt")?),
               "overlmt_selfpay": fen_to_yuan(sum("overlmt_amt")?),
               "preselfpay_amt": fen_to_yuan(sum("preselfpay_amt")?),
               "inscp_scp_amt": fen_to_yuan(sum("inscp_scp_amt")?)}}),
    )?;
    let setlinfo = settle["setlinfo"].clone();
    check_identities(&setlinfo)?;

    vcard.stop();
    wait_card(kiosk, agent_url, false, &mut vcard)?;
    Ok(Visit {
        label: card.label.clone(),
        spec_version: read["identity"]["spec_version"]
            .as_str()
            .unwrap_or("?")
            .to_owned(),
        holder: read["holder"]["name"].as_str().unwrap_or("?").to_owned(),
        pan: bank["pan"].as_str().unwrap_or("-").to_owned(),
        hospital: his.fixmedins_code.clone(),
        insured: insuplc,
        setlinfo,
    })
}

/// Waits until the agent reports the reader with (`present`) or without a card.
fn wait_card(
    kiosk: &reqwest::blocking::Client,
    agent_url: &str,
    present: bool,
    vcard: &mut Proc,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(CARD_DETECT_TIMEOUT_MS);
    while Instant::now() < deadline {
        if present {
            vcard.check_running()?;
        }
        let readers: Value = get_ok(kiosk, &format!("{agent_url}/v1/readers"))?;
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

/// The national interface's identities on a 2207 reply (medical-settlement.md §1.4), in fen.
fn check_identities(s: &Value) -> Result<()> {
    let f = |k: &str| json_fen(&s[k]);
    let total = f("medfee_sumamt")?;
    let parts = f("fulamt_ownpay_amt")?
        + f("overlmt_selfpay")?
        + f("preselfpay_amt")?
        + f("inscp_scp_amt")?;
    let split = f("fund_pay_sumamt")? + f("psn_part_amt")?;
    let person = f("acct_pay")? + f("psn_cash_pay")?;
    if total != parts || total != split || f("psn_part_amt")? != person {
        bail!("2207 reply breaks the interface identities: {s}");
    }
    Ok(())
}

/// The summary is the program's output (stdout); progress went to stderr.
#[allow(clippy::print_stdout)]
fn print_summary(visits: &[Visit], elapsed: Duration, data: &Path) {
    println!();
    println!(
        "ssc-demo: {} patients settled in {:.1} s",
        visits.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "{:<12} {:<5} {:<8} {:<20} {:<13} {:<7} {:>9} {:>9} {:>9} {:>9}",
        "card",
        "gen",
        "holder",
        "bank PAN",
        "hospital",
        "参保地",
        "bill",
        "fund",
        "account",
        "cash"
    );
    let mut totals = [0i64; 4];
    for v in visits {
        let s = &v.setlinfo;
        let amounts = [
            "medfee_sumamt",
            "fund_pay_sumamt",
            "acct_pay",
            "psn_cash_pay",
        ]
        .map(|k| json_fen(&s[k]).unwrap_or(0));
        for (t, a) in totals.iter_mut().zip(amounts) {
            *t += a;
        }
        println!(
            "{:<12} {:<5} {} {:<20} {:<13} {} {:>9} {:>9} {:>9} {:>9}",
            v.label,
            v.spec_version,
            pad(&v.holder, 10),
            v.pan,
            v.hospital,
            pad(&v.insured, 8),
            fen_to_yuan(amounts[0]),
            fen_to_yuan(amounts[1]),
            fen_to_yuan(amounts[2]),
            fen_to_yuan(amounts[3])
        );
    }
    println!(
        "{:<74} {:>9} {:>9} {:>9} {:>9}",
        "total (yuan)",
        fen_to_yuan(totals[0]),
        fen_to_yuan(totals[1]),
        fen_to_yuan(totals[2]),
        fen_to_yuan(totals[3])
    );
    println!("logs and data: {}", data.display());
}

/// `text` cut and padded to `width` terminal columns (CJK characters take two).
fn pad(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if used + w > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push_str(&" ".repeat(width - used));
    out
}

#[allow(clippy::print_stdout)]
fn println_directory(switch_url: &str, uses_total: u64) {
    println!(
        "directory of card uses: {uses_total} uses (fixtures/catalog) served at {switch_url}/directory/ while the demo ran"
    );
}

fn get_ok(client: &reqwest::blocking::Client, url: &str) -> Result<Value> {
    let response = client
        .get(url)
        .send()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .with_context(|| format!("GET {url}: not JSON"))?;
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

fn post_ok(client: &reqwest::blocking::Client, url: &str, body: &Value) -> Result<Value> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let reply: Value = response
        .json()
        .with_context(|| format!("POST {url}: not JSON"))?;
    if !status.is_success() {
        bail!("POST {url}: {status} {reply}");
    }
    Ok(reply)
}

/// Exact yuan text ("12.3", "12.34", 12.34 as a JSON number) to fen; never through a float.
fn yuan_to_fen(text: &str) -> Result<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        bail!("not an amount in yuan: {text:?}");
    }
    let fen = whole.parse::<i64>()? * 100 + format!("{frac:0<2}").parse::<i64>()?;
    Ok(if negative { -fen } else { fen })
}

fn json_fen(value: &Value) -> Result<i64> {
    match value {
        Value::String(s) => yuan_to_fen(s),
        Value::Number(n) => yuan_to_fen(&n.to_string()),
        other => bail!("not an amount: {other}"),
    }
}

fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

fn random_hex(len_bytes: usize) -> Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; len_bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode_upper(bytes))
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_text_converts_to_fen_exactly() {
        assert_eq!(yuan_to_fen("12.34").unwrap(), 1234);
        assert_eq!(yuan_to_fen("12.3").unwrap(), 1230);
        assert_eq!(yuan_to_fen("-0.05").unwrap(), -5);
        assert_eq!(yuan_to_fen("3150").unwrap(), 315_000);
        assert!(yuan_to_fen("1.234").is_err());
        assert!(yuan_to_fen("1e3").is_err());
        assert_eq!(fen_to_yuan(-5), "-0.05");
        assert_eq!(fen_to_yuan(315_000), "3150.00");
    }
}
