//! The 3rd-generation authentication model on the virtual card (docs/ssc-auth-model.md; a model,
//! not verified against the MOHRSS spec): INTERNAL AUTHENTICATE, GET CHALLENGE + EXTERNAL
//! AUTHENTICATE with RKSSSE (key 0A) before EF06, single-use challenges, 63CX and 6983.
//!
//! The expected cryptograms are computed here from the image's test keys with `hsm::sm`
//! (`sm4_diversify`, `sm4_encrypt_ecb`), not through the card's code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vcard_common;

use card_core::StatusWord;
use vcard_common::*;

/// The Tianjin image's keys and 卡识别码, read from the TOML text here (not from the card).
fn tianjin_keys() -> ([u8; 16], [u8; 16], [u8; 8]) {
    let v: toml::Value = toml::from_str(TIANJIN).unwrap();
    let key = |name: &str| -> [u8; 16] { h(v["keys"][name].as_str().unwrap()).try_into().unwrap() };
    let card_id = h(v["ssse"]["card_id"].as_str().unwrap());
    let factor: [u8; 8] = card_id[8..].try_into().unwrap();
    (
        key("ssse_internal_auth_master"),
        key("ssse_external_auth_master"),
        factor,
    )
}

fn external_auth_apdu(challenge: &[u8]) -> String {
    let (_, ext_master, factor) = tianjin_keys();
    let k_ext = hsm::sm::sm4_diversify(&ext_master, &factor);
    let mut block = challenge.to_vec();
    block.resize(16, 0);
    let cryptogram = hsm::sm::sm4_encrypt_ecb(&k_ext, &block).unwrap();
    format!("0082000A10{}", hex::encode_upper(cryptogram))
}

#[test]
fn external_authentication_opens_ef06_until_ssse_is_selected_again() {
    let mut s = session(TIANJIN);
    ok(&mut s, SELECT_SSSE);
    assert_eq!(
        x(&mut s, "00B2013414").sw(),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    let challenge = ok(&mut s, "0084000008");
    assert_eq!(challenge.len(), 8);
    ok(&mut s, &external_auth_apdu(&challenge));
    // Python: "120101198805121236".encode("ascii").hex() behind tag 08, length 12.
    assert_eq!(
        ok(&mut s, "00B2013414"),
        h("0812313230313031313938383035313231323336")
    );
    ok(&mut s, "00A4020002EF06");
    // Python: "赵文博".encode("gbk").hex() == "d5d4cec4b2a9", padded with 00 to 30 bytes.
    assert_eq!(
        ok(&mut s, "00B2090020"),
        h("091ED5D4CEC4B2A9000000000000000000000000000000000000000000000000")
    );
    assert_eq!(ok(&mut s, "00B20C0005"), h("0C03120101"));
    assert_eq!(ok(&mut s, "00B20D0006"), h("0D0419880512"));
    // Re-selecting SSSE drops the authentication.
    ok(&mut s, SELECT_SSSE);
    assert_eq!(
        x(&mut s, "00B2013414").sw(),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    // So does a reset.
    let challenge = ok(&mut s, "0084000008");
    ok(&mut s, &external_auth_apdu(&challenge));
    s.transport_mut().reset();
    ok(&mut s, SELECT_SSSE);
    assert_eq!(
        x(&mut s, "00B2013414").sw(),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
}

#[test]
fn challenges_are_single_use_and_wrong_cryptograms_count_down_to_blocked() {
    let mut s = session(TIANJIN);
    ok(&mut s, SELECT_SSSE);
    let zeros = "0082000A10 00000000000000000000000000000000";
    // No challenge yet: conditions of use not satisfied.
    assert_eq!(x(&mut s, zeros).sw().to_u16(), 0x6985);
    let challenge = ok(&mut s, "0084000008");
    let good = external_auth_apdu(&challenge);
    assert_eq!(x(&mut s, zeros).sw().to_u16(), 0x63C4);
    // The challenge was used up by the failed attempt: the right answer now comes too late.
    assert_eq!(x(&mut s, &good).sw().to_u16(), 0x6985);
    // A wrong key id.
    ok(&mut s, "0084000008");
    assert_eq!(
        x(&mut s, "0082000610 00000000000000000000000000000000")
            .sw()
            .to_u16(),
        0x6A88
    );
    assert_eq!(
        x(&mut s, "0082000A08 0000000000000000").sw().to_u16(),
        0x6700
    );
    for left in (0..4).rev() {
        ok(&mut s, "0084000008");
        assert_eq!(x(&mut s, zeros).sw().tries_left(), Some(left));
    }
    let challenge = ok(&mut s, "0084000008");
    assert_eq!(
        x(&mut s, &external_auth_apdu(&challenge)).sw().to_u16(),
        0x6983
    );
}

#[test]
fn internal_authenticate_answers_sm4_of_the_input_under_the_diversified_key() {
    let (int_master, _, factor) = tianjin_keys();
    let input = h("0102030405060708 A1A2A3A4A5A6A7A8");
    let expected =
        hsm::sm::sm4_encrypt_ecb(&hsm::sm::sm4_diversify(&int_master, &factor), &input).unwrap();
    let mut s = session(TIANJIN);
    ok(&mut s, SELECT_SSSE);
    let answer = ok(&mut s, "0088000010 0102030405060708A1A2A3A4A5A6A7A8");
    assert_eq!(answer, expected);
    assert_eq!(
        x(&mut s, "0088000008 0102030405060708").sw().to_u16(),
        0x6700
    );
    // Strict T=0 card: 61 10 then GET RESPONSE (followed by the Session).
    let mut t0 = card(HEBEI);
    t0.process(&h(SELECT_SSSE));
    t0.process(&h("00C000001B"));
    assert_eq!(
        t0.process(&h("0088000010 0102030405060708A1A2A3A4A5A6A7A8")),
        h("6110")
    );
    assert_eq!(t0.process(&h("00C0000010")).len(), 18);
}
