//! Property tests: arbitrary bytes and strings fed to PIN-block decoding, MACs, ciphers, EMV
//! derivations, SM2 and hex decoding never panic and fail only with typed errors; PIN blocks
//! round-trip through translation; errors never echo a PAN or PIN.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm::emv::{CardAlgorithm, derive_icc_master_key_option_b, generate_arqc};
use hsm::error::{Error, decode_hex};
use hsm::mac::{Padding, cmac_aes, cmac_tdes, mac_alg1, mac_alg3, verify_truncated};
use hsm::pin::{PinBlockFormat, check_pin_block, encrypt_pin_block, translate_pin_block};
use hsm::primitives::{BlockAlgorithm, cbc_decrypt, ecb_decrypt};
use hsm::sm::{sm2_public_key_from_hex, sm2_verify, sm4_decrypt_ecb};
use proptest::prelude::*;

fn format() -> impl Strategy<Value = PinBlockFormat> {
    prop_oneof![
        Just(PinBlockFormat::Iso0),
        Just(PinBlockFormat::Iso1),
        Just(PinBlockFormat::Iso2),
        Just(PinBlockFormat::Iso3),
        Just(PinBlockFormat::Iso4),
    ]
}

fn algorithm() -> impl Strategy<Value = BlockAlgorithm> {
    prop_oneof![
        Just(BlockAlgorithm::Des),
        Just(BlockAlgorithm::Tdes),
        Just(BlockAlgorithm::Aes),
        Just(BlockAlgorithm::Sm4),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pin_block_decode_never_panics(
        fmt in format(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        block in proptest::collection::vec(any::<u8>(), 0..24),
        pan in "[0-9a-z]{0,21}",
    ) {
        let r = check_pin_block(fmt, &key, &block, Some(&pan));
        if let Err(e) = r {
            let typed = matches!(
                e,
                Error::InvalidPinBlock { .. } | Error::InvalidKeyLength { .. } | Error::DataLength { .. }
                    | Error::InvalidPan { .. } | Error::UnsupportedFormat { .. }
            );
            prop_assert!(typed, "untyped error");
            if pan.len() >= 4 {
                prop_assert!(!e.to_string().contains(&pan));
            }
        }
    }

    #[test]
    fn pin_translation_round_trips(pin in "[0-9]{4,12}", pan in "[0-9]{13,19}") {
        let k1 = [0x5Au8; 16];
        let k2 = [0xA5u8; 24];
        let k4 = [0x3Cu8; 16];
        let f0 = encrypt_pin_block(PinBlockFormat::Iso0, &k1, &pin, Some(&pan)).unwrap();
        let f4 = translate_pin_block(&f0, &k1, PinBlockFormat::Iso0, &k4, PinBlockFormat::Iso4, Some(&pan)).unwrap();
        let f3 = translate_pin_block(&f4, &k4, PinBlockFormat::Iso4, &k2, PinBlockFormat::Iso3, Some(&pan)).unwrap();
        let back = translate_pin_block(&f3, &k2, PinBlockFormat::Iso3, &k1, PinBlockFormat::Iso0, Some(&pan)).unwrap();
        prop_assert_eq!(back, f0);
    }

    #[test]
    fn macs_and_ciphers_never_panic(
        alg in algorithm(),
        key in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 0..70),
        received in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let _ = mac_alg1(alg, &key, &data, Padding::Method3);
        let _ = mac_alg3(&key, &data, Padding::Method2);
        let _ = cmac_aes(&key, &data);
        let _ = cmac_tdes(&key, &data);
        let _ = verify_truncated(&data, &received);
        let _ = ecb_decrypt(alg, &key, &data);
        let _ = cbc_decrypt(alg, &key, &received, &data);
        if data.len() % 16 != 0 {
            let typed = matches!(sm4_decrypt_ecb(&[0; 16], &data), Err(Error::DataLength { .. }));
            prop_assert!(typed, "SM4 ECB accepted a partial block");
        }
    }

    #[test]
    fn emv_inputs_never_panic(pan in "\\PC{0,24}", psn in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let _ = derive_icc_master_key_option_b(&[1; 16], &pan, psn);
        let _ = generate_arqc(&[2; 16], CardAlgorithm::Sm4, &data);
        let _ = generate_arqc(&[2; 16], CardAlgorithm::Tdes, &data);
    }

    #[test]
    fn sm2_and_hex_inputs_never_panic(text in "\\PC{0,140}", sig in proptest::collection::vec(any::<u8>(), 64)) {
        let _ = decode_hex(&text);
        let _ = sm2_public_key_from_hex(&text);
        let sig: [u8; 64] = sig.try_into().unwrap();
        let mut public = [0u8; 65];
        public[0] = 4;
        let _ = sm2_verify(&public, "1234567812345678", text.as_bytes(), &sig);
    }
}
