//! Throughput of the HSM's hot operations on one core: EMV ARQC verification with ARPC
//! (3DES: option A MK derivation + common session key + MAC algorithm 3 over 33 bytes of CDOL1
//! data + ARPC method 1), the same for PBOC SM4, and PIN translation (format 0 → format 0 under
//! another 3DES key). Run: `cargo bench -p hsm --bench hsm_ops -- --warm-up-time 1 --measurement-time 3`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hsm::emv::{
    CardAlgorithm, derive_icc_master_key_option_a, derive_icc_master_key_sm4,
    derive_session_key_emv_csk, derive_session_key_pboc, generate_arpc_method1, generate_arqc,
    verify_arqc,
};
use hsm::pin::{PinBlockFormat, encrypt_pin_block, translate_pin_block};

const IMK: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];
const PAN: &str = "6228480402564890018";
/// A typical CDOL1 data string: amount, other amount, country, TVR, currency, date, type, UN,
/// AIP, ATC (33 bytes).
const CDOL1: [u8; 33] = [
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x56, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x56, 0x25, 0x01, 0x01, 0x00, 0x12, 0x34, 0x56, 0x78, 0x7C, 0x00, 0x00,
    0x1C,
];

fn arqc(c: &mut Criterion) {
    let mut g = c.benchmark_group("emv");
    g.throughput(Throughput::Elements(1));
    let atc = [0x00, 0x1C];
    let un = [0x12, 0x34, 0x56, 0x78];
    let mk = derive_icc_master_key_option_a(&IMK, PAN, 0x01).unwrap();
    let sk = derive_session_key_emv_csk(&mk, atc, un).unwrap();
    let cryptogram = generate_arqc(&sk, CardAlgorithm::Tdes, &CDOL1).unwrap();
    g.bench_function("arqc_verify_arpc_tdes", |b| {
        b.iter(|| {
            let mk = derive_icc_master_key_option_a(&IMK, black_box(PAN), 0x01).unwrap();
            let sk = derive_session_key_emv_csk(&mk, atc, un).unwrap();
            verify_arqc(&sk, CardAlgorithm::Tdes, black_box(&CDOL1), &cryptogram).unwrap();
            generate_arpc_method1(&mk, CardAlgorithm::Tdes, &cryptogram, [0x30, 0x30]).unwrap()
        });
    });
    let mk4 = derive_icc_master_key_sm4(&IMK, PAN, 0x01).unwrap();
    let sk4 = derive_session_key_pboc(&mk4, atc, CardAlgorithm::Sm4).unwrap();
    let cryptogram4 = generate_arqc(&sk4, CardAlgorithm::Sm4, &CDOL1).unwrap();
    g.bench_function("arqc_verify_arpc_sm4", |b| {
        b.iter(|| {
            let mk = derive_icc_master_key_sm4(&IMK, black_box(PAN), 0x01).unwrap();
            let sk = derive_session_key_pboc(&mk, atc, CardAlgorithm::Sm4).unwrap();
            verify_arqc(&sk, CardAlgorithm::Sm4, black_box(&CDOL1), &cryptogram4).unwrap();
            generate_arpc_method1(&sk, CardAlgorithm::Sm4, &cryptogram4, [0x30, 0x30]).unwrap()
        });
    });
    g.finish();
}

fn pin(c: &mut Criterion) {
    let mut g = c.benchmark_group("pin");
    g.throughput(Throughput::Elements(1));
    let zpk_in = [0x1Fu8; 16];
    let zpk_out = [0x2Eu8; 16];
    let block = encrypt_pin_block(PinBlockFormat::Iso0, &zpk_in, "482915", Some(PAN)).unwrap();
    g.bench_function("translate_iso0_tdes", |b| {
        b.iter(|| {
            translate_pin_block(
                black_box(&block),
                &zpk_in,
                PinBlockFormat::Iso0,
                &zpk_out,
                PinBlockFormat::Iso0,
                Some(PAN),
            )
            .unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, arqc, pin);
criterion_main!(benches);
