//! PIN blocks and PIN verification against published vectors (fixtures/vectors/pin.toml: psec
//! and paysec-pinblock tests) and enciphered format 0/3 blocks from an independent OpenSSL
//! computation (fixtures/vectors/independent.toml).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{a, h, list, load, s, table};
use hsm::error::Error;
use hsm::pin::verify::*;
use hsm::pin::*;
use hsm::primitives::{tdes_decrypt_block, tdes_encrypt_block};

const TDES_KEY: [u8; 16] = [0x11; 16];
const TDES_KEY_2: [u8; 16] = [0x22; 16];

fn rows(t: &toml::Table) -> Vec<Vec<String>> {
    t["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn format0_clear_blocks_match_psec() {
    let v = load("pin.toml");
    for c in list(&v, "format0_clear") {
        let enc = encrypt_pin_block(
            PinBlockFormat::Iso0,
            &TDES_KEY,
            s(c, "pin"),
            Some(s(c, "pan")),
        )
        .unwrap();
        let clear = tdes_decrypt_block(&TDES_KEY, &enc.try_into().unwrap()).unwrap();
        assert_eq!(clear.to_vec(), h(c, "block"), "{}", s(c, "source"));
    }
}

#[test]
fn format0_malformed_blocks_are_rejected_like_psec() {
    let v = load("pin.toml");
    for c in list(&v, "format0_bad") {
        for block in c["blocks"].as_array().unwrap() {
            let clear: [u8; 8] = hex::decode(block.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap();
            let enc = tdes_encrypt_block(&TDES_KEY, &clear).unwrap();
            let r = check_pin_block(PinBlockFormat::Iso0, &TDES_KEY, &enc, Some(s(c, "pan")));
            assert!(
                matches!(r, Err(Error::InvalidPinBlock { .. })),
                "{block}: {r:?}"
            );
        }
    }
}

#[test]
fn format4_matches_psec_and_paysec() {
    let v = load("pin.toml");
    let t = table(&v, "format4");
    let block = encrypt_pin_block_with_random(
        PinBlockFormat::Iso4,
        &h(t, "key"),
        s(t, "pin"),
        Some(s(t, "pan")),
        &a(t, "random"),
    )
    .unwrap();
    assert_eq!(block, h(t, "block"), "{}", s(t, "source"));
    for c in list(&v, "format4_decipher") {
        let key = h(c, "key");
        let pan = Some(s(c, "pan"));
        check_pin_block(PinBlockFormat::Iso4, &key, &h(c, "block"), pan).unwrap();
        // Format 0 is deterministic: translating 4 -> 0 must equal building format 0 from the
        // published PIN, which shows the PIN was recovered exactly.
        let out = translate_pin_block(
            &h(c, "block"),
            &key,
            PinBlockFormat::Iso4,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            pan,
        )
        .unwrap();
        let expected =
            encrypt_pin_block(PinBlockFormat::Iso0, &TDES_KEY, s(c, "pin"), pan).unwrap();
        assert_eq!(out, expected, "{}", s(c, "source"));
    }
}

#[test]
fn enciphered_format0_and_3_match_independent_computation() {
    let v = load("independent.toml");
    let t = table(&v, "pin");
    let key = h(t, "key");
    let pan = Some(s(t, "pan"));
    let f0 = encrypt_pin_block(PinBlockFormat::Iso0, &key, s(t, "pin"), pan).unwrap();
    assert_eq!(f0, h(t, "format0_block"));
    check_pin_block(PinBlockFormat::Iso3, &key, &h(t, "format3_block"), pan).unwrap();
    let to0 = translate_pin_block(
        &h(t, "format3_block"),
        &key,
        PinBlockFormat::Iso3,
        &key,
        PinBlockFormat::Iso0,
        pan,
    )
    .unwrap();
    assert_eq!(to0, h(t, "format0_block"));
    assert_eq!(
        check_pin_block(
            PinBlockFormat::Iso3,
            &key,
            &h(t, "format3_bad_fill_block"),
            pan
        ),
        Err(Error::InvalidPinBlock {
            reason: "fill does not match the format"
        })
    );
    // A format 3 block read as format 0 fails on the control field.
    assert_eq!(
        check_pin_block(PinBlockFormat::Iso0, &key, &h(t, "format3_block"), pan),
        Err(Error::InvalidPinBlock {
            reason: "control field does not match the format"
        })
    );
}

#[test]
fn translation_rules_follow_aws_translate_pin_data() {
    let pan = Some("5555555551234567");
    let f1 = encrypt_pin_block(PinBlockFormat::Iso1, &TDES_KEY, "98765", None).unwrap();
    for out in [
        PinBlockFormat::Iso0,
        PinBlockFormat::Iso3,
        PinBlockFormat::Iso4,
    ] {
        assert!(matches!(
            translate_pin_block(&f1, &TDES_KEY, PinBlockFormat::Iso1, &[0x33; 16], out, pan),
            Err(Error::UnsupportedFormat { .. })
        ));
    }
    let f1b = translate_pin_block(
        &f1,
        &TDES_KEY,
        PinBlockFormat::Iso1,
        &TDES_KEY_2,
        PinBlockFormat::Iso1,
        None,
    )
    .unwrap();
    check_pin_block(PinBlockFormat::Iso1, &TDES_KEY_2, &f1b, None).unwrap();
    // Round trip 0 -> 4 (AES) -> 3 -> 0 keeps the PIN: the final format 0 block is deterministic.
    let aes_key = [0x44u8; 32];
    let f0 = encrypt_pin_block(PinBlockFormat::Iso0, &TDES_KEY, "4321", pan).unwrap();
    let f4 = translate_pin_block(
        &f0,
        &TDES_KEY,
        PinBlockFormat::Iso0,
        &aes_key,
        PinBlockFormat::Iso4,
        pan,
    )
    .unwrap();
    assert_eq!(f4.len(), 16);
    let f3 = translate_pin_block(
        &f4,
        &aes_key,
        PinBlockFormat::Iso4,
        &TDES_KEY_2,
        PinBlockFormat::Iso3,
        pan,
    )
    .unwrap();
    let back = translate_pin_block(
        &f3,
        &TDES_KEY_2,
        PinBlockFormat::Iso3,
        &TDES_KEY,
        PinBlockFormat::Iso0,
        pan,
    )
    .unwrap();
    assert_eq!(back, f0);
    // Format 2 is never enciphered; AES keys only with format 4 (a 32-byte key is no 3DES key).
    assert!(matches!(
        translate_pin_block(
            &f0,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            &TDES_KEY,
            PinBlockFormat::Iso2,
            pan
        ),
        Err(Error::UnsupportedFormat { .. })
    ));
    assert!(matches!(
        translate_pin_block(
            &f0,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            &aes_key,
            PinBlockFormat::Iso0,
            pan
        ),
        Err(Error::InvalidKeyLength { actual: 32, .. })
    ));
    // A PAN-bound format without a PAN.
    assert!(matches!(
        translate_pin_block(
            &f0,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            &TDES_KEY,
            PinBlockFormat::Iso3,
            None
        ),
        Err(Error::InvalidPan { .. })
    ));
}

#[test]
fn format2_plain_block_for_icc_verify() {
    // psec tests/test_pinblock.py::test_encode_pinblock_iso_2: 1234 -> 241234FFFFFFFFFF.
    let block = iso2_plain_block("1234").unwrap();
    assert_eq!(hex::encode_upper(*block), "241234FFFFFFFFFF");
    assert!(iso2_plain_matches(&block, "1234").unwrap());
    assert!(!iso2_plain_matches(&block, "1235").unwrap());
}

#[test]
fn ibm3624_offsets_match_psec() {
    let v = load("pin.toml");
    for t in list(&v, "ibm3624") {
        let pan = s(t, "pan");
        for r in rows(t) {
            let params = Ibm3624Params {
                decimalization_table: s(t, "table"),
                validation_data: &r[0],
            };
            let block =
                encrypt_pin_block(PinBlockFormat::Iso0, &TDES_KEY, &r[1], Some(pan)).unwrap();
            let offset = generate_ibm3624_offset(
                &block,
                &TDES_KEY,
                PinBlockFormat::Iso0,
                Some(pan),
                &h(t, "pvk"),
                &params,
                4,
            )
            .unwrap();
            assert_eq!(offset, r[2], "{} {:?}", s(t, "source"), r[0]);
            let ok = |offset: &str| {
                verify_ibm3624_offset(
                    &block,
                    &TDES_KEY,
                    PinBlockFormat::Iso0,
                    Some(pan),
                    &h(t, "pvk"),
                    &params,
                    offset,
                )
                .unwrap()
            };
            assert!(ok(&r[2]));
            let wrong: String = r[2]
                .chars()
                .map(|c| {
                    char::from(b'0' + (u8::try_from(c.to_digit(10).unwrap()).unwrap() + 1) % 10)
                })
                .collect();
            assert!(!ok(&wrong));
        }
    }
}

#[test]
fn visa_pvv_matches_psec() {
    let v = load("pin.toml");
    for t in list(&v, "visa_pvv") {
        for r in rows(t) {
            let pvki = r[0].parse::<u8>().unwrap();
            let pan = &r[2];
            let block =
                encrypt_pin_block(PinBlockFormat::Iso3, &TDES_KEY, &r[1], Some(pan)).unwrap();
            let pvv = generate_visa_pvv(
                &block,
                &TDES_KEY,
                PinBlockFormat::Iso3,
                pan,
                &h(t, "pvk"),
                pvki,
            )
            .unwrap();
            assert_eq!(pvv, r[3], "{}", s(t, "source"));
            assert!(
                verify_visa_pvv(
                    &block,
                    &TDES_KEY,
                    PinBlockFormat::Iso3,
                    pan,
                    &h(t, "pvk"),
                    pvki,
                    &r[3]
                )
                .unwrap()
            );
            let other =
                encrypt_pin_block(PinBlockFormat::Iso3, &TDES_KEY, "9999", Some(pan)).unwrap();
            assert!(
                !verify_visa_pvv(
                    &other,
                    &TDES_KEY,
                    PinBlockFormat::Iso3,
                    pan,
                    &h(t, "pvk"),
                    pvki,
                    &r[3]
                )
                .unwrap()
            );
        }
    }
}

#[test]
fn bad_inputs_are_typed_and_carry_no_digits() {
    let pan = Some("5555555551234567");
    for pin in ["123", "1234567890123", "12a4", ""] {
        let e = encrypt_pin_block(PinBlockFormat::Iso0, &TDES_KEY, pin, pan).unwrap_err();
        assert!(matches!(e, Error::InvalidPin { .. }));
    }
    let e = encrypt_pin_block(
        PinBlockFormat::Iso0,
        &TDES_KEY,
        "4711",
        Some("555555555123"),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidPan { .. }));
    assert!(!e.to_string().contains("555555555123"));
    assert!(matches!(
        check_pin_block(PinBlockFormat::Iso0, &TDES_KEY, &[0; 7], pan),
        Err(Error::DataLength { actual: 7, .. })
    ));
    assert!(matches!(
        check_pin_block(PinBlockFormat::Iso4, &[0; 16], &[0; 8], pan),
        Err(Error::DataLength { actual: 8, .. })
    ));
    let block = encrypt_pin_block(PinBlockFormat::Iso0, &TDES_KEY, "4711", pan).unwrap();
    let params = Ibm3624Params {
        decimalization_table: "12345678901234A6",
        validation_data: "1122334455667788",
    };
    assert!(matches!(
        verify_ibm3624_offset(
            &block,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            pan,
            &TDES_KEY,
            &params,
            "0000"
        ),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        verify_visa_pvv(
            &block,
            &TDES_KEY,
            PinBlockFormat::Iso0,
            "5555555551234567",
            &TDES_KEY,
            10,
            "1234"
        ),
        Err(Error::InvalidParameter { .. })
    ));
    // Wrong key: the deciphered block is garbage and must be reported as malformed, not panic.
    let r = check_pin_block(PinBlockFormat::Iso0, &TDES_KEY_2, &block, pan);
    assert!(matches!(r, Err(Error::InvalidPinBlock { .. })), "{r:?}");
}
