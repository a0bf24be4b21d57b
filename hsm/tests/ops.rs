//! The operations facade end to end: keys enter as TR-31 blocks the test builds itself from
//! clear keys it knows, so each result is checked against an independent computation with the
//! `hsm::emv` / `hsm::sm` / `hsm::mac` functions on the clear key. Errors are typed, and neither
//! error messages nor the audit log ever contain the test keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm::emv::{self, CardAlgorithm};
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse, SecretKey};
use hsm::lmk::Lmk;
use hsm::ops::api::execute;
use hsm::ops::{
    ArpcRequest, ArqcRequest, Hsm, HsmError, MajorKeyDerivation, PinVerification,
    SessionKeyDerivation,
};
use hsm::pin::PinBlockFormat;
use hsm::tr31::{self, Tr31Header, Tr31Version};
use serde_json::json;
use zeroize::Zeroizing;

const LMK: &str = "F40E7C3A8D9B2C1E5F6A7B8C9D0E1F20314253647586970A1B2C3D4E5F607182";
const KBPK: &str = "8A3C5E7F9B1D2F4A6C8E0B2D4F6A8C0E1F3B5D7A9C2E4B6D8F0A1C3E5B7D9F2A";
const IMK_TDES: &str = "0123456789ABCDEFFEDCBA9876543210";
const IMK_SM4: &str = "11223344556677888877665544332211";
const MAC_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const SSC_EXT: &str = "A1A2A3A4A5A6A7A8B1B2B3B4B5B6B7B8";
const SSC_INT: &str = "C1C2C3C4C5C6C7C8D1D2D3D4D5D6D7D8";
const PEK_A: &str = "0123456789ABCDEF0123456789ABCDEF";
const PEK_B: &str = "FEDCBA9876543210FEDCBA9876543210";
const PVK: &str = "1111111111111111222222222222222F";
const PAN: &str = "6214830112345678";
const ALL_SECRETS: [&str; 10] = [
    LMK, KBPK, IMK_TDES, IMK_SM4, MAC_KEY, SSC_EXT, SSC_INT, PEK_A, PEK_B, PVK,
];

struct Fixture {
    _dir: tempfile::TempDir,
    hsm: Hsm,
}

fn block_for(usage: &[u8; 2], algorithm: u8, mode: u8, key_hex: &str) -> String {
    let kbpk = SecretKey::new(Zeroizing::new(hex::decode(KBPK).unwrap()));
    let header = Tr31Header {
        version: Tr31Version::D,
        usage: *usage,
        algorithm,
        mode,
        key_version: *b"00",
        exportability: b'E',
        blocks: vec![],
    };
    let key = hex::decode(key_hex).unwrap();
    // Key data padded to 48 bytes (3 AES blocks) for every 16-byte key.
    let pad = vec![0xA5u8; 48 - 2 - key.len()];
    tr31::wrap_with_padding(KeyAlgorithm::Aes256, &kbpk, &header, &key, &pad).unwrap()
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut hsm = Hsm::open(dir.path(), Lmk::from_hex(LMK).unwrap()).unwrap();
    let kbpk_header = KeyHeader {
        alias: "kbpk".into(),
        algorithm: KeyAlgorithm::Aes256,
        usage: KeyUsage::K1,
        mode: ModeOfUse::B,
        version: *b"00",
        exportability: Exportability::NonExportable,
    };
    hsm.import_key_components(
        "ceremony",
        kbpk_header,
        &[&hex::decode(KBPK).unwrap()],
        None,
    )
    .unwrap();
    for (alias, usage, alg, mode, key) in [
        ("imk-tdes", b"E0", b'T', b'X', IMK_TDES),
        ("imk-sm4", b"E0", b'1', b'X', IMK_SM4),
        ("mac-cmac", b"M6", b'A', b'C', MAC_KEY),
        ("ssc-ext", b"11", b'1', b'X', SSC_EXT),
        ("ssc-int", b"10", b'1', b'X', SSC_INT),
        ("pek-a", b"P0", b'T', b'B', PEK_A),
        ("pek-b", b"P0", b'T', b'B', PEK_B),
        ("pvk", b"V2", b'T', b'C', PVK),
    ] {
        hsm.import_key(
            "ceremony",
            "kbpk",
            &block_for(usage, alg, mode, key),
            alias,
            None,
        )
        .unwrap_or_else(|e| panic!("{alias}: {e}"));
    }
    Fixture { _dir: dir, hsm }
}

fn k16(hex_key: &str) -> [u8; 16] {
    hex::decode(hex_key).unwrap().try_into().unwrap()
}

fn audit_text(fx: &Fixture) -> String {
    std::fs::read_to_string(fx._dir.path().join(hsm::audit::AUDIT_FILE)).unwrap()
}

fn assert_no_secret(text: &str) {
    for s in ALL_SECRETS {
        assert!(
            !text.contains(s) && !text.contains(&s.to_lowercase()),
            "secret leaked: {text}"
        );
    }
    assert!(!text.contains(PAN), "clear PAN leaked: {text}");
}

#[test]
fn arqc_round_trip_emv_option_a_csk_with_arpc() {
    let mut fx = setup();
    let (atc, un, psn) = ([0x00, 0x2A], [0x11, 0x22, 0x33, 0x44], 0x01);
    let data = hex::decode("000000001000000000000000015600000000000156260101003A12345678").unwrap();
    // Independent: the card side with the clear IMK.
    let mk = emv::derive_icc_master_key_option_a(&k16(IMK_TDES), PAN, psn).unwrap();
    let sk = emv::derive_session_key_emv_csk(&mk, atc, un).unwrap();
    let arqc = emv::generate_arqc(&sk, CardAlgorithm::Tdes, &data).unwrap();
    let expected_arpc =
        emv::generate_arpc_method1(&sk, CardAlgorithm::Tdes, &arqc, *b"00").unwrap();
    let mut req = ArqcRequest {
        alias: "imk-tdes".into(),
        pan: PAN.into(),
        psn,
        atc,
        transaction_data: data.clone(),
        arqc,
        major_key_derivation: MajorKeyDerivation::EmvOptionA,
        session_key_derivation: SessionKeyDerivation::EmvCommon { un },
        arpc: Some(ArpcRequest::Method1 { arc: *b"00" }),
        arpc_with_card_master_key: false,
    };
    let arpc = fx
        .hsm
        .verify_auth_request_cryptogram("switch", &req)
        .unwrap();
    assert_eq!(arpc, Some(expected_arpc.to_vec()));
    // Method 2 with a CSU.
    let csu = [0x00, 0x82, 0x00, 0x00];
    let expected2 = emv::generate_arpc_method2(&sk, CardAlgorithm::Tdes, &arqc, csu, &[]).unwrap();
    req.arpc = Some(ArpcRequest::Method2 {
        csu,
        proprietary_auth_data: vec![],
    });
    assert_eq!(
        fx.hsm
            .verify_auth_request_cryptogram("switch", &req)
            .unwrap(),
        Some(expected2.to_vec())
    );
    // A changed byte of transaction data fails verification.
    req.transaction_data[3] ^= 1;
    assert!(matches!(
        fx.hsm.verify_auth_request_cryptogram("switch", &req),
        Err(HsmError::VerificationFailed)
    ));
    // The same through the JSON API.
    let reply = execute(
        &mut fx.hsm,
        "switch",
        "VerifyAuthRequestCryptogram",
        &json!({
            "alias": "imk-tdes", "pan": PAN, "psn": "01", "atc": "002A", "un": "11223344",
            "transaction_data": hex::encode(&data), "arqc": hex::encode(arqc),
            "major_key_derivation": "EMV_OPTION_A", "session_key_derivation": "EMV_COMMON",
            "arpc_method": 1, "arc": "3030",
        }),
    )
    .unwrap();
    assert_eq!(reply["arpc"], hex::encode_upper(expected_arpc));
    let audit = audit_text(&fx);
    assert!(audit.contains("621483******5678"));
    assert_no_secret(&audit);
}

#[test]
fn arqc_round_trip_pboc_sm4() {
    let mut fx = setup();
    let (atc, psn) = ([0x01, 0x00], 0x00);
    let data = hex::decode("00000000050000000000000001560000000000015624061800B7C4D2E1").unwrap();
    let mk = emv::derive_icc_master_key_sm4(&k16(IMK_SM4), PAN, psn).unwrap();
    let sk = emv::derive_session_key_pboc(&mk, atc, CardAlgorithm::Sm4).unwrap();
    let arqc = emv::generate_arqc(&sk, CardAlgorithm::Sm4, &data).unwrap();
    let arpc = emv::generate_arpc_method1(&sk, CardAlgorithm::Sm4, &arqc, *b"00").unwrap();
    let req = ArqcRequest {
        alias: "imk-sm4".into(),
        pan: PAN.into(),
        psn,
        atc,
        transaction_data: data,
        arqc,
        major_key_derivation: MajorKeyDerivation::PbocSm4,
        session_key_derivation: SessionKeyDerivation::Pboc,
        arpc: Some(ArpcRequest::Method1 { arc: *b"00" }),
        arpc_with_card_master_key: false,
    };
    assert_eq!(
        fx.hsm
            .verify_auth_request_cryptogram("switch", &req)
            .unwrap(),
        Some(arpc.to_vec())
    );
    // The TDES key with the SM4 derivation is refused by algorithm.
    let wrong = ArqcRequest {
        alias: "imk-tdes".into(),
        ..req
    };
    let err = fx
        .hsm
        .verify_auth_request_cryptogram("switch", &wrong)
        .unwrap_err();
    assert_eq!(err.code(), "KEY_ALGORITHM");
}

#[test]
fn mac_generate_and_verify_match_an_independent_cmac() {
    let mut fx = setup();
    let data = b"0200 settlement batch 42";
    let expected = hsm::mac::cmac_aes(&k16(MAC_KEY), data).unwrap();
    let reply = execute(
        &mut fx.hsm,
        "pos",
        "GenerateMac",
        &json!({"alias": "mac-cmac", "message_data": hex::encode(data)}),
    )
    .unwrap();
    assert_eq!(reply["mac"], hex::encode_upper(expected));
    let ok = execute(&mut fx.hsm, "pos", "VerifyMac", &json!({"alias": "mac-cmac", "message_data": hex::encode(data), "mac": hex::encode(&expected[..8])})).unwrap();
    assert_eq!(ok["verified"], true);
    let err = execute(
        &mut fx.hsm,
        "pos",
        "VerifyMac",
        &json!({"alias": "mac-cmac", "message_data": "00", "mac": hex::encode(expected)}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "VERIFICATION_FAILED");
}

#[test]
fn ssc_authentication_cryptograms_follow_the_model() {
    let mut fx = setup();
    let card_id = hex::decode("330300D15600000599110145FFFFFFFF").unwrap();
    let factor: [u8; 8] = card_id[8..].try_into().unwrap();
    let challenge = [1, 2, 3, 4, 5, 6, 7, 8];
    // Independent: K_EXT = sm4_diversify(master, last 8 bytes of the 卡识别码).
    let k_ext = hsm::sm::sm4_diversify(&k16(SSC_EXT), &factor);
    let mut block = [0u8; 16];
    block[..8].copy_from_slice(&challenge);
    let expected = hsm::sm::sm4_encrypt_ecb(&k_ext, &block).unwrap();
    let got = fx
        .hsm
        .generate_card_auth_cryptogram("agent", "ssc-ext", &card_id, challenge)
        .unwrap();
    assert_eq!(got.to_vec(), expected);
    // Internal authentication: the card's answer under K_INT verifies; a flipped bit does not.
    let auth_data: [u8; 16] = *b"\x10\x20\x30\x40\x50\x60\x70\x80ABCDEFGH";
    let k_int = hsm::sm::sm4_diversify(&k16(SSC_INT), &factor);
    let answer: [u8; 16] = hsm::sm::sm4_encrypt_ecb(&k_int, &auth_data)
        .unwrap()
        .try_into()
        .unwrap();
    fx.hsm
        .verify_card_internal_auth("agent", "ssc-int", &card_id, auth_data, answer)
        .unwrap();
    let mut bad = answer;
    bad[15] ^= 1;
    assert!(matches!(
        fx.hsm
            .verify_card_internal_auth("agent", "ssc-int", &card_id, auth_data, bad),
        Err(HsmError::VerificationFailed)
    ));
    // The external-auth key cannot answer internal authentication.
    let err = fx
        .hsm
        .verify_card_internal_auth("agent", "ssc-ext", &card_id, auth_data, answer)
        .unwrap_err();
    assert!(
        matches!(err, HsmError::KeyUsage { ref expected, ref actual, .. } if expected == "10" && actual == "11"),
        "{err}"
    );
}

#[test]
fn pin_translate_and_pvv_verify() {
    let mut fx = setup();
    let block =
        hsm::pin::encrypt_pin_block(PinBlockFormat::Iso0, &k16(PEK_A), "1234", Some(PAN)).unwrap();
    let out = fx
        .hsm
        .translate_pin_data(
            "atm",
            "pek-a",
            PinBlockFormat::Iso0,
            "pek-b",
            PinBlockFormat::Iso3,
            &block,
            Some(PAN),
        )
        .unwrap();
    // Independent: the translated block deciphers under PEK_B as a valid format 3 block.
    hsm::pin::check_pin_block(PinBlockFormat::Iso3, &k16(PEK_B), &out, Some(PAN)).unwrap();
    let pvv = hsm::pin::verify::generate_visa_pvv(
        &block,
        &k16(PEK_A),
        PinBlockFormat::Iso0,
        PAN,
        &k16(PVK),
        1,
    )
    .unwrap();
    let method = PinVerification::VisaPvv { pvki: 1, pvv };
    fx.hsm
        .verify_pin_data(
            "atm",
            "pek-a",
            PinBlockFormat::Iso0,
            &block,
            PAN,
            "pvk",
            &method,
        )
        .unwrap();
    let wrong =
        hsm::pin::encrypt_pin_block(PinBlockFormat::Iso0, &k16(PEK_A), "4321", Some(PAN)).unwrap();
    assert!(matches!(
        fx.hsm.verify_pin_data(
            "atm",
            "pek-a",
            PinBlockFormat::Iso0,
            &wrong,
            PAN,
            "pvk",
            &method
        ),
        Err(HsmError::VerificationFailed)
    ));
    let audit = audit_text(&fx);
    assert_no_secret(&audit);
    assert!(!audit.contains(&hex::encode_upper(&block)) && !audit.contains(&hex::encode(&block)));
}

#[test]
fn typed_errors_name_the_problem_and_leak_nothing() {
    let mut fx = setup();
    let mut messages = Vec::new();
    // A P0 key for GenerateMac.
    let err = execute(
        &mut fx.hsm,
        "pos",
        "GenerateMac",
        &json!({"alias": "pek-a", "message_data": "00"}),
    )
    .unwrap_err();
    assert!(
        matches!(err, HsmError::KeyUsage { ref alias, ref actual, .. } if alias == "pek-a" && actual == "P0"),
        "{err}"
    );
    assert_eq!(err.code(), "KEY_USAGE");
    assert_eq!(
        err.to_string(),
        "key 'pek-a' has usage P0; this operation needs M1 or M3 or M6 or M7"
    );
    messages.push(err.to_string());
    // Unknown alias.
    let err = execute(&mut fx.hsm, "pos", "GetKey", &json!({"alias": "nope"})).unwrap_err();
    assert!(matches!(err, HsmError::KeyNotFound { .. }));
    assert_eq!((err.code(), err.http_status()), ("KEY_NOT_FOUND", 404));
    messages.push(err.to_string());
    // Odd-length hex.
    let err = execute(
        &mut fx.hsm,
        "pos",
        "GenerateMac",
        &json!({"alias": "mac-cmac", "message_data": "ABC"}),
    )
    .unwrap_err();
    assert!(
        matches!(err, HsmError::InvalidHex { ref field, .. } if field == "message_data"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "field 'message_data' is not valid hex: hex string has an odd length (3 characters)"
    );
    messages.push(err.to_string());
    // A wrong expected KCV on import.
    let block = block_for(b"D0", b'A', b'B', MAC_KEY);
    let err = execute(
        &mut fx.hsm,
        "ops",
        "ImportKey",
        &json!({"kek_alias": "kbpk", "key_block": block, "alias": "d0", "expected_kcv": "000000"}),
    )
    .unwrap_err();
    assert!(matches!(err, HsmError::KcvMismatch { .. }), "{err}");
    messages.push(err.to_string());
    // A tampered block.
    let mut tampered = block.clone().into_bytes();
    tampered[20] = if tampered[20] == b'0' { b'1' } else { b'0' };
    let err = execute(&mut fx.hsm, "ops", "ImportKey", &json!({"kek_alias": "kbpk", "key_block": String::from_utf8(tampered).unwrap(), "alias": "d0"})).unwrap_err();
    assert_eq!(err.code(), "TR31_MAC_MISMATCH");
    messages.push(err.to_string());
    // Disabled keys are refused; unknown operations too.
    execute(
        &mut fx.hsm,
        "ops",
        "DisableKey",
        &json!({"alias": "mac-cmac"}),
    )
    .unwrap();
    let err = execute(
        &mut fx.hsm,
        "pos",
        "GenerateMac",
        &json!({"alias": "mac-cmac", "message_data": "00"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "KEY_DISABLED");
    let err = execute(&mut fx.hsm, "pos", "FormatDisk", &json!({})).unwrap_err();
    assert_eq!((err.code(), err.http_status()), ("UNKNOWN_OPERATION", 404));
    for m in &messages {
        assert_no_secret(m);
    }
    let audit = audit_text(&fx);
    assert_no_secret(&audit);
    // Every request, refused ones included, has its audit line with its outcome.
    assert!(
        audit.contains("\"outcome\":\"KEY_USAGE\"")
            && audit.contains("\"outcome\":\"INVALID_HEX\"")
    );
    assert!(audit.contains("\"operation\":\"FormatDisk\""));
    // GetKey shows metadata and KCV only.
    let meta = execute(&mut fx.hsm, "ops", "GetKey", &json!({"alias": "pek-a"})).unwrap();
    let kcv = hsm::kcv::kcv_tdes(&k16(PEK_A)).unwrap();
    assert_eq!(meta["kcv"], hex::encode_upper(kcv));
    assert_no_secret(&meta.to_string());
}

#[test]
fn signatures_sm2_and_p256_and_export_round_trip() {
    let mut fx = setup();
    for (alias, alg) in [("sm2", "SM2"), ("p256", "ECC_NIST_P256")] {
        execute(
            &mut fx.hsm,
            "ops",
            "CreateKey",
            &json!({"alias": alias, "algorithm": alg, "usage": "S0", "mode_of_use": "S"}),
        )
        .unwrap();
        let sig = execute(
            &mut fx.hsm,
            "app",
            "SignData",
            &json!({"alias": alias, "message": "48656C6C6F"}),
        )
        .unwrap();
        let sig = sig["signature"].as_str().unwrap().to_owned();
        assert_eq!(sig.len(), 128);
        execute(
            &mut fx.hsm,
            "app",
            "VerifySignature",
            &json!({"alias": alias, "message": "48656C6C6F", "signature": sig}),
        )
        .unwrap();
        let err = execute(
            &mut fx.hsm,
            "app",
            "VerifySignature",
            &json!({"alias": alias, "message": "48656C6C6E", "signature": sig}),
        )
        .unwrap_err();
        assert_eq!(err.code(), "VERIFICATION_FAILED");
        let public = execute(&mut fx.hsm, "app", "GetPublicKey", &json!({"alias": alias})).unwrap();
        assert!(public["public_key"].as_str().unwrap().starts_with("04"));
    }
    // SM2 verifies independently with the public key and the default ID (GM/T 0009).
    let public = execute(&mut fx.hsm, "app", "GetPublicKey", &json!({"alias": "sm2"})).unwrap();
    let public: [u8; 65] = hex::decode(public["public_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sig = execute(
        &mut fx.hsm,
        "app",
        "SignData",
        &json!({"alias": "sm2", "message": "00FF"}),
    )
    .unwrap();
    let sig: [u8; 64] = hex::decode(sig["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    hsm::sm::sm2_verify(&public, "1234567812345678", &[0x00, 0xFF], &sig).unwrap();
    // Export under the KBPK (K1, mode B) and re-import: same KCV.
    let exported = execute(
        &mut fx.hsm,
        "ops",
        "ExportKey",
        &json!({"kek_alias": "kbpk", "alias": "imk-tdes"}),
    )
    .unwrap();
    let imported = execute(&mut fx.hsm, "ops", "ImportKey", &json!({"kek_alias": "kbpk", "key_block": exported["key_block"], "alias": "imk-copy", "expected_kcv": exported["kcv"]})).unwrap();
    assert_eq!(imported["kcv"], exported["kcv"]);
    assert_eq!(imported["usage"], "E0");
}

#[test]
fn data_encryption_matches_independent_sm4_and_refuses_partial_blocks() {
    let mut fx = setup();
    let key = "000102030405060708090A0B0C0D0E0F";
    execute(&mut fx.hsm, "ops", "ImportKey", &json!({"kek_alias": "kbpk", "key_block": block_for(b"D0", b'1', b'B', key), "alias": "d0-sm4"})).unwrap();
    let data = "00112233445566778899AABBCCDDEEFF";
    let ct = execute(
        &mut fx.hsm,
        "app",
        "EncryptData",
        &json!({"alias": "d0-sm4", "mode": "ECB", "data": data}),
    )
    .unwrap();
    let expected = hsm::sm::sm4_encrypt_ecb(&k16(key), &hex::decode(data).unwrap()).unwrap();
    assert_eq!(ct["data"], hex::encode_upper(expected));
    let pt = execute(
        &mut fx.hsm,
        "app",
        "DecryptData",
        &json!({"alias": "d0-sm4", "mode": "ECB", "data": ct["data"]}),
    )
    .unwrap();
    assert_eq!(pt["data"], data);
    let err = execute(
        &mut fx.hsm,
        "app",
        "EncryptData",
        &json!({"alias": "d0-sm4", "data": "0011"}),
    )
    .unwrap_err();
    assert_eq!(err.code(), "CRYPTO_INPUT");
}

/// `DecryptAsymmetric` with a `D1` SM2 key pair generated inside the HSM: what
/// `hsm::sm::sm2_encrypt` sealed to its public key (`GetPublicKey`) opens, an altered
/// ciphertext is VERIFICATION_FAILED, a signature key (S0) cannot decrypt (usage), and a `D1`
/// key cannot sign. Each call is audited.
#[test]
fn asymmetric_decryption_with_a_d1_key_pair() {
    let mut fx = setup();
    execute(
        &mut fx.hsm,
        "ops",
        "CreateKey",
        &json!({"alias": "pan-d1", "algorithm": "SM2", "usage": "D1", "mode_of_use": "D"}),
    )
    .unwrap();
    execute(
        &mut fx.hsm,
        "ops",
        "CreateKey",
        &json!({"alias": "sig-s0", "algorithm": "SM2", "usage": "S0", "mode_of_use": "S"}),
    )
    .unwrap();
    let public: [u8; 65] = fx
        .hsm
        .get_public_key("terminal", "pan-d1")
        .unwrap()
        .try_into()
        .unwrap();
    let sealed = hsm::sm::sm2_encrypt(&public, PAN.as_bytes()).unwrap();
    let opened = fx
        .hsm
        .decrypt_asymmetric("switch", "pan-d1", &sealed)
        .unwrap();
    assert_eq!(opened.as_slice(), PAN.as_bytes());
    let mut altered = sealed.clone();
    *altered.last_mut().unwrap() ^= 0x80;
    assert!(matches!(
        fx.hsm.decrypt_asymmetric("switch", "pan-d1", &altered),
        Err(HsmError::VerificationFailed)
    ));
    assert!(matches!(
        fx.hsm.decrypt_asymmetric("switch", "sig-s0", &sealed),
        Err(HsmError::KeyUsage { .. })
    ));
    assert!(matches!(
        fx.hsm
            .sign_data("switch", "pan-d1", b"x", "1234567812345678"),
        Err(HsmError::KeyUsage { .. })
    ));
}
