//! Stable-Rust "fuzz smoke": each cargo-fuzz target body (../fuzz/bodies.rs) over 100 000 inputs
//! from a seeded xorshift generator: half random bytes, half mutations (flip, insert, delete,
//! truncate) of well-formed seeds so the parsers get past their first checks. A failing input
//! is printed in hex with its seed and index so it replays exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

include!("../fuzz/bodies.rs");

const INPUTS_PER_TARGET: usize = 100_000;

/// xorshift64* (Vigna 2016); deterministic per seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
    }
    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

fn seeds() -> Vec<Vec<u8>> {
    [
        "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
        "00B2080014",
        "00B00000000000",
        "80A8000023832100000000000000010000000000000000015600000000000156250131001122334400",
        "6F3F840E325041592E5359532E4444463031A52DBF0C2A610D4F08A000000333010102870102\
         61194F08A000000333010101500A50424F43204445424954870101 9000",
        "703C5A0A6228480402564890018F5F3401015F24033012315F25032001018C159F02069F03069F1A02\
         95055F2A029A039C019F37048D078A029F37049505",
        "770E82027C0094080801020010010100",
        "8012800011112233445566778807010103A00000",
        "771E9F2701809F360200119F260811223344556677889F100707010103A00000",
        "9F66049F02069F03069F1A0295055F2A029A039C019F3704",
        "08010200 10010100 18010400",
        "0110441800D1560000053030737878EC1A84 020133 0304332E3030 040C91560000025202005202006A",
        "091ECDF588D20000000000000000000000000000000000000000000000000000",
        "9F8201 8180 00 5F2D 820002 7A68 FF 00",
    ]
    .iter()
    .map(|s| h(s))
    .collect()
}

fn input(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(2) == 0 {
        let len = rng.below(300);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(4) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 => data.insert(at, rng.byte()),
            2 if at < data.len() => {
                data.remove(at);
            }
            _ => data.truncate(at),
        }
    }
    data
}

fn smoke(name: &str, seed: u64, body: fn(&[u8])) {
    let seeds = seeds();
    let mut rng = XorShift(seed);
    for index in 0..INPUTS_PER_TARGET {
        let data = input(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{name}: input #{index} (seed {seed:#x}) panicked: {}",
            hex::encode_upper(&data)
        );
    }
}

#[test]
fn fuzz_smoke_apdu_command() {
    smoke("apdu_command", 0x5EED_0001, apdu_command);
}

#[test]
fn fuzz_smoke_apdu_response() {
    smoke("apdu_response", 0x5EED_0002, apdu_response);
}

#[test]
fn fuzz_smoke_tlv() {
    smoke("tlv", 0x5EED_0003, tlv);
}

#[test]
fn fuzz_smoke_dol_afl() {
    smoke("dol_afl", 0x5EED_0004, dol_afl);
}

#[test]
fn fuzz_smoke_ssc_records() {
    smoke("ssc_records", 0x5EED_0005, ssc_records);
}
