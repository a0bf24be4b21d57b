//! Signed partner calls through the partner API, in process (`tower::ServiceExt::oneshot` on
//! the router, no socket): `GET /api/partner/v1/me` signed with SM2 or ECDSA P-256. Each call
//! does the header checks, one credential and one application read, the signature check by the
//! `hsm` crate, one nonce INSERT, the rate limit, and one audit INSERT (SQLite WAL,
//! synchronous=FULL, or PostgreSQL with `--db postgres`).
//!
//! Requests are signed before the clock starts (signing is the partner's cost).
//! Run: `cargo bench -p settlement --bench partner_bench -- [--calls 4000] [--clients 16]
//! [--db sqlite|postgres]`. Prints calls/s and p50/p99 per algorithm (closed loop, client and
//! server share the cores).
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use common::{Db, TestDb};
use settlement::LedgerOptions;
use settlement::directory::{Directory, UseNumber};
use settlement::partner::canonical::{SignedParts, canonical_request};
use settlement::partner::{
    Decision, KeyAlgorithm, Operation, PartnerCode, PartnerKind, PartnerOptions, PartnerPlatform,
    Registration, Scope,
};
use tower::ServiceExt;

const SM2_PRIV: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

enum Signer {
    Sm2([u8; 32]),
    P256(Vec<u8>),
}

impl Signer {
    fn sign(&self, text: &[u8]) -> Vec<u8> {
        match self {
            Signer::Sm2(secret) => hsm::sm::sm2_sign(secret, hsm::sm::SM2_DEFAULT_ID, text)
                .unwrap()
                .to_vec(),
            Signer::P256(pkcs8) => hsm::sm::p256_sign(pkcs8, text).unwrap(),
        }
    }
}

async fn register(
    platform: &PartnerPlatform,
    code: &str,
    algorithm: KeyAlgorithm,
    public: [u8; 65],
) -> String {
    let scope = Scope {
        use_number: UseNumber::parse("P023").unwrap(),
        operation: Operation::SettlementStatus,
    };
    let (app_id, key_id) = platform
        .register(&Registration {
            partner_code: PartnerCode::parse(code).unwrap(),
            partner_name: code.to_owned(),
            partner_kind: PartnerKind::Bank,
            app_name: "bench".to_owned(),
            scopes: vec![scope.clone()],
            algorithm,
            public_key: public,
            sm2_id: if algorithm == KeyAlgorithm::Sm2 {
                hsm::sm::SM2_DEFAULT_ID.to_owned()
            } else {
                String::new()
            },
            webhook_url: None,
        })
        .await
        .unwrap()
        .unwrap();
    platform
        .decide(
            &app_id,
            &Decision::Approve {
                granted: vec![scope],
                rate: Some((1_000_000, 100_000)),
            },
            "bench",
        )
        .await
        .unwrap()
        .unwrap();
    key_id.as_str().to_owned()
}

fn signed_request(signer: &Signer, key_id: &str, n: usize) -> Request<Body> {
    let timestamp = now_ms().to_string();
    let nonce = format!("bench-nonce-{n:012}");
    let path = "/api/partner/v1/me";
    let text = canonical_request(&SignedParts {
        method: "GET",
        path,
        query: "",
        body: b"",
        timestamp: &timestamp,
        nonce: &nonce,
        key_id,
    });
    Request::get(path)
        .header("x-ssc-key-id", key_id)
        .header("x-ssc-timestamp", timestamp)
        .header("x-ssc-nonce", nonce)
        .header("x-ssc-signature", hex::encode(signer.sign(text.as_bytes())))
        .body(Body::empty())
        .unwrap()
}

async fn run(
    router: axum::Router,
    requests: Vec<Request<Body>>,
    clients: usize,
) -> (f64, Duration, Duration) {
    let total = requests.len();
    let queue = Arc::new(std::sync::Mutex::new(requests));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let queue = queue.clone();
        let router = router.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some(request) = queue.lock().unwrap().pop() else {
                    break;
                };
                let t = Instant::now();
                let response = router.clone().oneshot(request).await.unwrap();
                assert_eq!(response.status(), 200);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |per_mille: usize| all[(all.len() * per_mille / 1000).min(all.len() - 1)];
    (total as f64 / elapsed.as_secs_f64(), pct(500), pct(990))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize = arg("--calls", "4000").parse().unwrap();
    let clients: usize = arg("--clients", "16").parse().unwrap();
    let db = match arg("--db", "sqlite").as_str() {
        "postgres" => Db::Postgres,
        _ => Db::Sqlite,
    };
    let test = TestDb::new(db).await;
    let ledger = test.open(LedgerOptions::default()).await;
    let directory = Directory::from_ledger(&ledger).await.unwrap();
    let csv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/catalog/uses.csv"
    ))
    .unwrap();
    directory.import_csv(&csv, "bench").await.unwrap();
    let platform = Arc::new(PartnerPlatform::new(
        &ledger,
        Arc::new(directory),
        PartnerOptions::default(),
        None,
    ));
    let sm2_secret: [u8; 32] = hex::decode(SM2_PRIV).unwrap().try_into().unwrap();
    let sm2_public = *hsm::sm::Sm2KeyPair::from_secret(&sm2_secret)
        .unwrap()
        .public();
    let pkcs8 = hsm::sm::p256_generate_pkcs8().unwrap();
    let p256_public: [u8; 65] = hsm::sm::p256_public_key(&pkcs8)
        .unwrap()
        .try_into()
        .unwrap();
    let sm2_key = register(&platform, "BENCH-SM2", KeyAlgorithm::Sm2, sm2_public).await;
    let p256_key = register(
        &platform,
        "BENCH-P256",
        KeyAlgorithm::EcdsaP256,
        p256_public,
    )
    .await;
    let router = settlement::partner::api::router(platform.clone());
    println!("partner_bench: {calls} calls per algorithm, {clients} clients, {db:?}");
    for (name, signer, key) in [
        ("SM2", Signer::Sm2(sm2_secret), &sm2_key),
        ("ECDSA P-256", Signer::P256(pkcs8.to_vec()), &p256_key),
    ] {
        let requests: Vec<_> = (0..calls)
            .map(|n| signed_request(&signer, key, n))
            .collect();
        let (rate, p50, p99) = run(router.clone(), requests, clients).await;
        println!(
            "{name:12} {rate:8.0} calls/s   p50 {:6.2} ms   p99 {:6.2} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        );
    }
    drop(router);
    drop(platform);
    ledger.close().await;
    test.drop_db().await;
}
