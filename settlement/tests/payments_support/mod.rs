//! Helpers shared by the payments tests: the Python issuer bank simulator (tests/bank-sim, built
//! on pyiso8583 + pycryptodome) as a codec oracle and as a TCP server, and an HSM holding the
//! test keys of fixtures/banks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};

#[path = "../../../tests/support/workspace_build.rs"]
pub mod workspace_build;

/// The MAC key of test bank A (test key only; the HSM alias `bank-a-zak`).
pub const BANK_A_MAC_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";
/// The POS terminals' MAC key (test key only; the HSM alias `pos-tak`).
pub const POS_TAK: &str = "F1E2D3C4B5A69788796A5B4C3D2E1F00";
/// The MAC key of test bank B (test key only; the HSM alias `bank-b-zak`).
pub const BANK_B_MAC_KEY: &str = "89ABCDEF0123456776543210FEDCBA98";

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn sim_script() -> PathBuf {
    workspace().join("tests/bank-sim/bank_sim.py")
}

/// Runs `bank_sim.py <command>` with one stdin line per input, returns stdout lines.
pub fn sim_lines(command: &str, key_hex: &str, input: &[String]) -> Vec<String> {
    let mut child = Command::new("python3")
        .arg(sim_script())
        .args([command, "--mac-key", key_hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with pyiso8583 (scripts/ensure-python-deps)");
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in input {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "bank_sim.py {command} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A running simulator: killed on drop.
pub struct BankSim {
    pub child: Child,
    pub port: u16,
    pub events: PathBuf,
}

impl BankSim {
    /// Starts `bank_sim.py serve` on a free port (or `port`), appending events to `events`.
    pub fn start(events: PathBuf, port: u16, key_hex: &str) -> BankSim {
        let mut child = Command::new("python3")
            .arg(sim_script())
            .args(["serve", "--port", &port.to_string(), "--mac-key", key_hex])
            .arg("--events")
            .arg(&events)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .expect("listening line")
            .parse()
            .unwrap();
        BankSim {
            child,
            port,
            events,
        }
    }

    /// The events the simulator recorded, as JSON values.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for BankSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn header(alias: &str, algorithm: KeyAlgorithm, usage: KeyUsage, mode: ModeOfUse) -> KeyHeader {
    KeyHeader {
        alias: alias.into(),
        algorithm,
        usage,
        mode,
        version: *b"00",
        exportability: Exportability::NonExportable,
    }
}

/// An HSM with the banks' MAC keys (`bank-a-zak`, `bank-b-zak`, and `bank-a-zak-wrong` = B's
/// key under another alias; M3 retail MAC) and the issuer master keys (E0) of the fixture
/// cards (`beijing-imk-ac`, `hebei-imk-ac`: the cards' `issuer_master_key`).
pub fn hsm() -> (tempfile::TempDir, hsm::ops::Hsm) {
    let dir = tempfile::tempdir().unwrap();
    let lmk = hsm::lmk::Lmk::from_bytes(&[0x42; 32]).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir.path(), lmk).unwrap();
    for (alias, key) in [
        ("bank-a-zak", BANK_A_MAC_KEY),
        ("bank-b-zak", BANK_B_MAC_KEY),
        ("bank-a-zak-wrong", BANK_B_MAC_KEY),
        ("pos-tak", POS_TAK),
    ] {
        let mac = hex::decode(key).unwrap();
        hsm.import_key_components(
            "test",
            header(alias, KeyAlgorithm::Tdes2, KeyUsage::M3, ModeOfUse::C),
            &[&mac],
            None,
        )
        .unwrap();
    }
    for (alias, key) in [
        ("beijing-imk-ac", "9E15204313F7318ACB79B90BD986AD29"),
        ("hebei-imk-ac", "0123456789ABCDEFFEDCBA9876543210"),
    ] {
        let key = hex::decode(key).unwrap();
        hsm.import_key_components(
            "test",
            header(alias, KeyAlgorithm::Tdes2, KeyUsage::E0, ModeOfUse::X),
            &[&key],
            None,
        )
        .unwrap();
    }
    hsm.create_key(
        "test",
        header(PAN_KEY, KeyAlgorithm::Sm2, KeyUsage::D1, ModeOfUse::D),
    )
    .unwrap();
    (dir, hsm)
}

/// HSM alias of the switch's PAN sealing key (SM2, D1), made by [`hsm`].
pub const PAN_KEY: &str = "switch-pan";

/// `pan` sealed as a terminal does for `POST /payments/v1/purchase`: SM2 encryption of its ASCII
/// digits to `public` (hsm::sm::sm2_encrypt, GB/T 32918.4), hex.
pub fn seal_pan(public: &[u8], pan: &str) -> String {
    let public: [u8; 65] = public.try_into().unwrap();
    hex::encode_upper(hsm::sm::sm2_encrypt(&public, pan.as_bytes()).unwrap())
}

/// A fixture card's PBOC application as the tests play it (fixtures/cards/*.toml `[pboc]`).
pub struct TestCard {
    pub pan: String,
    pub psn: u8,
    pub imk: [u8; 16],
    pub cdol1: Vec<u8>,
    pub atc: u16,
}

impl TestCard {
    pub fn fixture(name: &str) -> TestCard {
        let text = std::fs::read_to_string(workspace().join("fixtures/cards").join(name)).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        let p = &v["pboc"];
        let hexs = |k: &str| hex::decode(p[k].as_str().unwrap().replace(' ', "")).unwrap();
        TestCard {
            pan: p["pan"].as_str().unwrap().to_owned(),
            psn: u8::try_from(p["psn"].as_integer().unwrap()).unwrap(),
            imk: hexs("issuer_master_key").try_into().unwrap(),
            cdol1: hexs("cdol1"),
            atc: u16::try_from(p["atc"].as_integer().unwrap()).unwrap(),
        }
    }

    /// The session key for `atc`: EMV option A master key (the rightmost 16 digits of PAN‖PSN
    /// under the issuer key), PBOC session key from the ATC — what the virtual card does
    /// (card-core/src/vcard/pboc.rs), computed here with hsm::emv primitives directly.
    pub fn session_key(&self, atc: u16) -> [u8; 16] {
        let psn = (self.psn / 10) << 4 | (self.psn % 10);
        let mk = hsm::emv::derive_icc_master_key_option_a(&self.imk, &self.pan, psn).unwrap();
        *hsm::emv::derive_session_key_pboc(&mk, atc.to_be_bytes(), hsm::emv::CardAlgorithm::Tdes)
            .unwrap()
    }

    /// Field 55 for a purchase of `amount_fen` as the card would answer GENERATE AC (ARQC)
    /// with the CDOL1 filled by the terminal; `tamper` flips a bit of the ARQC.
    pub fn icc_data(&self, amount_fen: i64, atc: u16, tamper: bool) -> Vec<u8> {
        let amount = hex::decode(format!("{amount_fen:012}")).unwrap();
        let values: Vec<(u32, Vec<u8>)> = vec![
            (0x9F02, amount),
            (0x9F03, vec![0; 6]),
            (0x9F1A, vec![0x01, 0x56]),
            (0x95, vec![0; 5]),
            (0x5F2A, vec![0x01, 0x56]),
            (0x9A, vec![0x26, 0x11, 0x30]),
            (0x9C, vec![0x00]),
            (0x9F37, vec![0x12, 0x34, 0x56, 0x78]),
            (0x9F21, vec![0x12, 0x00, 0x00]),
            (0x9F4E, b"TEST MERCHANT PHARMA".to_vec()),
        ];
        // CDOL1 data in CDOL1 order.
        let dol = card_core::dol::Dol::parse(&self.cdol1).unwrap();
        let mut data = Vec::new();
        let mut tlvs = Vec::new();
        tlvs.extend(tlv(0x8C, &self.cdol1));
        for e in dol.entries() {
            let t = e
                .tag
                .to_bytes()
                .iter()
                .fold(0u32, |a, b| (a << 8) | u32::from(*b));
            let v = &values.iter().find(|(tag, _)| *tag == t).unwrap().1;
            assert_eq!(v.len(), usize::from(e.len));
            data.extend_from_slice(v);
            tlvs.extend(tlv(t, v));
        }
        let sk = self.session_key(atc);
        let mut arqc = hsm::emv::generate_arqc(&sk, hsm::emv::CardAlgorithm::Tdes, &data).unwrap();
        if tamper {
            arqc[7] ^= 1;
        }
        tlvs.extend(tlv(0x9F26, &arqc));
        tlvs.extend(tlv(0x9F27, &[0x80]));
        tlvs.extend(tlv(0x9F36, &atc.to_be_bytes()));
        tlvs.extend(tlv(0x9F10, &hex::decode("07010103A0000001").unwrap()));
        tlvs
    }

    /// The ARQC inside `icc` (tag 9F26).
    pub fn arqc_of(icc: &[u8]) -> [u8; 8] {
        let objects = card_core::tlv::parse_all(icc).unwrap();
        card_core::tlv::find_value(&objects, card_core::tlv::Tag::from_u32(0x9F26).unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    }
}

fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = if tag > 0xFF {
        u16::try_from(tag).unwrap().to_be_bytes().to_vec()
    } else {
        vec![u8::try_from(tag).unwrap()]
    };
    out.push(u8::try_from(value.len()).unwrap());
    out.extend_from_slice(value);
    out
}

/// A switch over an SQLite ledger in `dir`, routing bank A to `port_a` and bank B to `port_b`,
/// with `mac_a` as bank A's MAC key alias.
pub async fn switch(
    dir: &std::path::Path,
    hsm: std::sync::Arc<std::sync::Mutex<hsm::ops::Hsm>>,
    port_a: u16,
    port_b: u16,
    mac_a: &str,
) -> settlement::payments::Switch {
    use settlement::payments::{RoutingTable, Switch, SwitchOptions};
    let text = std::fs::read_to_string(workspace().join("fixtures/banks/routing.toml")).unwrap();
    let mut routing = RoutingTable::from_toml(&text).unwrap();
    routing.set_host("B0001", format!("127.0.0.1:{port_a}").parse().unwrap());
    routing.set_host("B0002", format!("127.0.0.1:{port_b}").parse().unwrap());
    for bank in &mut routing.banks {
        if bank.code == "B0001" {
            bank.mac_key = mac_a.to_owned();
        }
    }
    let ledger = match PG_SCHEMA.with(|c| c.borrow().clone()) {
        None => settlement::Ledger::open_sqlite(&dir.join("ledger.db"), Default::default())
            .await
            .unwrap(),
        Some(schema) => {
            let connect = <settlement::PgConnectOptions as std::str::FromStr>::from_str(&pg_url())
                .unwrap()
                .options([("search_path", schema.as_str())]);
            settlement::Ledger::open_postgres(connect, Default::default())
                .await
                .unwrap()
        }
    };
    let mut terminals = settlement::payments::risk::TerminalMap {
        travel_speed_kmh_max: 900,
        ..Default::default()
    };
    // Beijing and Shanghai pharmacies, ~1067 km apart.
    terminals
        .positions
        .insert("BJ000001".into(), (39_904_200, 116_407_400));
    terminals
        .positions
        .insert("SH000001".into(), (31_230_400, 121_473_700));
    let options = SwitchOptions {
        admdvs: settlement::Admdvs::parse("110000").unwrap(),
        pan_salt: "test-salt".into(),
        daily_limit_fen: 5_000_000,
        hsm_caller: "switch-test".into(),
        terminals,
        qr: settlement::payments::qr::QrOptions {
            partners: [(
                "WALLET01".to_owned(),
                settlement::payments::qr::QrPartner {
                    key_alias: "partner-wallet01-sm2".into(),
                    sm2_id: "1234567812345678".into(),
                },
            )]
            .into_iter()
            .collect(),
            lifetime_ms_max: 120_000,
        },
        pan_key: Some(PAN_KEY.to_owned()),
    };
    Switch::open(routing, options, ledger, hsm).await.unwrap()
}

thread_local! {
    /// When set (by [`use_postgres`]), `switch` opens its ledger in this PostgreSQL schema.
    static PG_SCHEMA: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

pub fn pg_url() -> String {
    std::env::var("LEDGER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh schema in the `test` database and makes `switch` use it on this thread
/// (the tests calling this run on a current-thread runtime). Returns the schema name.
pub async fn use_postgres() -> String {
    use sqlx::Connection as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!("pay_{}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(&pg_url())
        .await
        .expect("PostgreSQL at LEDGER_TEST_PG_URL (run scripts/ensure-postgres)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    PG_SCHEMA.with(|c| *c.borrow_mut() = Some(schema.clone()));
    schema
}

/// Drops a schema made by [`use_postgres`].
pub async fn drop_postgres(schema: &str) {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}

pub const MERCHANT: &str = "M11000000000001";

pub fn purchase(
    card: &TestCard,
    terminal: &str,
    amount_fen: i64,
    icc: Vec<u8>,
) -> settlement::payments::PurchaseRequest {
    settlement::payments::PurchaseRequest {
        terminal_id: terminal.into(),
        merchant_id: MERCHANT.into(),
        pan: card_core::pboc::Pan::new(&card.pan).unwrap(),
        psn: card.psn,
        amount_fen,
        currency: "156".into(),
        icc_data: icc,
    }
}

/// Everything logged in this test binary at `level` and above, as text: the first call installs
/// a global `tracing` subscriber writing into memory (with the level given then), later calls
/// read what it holds. For the "no PAN in clear in any log line" checks.
pub fn captured_logs(level: tracing::Level) -> String {
    use std::sync::{Arc, Mutex, OnceLock};

    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buf = LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(level)
            .with_ansi(false)
            .try_init();
        buf
    });
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}
