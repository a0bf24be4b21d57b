//! EMV / PBOC cryptograms against published vectors (fixtures/vectors/emv.toml: pyemv's
//! HSM-checked tests) and, for the SM4 and AES variants that have no public vector, against an
//! independent OpenSSL computation (fixtures/vectors/independent.toml, made by independent.py).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{a, h, list, load, s, table, tdes_kcv};
use hsm::emv::*;
use hsm::error::Error;

fn psn(t: &toml::Table) -> u8 {
    a::<1>(t, "psn")[0]
}

#[test]
fn full_keys_match_pyemv_docstrings() {
    let v = load("emv.toml");
    for case in list(&v, "full_key") {
        let imk = a::<16>(case, "imk");
        let mk = match s(case, "kind") {
            "option_a" => derive_icc_master_key_option_a(&imk, s(case, "pan"), psn(case)),
            _ => derive_icc_master_key_option_b(&imk, s(case, "pan"), psn(case)),
        }
        .unwrap();
        assert_eq!(mk.to_vec(), h(case, "key"), "{}", s(case, "source"));
    }
    for case in list(&v, "csk") {
        let sk = derive_common_session_key(&a(case, "mk"), a(case, "r")).unwrap();
        assert_eq!(sk.to_vec(), h(case, "key"), "{}", s(case, "source"));
    }
}

#[test]
fn csk_contract_function_matches_pyemv_r_with_atc_and_un() {
    // pyemv kd.py docstring: R = 001C000000000000 = ATC 001C || 00 00 || UN 00000000.
    let sk = derive_session_key_emv_csk(
        &hex::decode("0123456789ABCDEFFEDCBA9876543210")
            .unwrap()
            .try_into()
            .unwrap(),
        [0x00, 0x1C],
        [0; 4],
    )
    .unwrap();
    assert_eq!(hex::encode_upper(*sk), "E9FB384AF807B940FEDCEA613461B0C4");
}

#[test]
fn hsm_checked_flows_match_pyemv() {
    let v = load("emv.toml");
    let flows = list(&v, "flow");
    assert_eq!(flows.len(), 8);
    for f in flows {
        let src = s(f, "source");
        let imk = a::<16>(f, "imk");
        let mk = if s(f, "option") == "a" {
            derive_icc_master_key_option_a(&imk, s(f, "pan"), psn(f)).unwrap()
        } else {
            derive_icc_master_key_option_b(&imk, s(f, "pan"), psn(f)).unwrap()
        };
        if f.contains_key("icc_mk_kcv") {
            assert_eq!(tdes_kcv(&*mk)[..2], h(f, "icc_mk_kcv")[..], "{src}");
        }
        let sk = derive_common_session_key(&mk, a(f, "r")).unwrap();
        assert_eq!(tdes_kcv(&*sk)[..2], h(f, "sk_kcv")[..], "{src}");
        let arqc = generate_arqc(&sk, CardAlgorithm::Tdes, &h(f, "data")).unwrap();
        assert_eq!(arqc, a::<8>(f, "arqc"), "{src}");
        verify_arqc(&sk, CardAlgorithm::Tdes, &h(f, "data"), &arqc).unwrap();
        if f.contains_key("arpc1_icc_mk") {
            let arc = a::<2>(f, "arc");
            let arpc = generate_arpc_method1(&mk, CardAlgorithm::Tdes, &arqc, arc).unwrap();
            assert_eq!(arpc, a::<8>(f, "arpc1_icc_mk"), "{src}");
        }
        if f.contains_key("arpc1_sk") {
            let arc = a::<2>(f, "arc");
            let arpc = generate_arpc_method1(&sk, CardAlgorithm::Tdes, &arqc, arc).unwrap();
            assert_eq!(arpc, a::<8>(f, "arpc1_sk"), "{src}");
        }
        if f.contains_key("arpc2") {
            let csu = a::<4>(f, "csu");
            let arpc =
                generate_arpc_method2(&sk, CardAlgorithm::Tdes, &arqc, csu, &h(f, "prop")).unwrap();
            assert_eq!(arpc, a::<4>(f, "arpc2"), "{src}");
        }
        if f.contains_key("arpc2_no_prop") {
            let csu = a::<4>(f, "csu");
            let arpc = generate_arpc_method2(&sk, CardAlgorithm::Tdes, &arqc, csu, &[]).unwrap();
            assert_eq!(arpc, a::<4>(f, "arpc2_no_prop"), "{src}");
        }
    }
}

#[test]
fn tampered_arqc_fails_verification() {
    let sk = [0x11u8; 16];
    let data = [0xA5u8; 33];
    for alg in [CardAlgorithm::Tdes, CardAlgorithm::Sm4] {
        let mut arqc = generate_arqc(&sk, alg, &data).unwrap();
        arqc[7] ^= 1;
        assert_eq!(
            verify_arqc(&sk, alg, &data, &arqc),
            Err(Error::VerificationFailed)
        );
        let mut other = data;
        other[0] ^= 1;
        arqc[7] ^= 1;
        assert_eq!(
            verify_arqc(&sk, alg, &other, &arqc),
            Err(Error::VerificationFailed)
        );
    }
}

#[test]
fn pboc_3des_session_key_composes_by_hand() {
    // No public PBOC vector: compose 3DES_MK(00*6||ATC) || 3DES_MK(00*6||~ATC) by hand with the
    // single-block primitive, then set parity (pyemv-checked primitive, different code path).
    let mk = [0x23u8; 16];
    let sk = derive_session_key_pboc(&mk, [0x01, 0x2A], CardAlgorithm::Tdes).unwrap();
    let left = hsm::primitives::tdes_encrypt_block(&mk, &[0, 0, 0, 0, 0, 0, 0x01, 0x2A]).unwrap();
    let right = hsm::primitives::tdes_encrypt_block(&mk, &[0, 0, 0, 0, 0, 0, 0xFE, 0xD5]).unwrap();
    let mut expected = [left, right].concat();
    hsm::primitives::set_odd_parity(&mut expected);
    assert_eq!(sk.to_vec(), expected);
}

#[test]
fn pboc_sm4_flow_matches_independent_openssl_computation() {
    let v = load("independent.toml");
    let t = table(&v, "pboc_sm4");
    let imk = a::<16>(t, "imk");
    let mk = derive_icc_master_key_sm4(&imk, s(t, "pan"), psn(t)).unwrap();
    assert_eq!(mk.to_vec(), h(t, "icc_mk"));
    let sk = derive_session_key_pboc(&mk, a(t, "atc"), CardAlgorithm::Sm4).unwrap();
    assert_eq!(sk.to_vec(), h(t, "session_key"));
    let arqc = generate_arqc(&sk, CardAlgorithm::Sm4, &h(t, "cdol1_data")).unwrap();
    assert_eq!(arqc, a::<8>(t, "arqc"));
    let arpc1 = generate_arpc_method1(&sk, CardAlgorithm::Sm4, &arqc, a(t, "arc")).unwrap();
    assert_eq!(arpc1, a::<8>(t, "arpc_method1"));
    let arpc2 = generate_arpc_method2(&sk, CardAlgorithm::Sm4, &arqc, a(t, "csu"), &[]).unwrap();
    assert_eq!(arpc2, a::<4>(t, "arpc_method2"));
}

#[test]
fn aes_csk_matches_independent_openssl_computation() {
    let v = load("independent.toml");
    let t = table(&v, "aes_csk");
    let sk = derive_session_key_emv_csk_aes(&h(t, "mk"), a(t, "atc"), a(t, "un")).unwrap();
    assert_eq!(sk.to_vec(), h(t, "session_key"));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let imk = [0u8; 16];
    for pan in ["", "12345678901", "12345678901234567890", "1234567890123x"] {
        assert!(matches!(
            derive_icc_master_key_option_a(&imk, pan, 0),
            Err(Error::InvalidPan { .. })
        ));
    }
    assert!(matches!(
        derive_icc_master_key_sm4(&imk, "1234567890123456", 0x4A),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        generate_arqc(&imk, CardAlgorithm::Tdes, &[]),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        generate_arpc_method2(&imk, CardAlgorithm::Tdes, &[0; 8], [0; 4], &[0; 9]),
        Err(Error::DataLength { .. })
    ));
    assert!(matches!(
        derive_session_key_emv_csk_aes(&[0; 15], [0; 2], [0; 4]),
        Err(Error::InvalidKeyLength { actual: 15, .. })
    ));
}

#[test]
fn option_a_uses_rightmost_16_digits_for_long_pans() {
    // EMV 4.x Book 2 A1.4.1: Y = rightmost 16 digits of PAN||PSN; a 19-digit PAN drops 5 digits.
    let imk = [0x42u8; 16];
    let a1 = derive_icc_master_key_option_a(&imk, "9999912345678901234", 0x01).unwrap();
    let a2 = derive_icc_master_key_option_a(&imk, "1111112345678901234", 0x01).unwrap();
    assert_eq!(*a1, *a2);
    let b1 = derive_icc_master_key_option_b(&imk, "9999912345678901234", 0x01).unwrap();
    assert_ne!(*a1, *b1);
}
