//! Authorisation throughput and latency through the switch: N concurrent terminals (closed
//! loop, in process) call `Switch::purchase` — shape and ICC checks, risk queries, ARQC
//! verification in the hsm, the 0200 + armed 0400 written to SQLite (WAL, synchronous=FULL),
//! MAC by the hsm, ISO 8583 over TCP loopback to an issuer, MAC check, ledger posting (group
//! commit), outcome row, ARPC by the hsm.
//!
//! **The issuer here is a Rust in-process simulator, for the benchmark only** (the Python
//! simulator, tests/bank-sim, is what the tests use to check our codec against pyiso8583; at
//! thousands of messages a second it would measure Python). It verifies our MAC and approves.
//!
//! Run: `cargo bench -p settlement --bench payments_bench -- [--terminals 32] [--auths 5000]`
//! Prints authorisations/s and p50/p99/p999 of `purchase` (client side, closed loop:
//! coordinated omission understates the tail). Client, switch and issuer share the cores.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]

#[path = "../tests/payments_support/mod.rs"]
mod payments_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use payments_support::{BANK_A_MAC_KEY, TestCard, purchase};
use settlement::iso8583::{self, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The bench-only issuer: unpack (our codec), verify the retail MAC, answer 0210/00 with MAC.
async fn rust_issuer(listener: tokio::net::TcpListener) {
    let key = hex::decode(BANK_A_MAC_KEY).unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let key = key.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let mut head = [0u8; 2];
            let mut seq = 0u32;
            while read.read_exact(&mut head).await.is_ok() {
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(head))];
                if read.read_exact(&mut body).await.is_err() {
                    return;
                }
                let request = iso8583::unpack(&body).unwrap();
                let (covered, mac) = iso8583::split_mac(&body, &request).unwrap();
                hsm::mac::verify_mac_alg3(&key, covered, hsm::mac::Padding::Method1, mac).unwrap();
                let mut response = Message::new(request.mti.response().unwrap());
                for n in [3u8, 4, 7, 11, 12, 13, 32, 37, 41, 42, 49, 90] {
                    if let Some(v) = request.get(n) {
                        response.set(n, v.to_vec());
                    }
                }
                seq += 1;
                response.set(38, format!("{:06}", seq % 1_000_000).into_bytes());
                response.set(39, *b"00");
                let input = iso8583::mac_input(&mut response).unwrap();
                let mac = hsm::mac::mac_alg3(&key, &input, hsm::mac::Padding::Method1).unwrap();
                let field = iso8583::mac_field(&response);
                response.set(field, mac.to_vec());
                let framed = iso8583::frame(&iso8583::pack(&response).unwrap()).unwrap();
                if write.write_all(&framed).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let terminals = arg("--terminals", 32);
    let auths = arg("--auths", 5_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(rust_issuer(listener));
        let dir = tempfile::tempdir().unwrap();
        let (_hsm_dir, hsm) = payments_support::hsm();
        let switch =
            payments_support::switch(dir.path(), Arc::new(Mutex::new(hsm)), port, port, "bank-a-zak")
                .await;
        // 1 000 distinct cards on the beijing BIN (so risk queries see realistic history per
        // card), each with one precomputed ARQC for 100 fen.
        let base = TestCard::fixture("beijing-2g.toml");
        let requests: Vec<_> = (0..1_000u64)
            .map(|i| {
                let card = TestCard {
                    pan: format!("6214830{:012}", 300_000_000_000 + i),
                    psn: base.psn,
                    imk: base.imk,
                    cdol1: base.cdol1.clone(),
                    atc: base.atc,
                };
                let icc = card.icc_data(100, card.atc + 1, false);
                purchase(&card, &format!("T{:07}", i % 100), 100, icc)
            })
            .collect();
        let requests = Arc::new(requests);
        // Warm-up: connections, accounts, caches.
        for r in requests.iter().take(50) {
            assert_eq!(switch.purchase(r).await.unwrap().response_code, "00");
        }
        let started = Instant::now();
        let per_terminal = auths / terminals;
        let mut tasks = Vec::new();
        for t in 0..terminals {
            let switch = switch.clone();
            let requests = requests.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_terminal);
                for k in 0..per_terminal {
                    let r = &requests[(t * per_terminal + k) % requests.len()];
                    let begun = Instant::now();
                    let out = switch.purchase(r).await.unwrap();
                    latencies.push(begun.elapsed());
                    assert_eq!(out.response_code, "00");
                }
                latencies
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        // Nearest-rank percentile: the ceil(n * per_mille / 1000)-th smallest latency.
        let pct = |per_mille: usize| {
            let rank = (latencies.len() * per_mille).div_ceil(1_000);
            latencies[rank.saturating_sub(1).min(latencies.len() - 1)]
        };
        println!(
            "payments_bench: {} authorisations, {terminals} terminals, {:.0} auths/s, p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            pct(500).as_secs_f64() * 1e3,
            pct(990).as_secs_f64() * 1e3,
            pct(999).as_secs_f64() * 1e3,
        );
    });
}
