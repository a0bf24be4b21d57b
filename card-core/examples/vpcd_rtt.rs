//! APDU round trip through pcscd + vpcd to a running virtual card: prints APDU/s and the mean,
//! p50 and p99 round trip of READ RECORD `00 B2 07 2C 0B` (EF05 卡号).
//!
//! ```text
//! cargo build --release -p card-core --bin ssc-vcard
//! target/release/ssc-vcard --image fixtures/cards/beijing-2g.toml &
//! cargo run --release -p card-core --example vpcd_rtt -- [APDUS] [RUNS]
//! ```
//! Compare with limits.md §4: about 75 µs (13.3k APDU/s) when the card re-arms TCP_QUICKACK,
//! 44 ms when it does not (`ssc-vcard --no-quickack`).
#![allow(clippy::print_stdout)]

use std::ffi::CString;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const READER: &str = "Virtual PCD 00 00";
/// Most APDUs per run.
const APDUS_MAX: usize = 1_000_000;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let apdus: usize = args
        .next()
        .map_or(Ok(1_000), |a| a.parse())
        .context("APDUS")?;
    let runs: usize = args.next().map_or(Ok(5), |a| a.parse()).context("RUNS")?;
    if apdus == 0 || apdus > APDUS_MAX || runs == 0 {
        bail!("APDUS must be 1..={APDUS_MAX} and RUNS at least 1");
    }
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .context("pcscd not reachable: run scripts/ensure-pcsc")?;
    let reader = CString::new(READER)?;
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .context("no card in Virtual PCD 00 00: start ssc-vcard first")?;
    let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
    let select = hex::decode("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")?;
    let answer = card.transmit(&select, &mut buf)?;
    if !answer.ends_with(&[0x90, 0x00]) && !answer.starts_with(&[0x61]) {
        bail!("SELECT SSSE answered {}", hex::encode_upper(answer));
    }
    let read = hex::decode("00B2072C0B")?;
    for run in 1..=runs {
        let mut samples = Vec::with_capacity(apdus);
        let started = Instant::now();
        for _ in 0..apdus {
            let t = Instant::now();
            let answer = card.transmit(&read, &mut buf)?;
            samples.push(t.elapsed());
            if !answer.ends_with(&[0x90, 0x00]) {
                bail!("READ RECORD answered {}", hex::encode_upper(answer));
            }
        }
        let total = started.elapsed();
        samples.sort();
        let pct = |p: usize| {
            samples
                .get(samples.len() * p / 100)
                .copied()
                .unwrap_or_default()
        };
        let per_s = apdus as f64 / total.as_secs_f64();
        let mean = total / u32::try_from(apdus).unwrap_or(u32::MAX);
        println!(
            "run {run}: {apdus} APDUs, {per_s:.0} APDU/s, mean {} µs, p50 {} µs, p99 {} µs",
            micros(mean),
            micros(pct(50)),
            micros(pct(99))
        );
    }
    Ok(())
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}
