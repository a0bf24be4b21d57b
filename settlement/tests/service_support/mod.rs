//! Harness of the service tests: a fresh database (SQLite file or PostgreSQL schema, via
//! `common::TestDb`), the fixture reference data (fixtures/catalogue, policy, institutions), the
//! fixture persons imported (fixtures/persons/cards.csv), and the app driven with `oneshot`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use settlement::catalogue::CatalogueSet;
use settlement::medical::{Medical, PersonImport, RefData};
use settlement::nhsa::ResponseEnvelope;
use settlement::policy::PolicySet;
use settlement::service::{AppState, Gateway, GatewayConfig, app};
use settlement::{Ledger, LedgerOptions};
use sqlx::Connection;
use tower::ServiceExt;

use crate::common::{Db, TestDb, pg_url};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn refdata() -> RefData {
    let dir = fixtures();
    let institutions =
        settlement::refdata::load_institutions(&dir.join("institutions/institutions.csv")).unwrap();
    RefData {
        catalogues: CatalogueSet::load_dir(&dir.join("catalogue")).unwrap(),
        policies: PolicySet::load_dir(&dir.join("policy")).unwrap(),
        institutions: institutions
            .into_iter()
            .map(|i| (i.fixmedins_code, i.hosp_lv))
            .collect(),
    }
}

pub struct Harness {
    pub test: TestDb,
    pub ledger: Arc<Ledger>,
    pub medical: Arc<Medical>,
    pub state: Arc<AppState>,
}

impl Harness {
    pub async fn new(db: Db) -> Harness {
        Harness::with_gateway(db, GatewayConfig::default()).await
    }

    pub async fn with_gateway(db: Db, gateway: GatewayConfig) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("settlement=warn")
            .with_test_writer()
            .try_init();
        let test = TestDb::new(db).await;
        let ledger = Arc::new(test.open(LedgerOptions::default()).await);
        let medical = Arc::new(Medical::new(ledger.clone(), refdata()));
        let persons =
            settlement::refdata::load_persons_csv(&fixtures().join("persons/cards.csv")).unwrap();
        let imports: Vec<PersonImport> = persons.iter().map(PersonImport::from).collect();
        medical.import_persons(&imports).await.unwrap();
        let state = Arc::new(AppState {
            medical: medical.clone(),
            gateway: Gateway::new(gateway),
            ready: AtomicBool::new(true),
        });
        Harness {
            test,
            ledger,
            medical,
            state,
        }
    }

    /// Posts a raw body with extra headers; returns (HTTP status, envelope).
    pub async fn raw(&self, body: &str, headers: &[(&str, String)]) -> (u16, ResponseEnvelope) {
        let mut request = Request::post(settlement::service::CALL_SERVICE_PATH)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = app(self.state.clone())
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Sends an envelope.
    pub async fn call(&self, envelope: &Value) -> ResponseEnvelope {
        self.raw(&envelope.to_string(), &[]).await.1
    }

    /// Sends and asserts success; returns the output.
    pub async fn ok(&self, envelope: &Value) -> Value {
        let reply = self.call(envelope).await;
        assert_eq!(reply.infcode, 0, "{:?} {:?}", reply.err_code, reply.err_msg);
        let text = reply.output.get();
        // Money literals keep exactly two decimals on the wire.
        for field in [
            "medfee_sumamt",
            "hifp_pay",
            "acct_pay",
            "balc",
            "inscp_scp_amt",
        ] {
            let key = format!("\"{field}\":");
            if let Some(at) = text.find(&key) {
                let rest = &text[at + key.len()..];
                let literal: String = rest
                    .chars()
                    .take_while(|c| *c == '-' || *c == '.' || c.is_ascii_digit())
                    .collect();
                assert!(
                    literal.split_once('.').is_some_and(|(_, f)| f.len() == 2),
                    "{field} = {literal} in {text}"
                );
            }
        }
        serde_json::from_str(text).unwrap()
    }

    /// Sends and asserts a refusal with `code`.
    pub async fn refused(&self, envelope: &Value, code: &str) -> String {
        let reply = self.call(envelope).await;
        assert_eq!(
            reply.infcode,
            -1,
            "expected {code}, got success {}",
            reply.output.get()
        );
        assert_eq!(reply.output.get(), "null");
        assert_eq!(reply.err_code.as_deref(), Some(code), "{:?}", reply.err_msg);
        reply.err_msg.unwrap()
    }

    /// Row counts of every table (ledger and medical): "nothing written" is equality of these.
    pub async fn counts(&self) -> Vec<(String, i64)> {
        let tables = [
            "accounts",
            "postings",
            "legs",
            "nhsa_messages",
            "persons",
            "visits",
            "visit_events",
            "fee_lines",
            "fee_cancels",
            "settlements",
            "settlement_cancels",
            "accumulator_changes",
        ];
        let mut out = Vec::new();
        for table in tables {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n: i64 = match self.test.db {
                Db::Sqlite => {
                    let path = self.test.sqlite_path().unwrap();
                    let mut conn =
                        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                            .await
                            .unwrap();
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&mut conn)
                        .await
                        .unwrap()
                }
                Db::Postgres => {
                    let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
                    let schema = self.test.pg_schema().unwrap();
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT COUNT(*) FROM {schema}.{table}"
                    )))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                }
            };
            out.push((table.to_owned(), n));
        }
        out
    }

    pub async fn verify(&self) {
        let report = self.ledger.verify().await.unwrap();
        assert!(report.is_consistent(), "{:?}", report.problems);
    }

    pub async fn finish(self) {
        drop(self.state);
        drop(self.medical);
        if let Ok(ledger) = Arc::try_unwrap(self.ledger) {
            ledger.close().await;
        }
        self.test.drop_db().await;
    }
}

/// An envelope as HIS sends it.
pub fn envelope(infno: &str, msgid: &str, fixmedins: &str, admdvs: &str, input: Value) -> Value {
    json!({
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": admdvs,
        "insuplc_admdvs": admdvs,
        "recer_sys_code": "HIS",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "OP001",
        "opter_name": "收费员",
        "inf_time": "2026-11-30 10:00:00",
        "fixmedins_code": fixmedins,
        "fixmedins_name": "示例医院",
        "sign_no": "",
        "input": input,
    })
}

/// msgid in the documented layout: fixmedins_code (12) + yyyyMMddHHmmss + 4 digits.
pub fn msgid(fixmedins: &str, n: u32) -> String {
    format!("{fixmedins}20261130{:06}{:04}", n / 10_000, n % 10_000)
}

/// Money field of an output as fen (reads the literal, asserting 2 decimals).
pub fn fen(value: &Value) -> i64 {
    // `ok` already checked the 2-decimal literals on the wire; a parsed Value holds an f64,
    // exact to the fen for these magnitudes, read back through its shortest decimal text.
    let text = value.to_string();
    let yuan = rust_decimal::Decimal::from_str_exact(text.trim_matches('"')).unwrap();
    let fen = yuan * rust_decimal::Decimal::ONE_HUNDRED;
    assert!(fen.fract().is_zero(), "{text} is finer than a fen");
    i64::try_from(fen).unwrap()
}

/// Checks the interface's identities on a 2206/2207 output (medical-settlement.md §1.4).
pub fn check_identities(output: &Value) {
    let s = &output["setlinfo"];
    let f = |name: &str| fen(&s[name]);
    let medfee = f("medfee_sumamt");
    assert_eq!(
        medfee,
        f("fulamt_ownpay_amt") + f("overlmt_selfpay") + f("preselfpay_amt") + f("inscp_scp_amt")
    );
    assert_eq!(
        medfee,
        f("fund_pay_sumamt") + f("psn_part_amt") + f("hosp_part_amt")
    );
    assert_eq!(f("psn_part_amt"), f("acct_pay") + f("psn_cash_pay"));
    let funds = [
        "hifp_pay",
        "cvlserv_pay",
        "hifes_pay",
        "hifmi_pay",
        "hifob_pay",
        "hifdm_pay",
        "maf_pay",
        "oth_pay",
    ];
    assert_eq!(
        f("fund_pay_sumamt"),
        funds.iter().map(|n| f(n)).sum::<i64>()
    );
    let details: i64 = output["setldetail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| fen(&d["fund_payamt"]))
        .sum();
    assert_eq!(f("fund_pay_sumamt"), details);
}

pub async fn drop_schema_if_any(_db: Db) {}
