//! Hostile or broken input gives typed errors, never a panic: truncated APDUs, a TLV length past
//! the end, 40-deep nesting, unknown status words, wrong PINs (ssc-card.md §4 status words).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use card_core::apdu::ApduError;
use card_core::auth::{self, AuthError, Pin};
use card_core::pboc::{self, PbocError};
use card_core::ssc::{self, SscError};
use card_core::tlv::{self, TlvError};
use card_core::{CardError, CommandApdu, ResponseApdu, StatusWord};
use scripted::{h, session};

#[test]
fn truncated_apdus() {
    assert_eq!(
        CommandApdu::parse(&h("00B2")),
        Err(ApduError::HeaderTruncated { len_bytes: 2 })
    );
    assert_eq!(
        CommandApdu::parse(&h("00A4040010 7378312E")),
        Err(ApduError::LcMismatch {
            lc: 16,
            body_len_bytes: 4
        })
    );
    assert_eq!(
        CommandApdu::parse(&h("00DA0000 000101 AABB")),
        Err(ApduError::LcMismatch {
            lc: 257,
            body_len_bytes: 2
        })
    );
    assert_eq!(
        ResponseApdu::parse(&[]),
        Err(ApduError::ResponseTruncated { len_bytes: 0 })
    );
}

#[test]
fn tlv_length_past_the_end() {
    assert_eq!(
        tlv::parse_all(&h("70 81 FF 5A 01 01")),
        Err(TlvError::ValuePastEnd {
            offset: 3,
            len_bytes: 255,
            available_bytes: 3
        })
    );
    // A 4-byte length near u32::MAX must not overflow or allocate.
    assert_eq!(
        tlv::parse_all(&h("5A 84 FFFFFFFF 00")),
        Err(TlvError::ValuePastEnd {
            offset: 6,
            len_bytes: 0xFFFF_FFFF,
            available_bytes: 1
        })
    );
}

#[test]
fn forty_deep_nesting_is_refused() {
    let mut bytes = h("5A 01 01");
    for _ in 0..40 {
        let mut outer = h("70");
        let mut len = Vec::new();
        tlv::write_length(bytes.len(), &mut len);
        outer.extend(len);
        outer.extend(bytes);
        bytes = outer;
    }
    let err = tlv::parse_all(&bytes).unwrap_err();
    assert!(matches!(err, TlvError::DepthExceeded { .. }), "{err:?}");
    // The same nesting inside a GPO answer surfaces as a PBOC error.
    assert!(matches!(
        pboc::parse_gpo_response(&bytes),
        Err(PbocError::Tlv {
            source: TlvError::DepthExceeded { .. },
            ..
        })
    ));
}

#[test]
fn unknown_status_words_are_typed_errors() {
    let mut s = session(&[("00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "6F42")]);
    assert_eq!(
        ssc::read_identity(&mut s),
        Err(SscError::Card(CardError::Status {
            ins: 0xA4,
            sw: StatusWord::from_u16(0x6F42)
        }))
    );
    let mut s = session(&[("0084000008", "9999")]);
    assert_eq!(
        auth::get_challenge(&mut s),
        Err(AuthError::Card(CardError::Status {
            ins: 0x84,
            sw: StatusWord::from_u16(0x9999)
        }))
    );
}

#[test]
fn pin_verify_outcomes() {
    // ssc-card.md §4: VERIFY 0020000003123456; 63CX = X tries left; 6983 = blocked.
    let pin = Pin::new("123456").unwrap();
    let mut s = session(&[
        ("0020000003123456", "9000"),
        ("0020000003123456", "63C2"),
        ("0020000003123456", "6983"),
        ("0020000003123456", "6A88"),
    ]);
    assert_eq!(auth::verify_pin(&mut s, &pin), Ok(()));
    assert_eq!(
        auth::verify_pin(&mut s, &pin),
        Err(AuthError::PinWrong { tries_left: 2 })
    );
    assert_eq!(auth::verify_pin(&mut s, &pin), Err(AuthError::PinBlocked));
    let err = auth::verify_pin(&mut s, &pin).unwrap_err();
    assert!(!format!("{err:?}{err}").contains("123456"));
}

#[test]
fn third_generation_auth_framing() {
    // docs/ssc-auth-model.md (model): GET CHALLENGE 0084000008; INTERNAL AUTHENTICATE 0088000010 with
    // 过程因子||random, 16-byte answer; EXTERNAL AUTHENTICATE 0082000A10; 6985 = no challenge.
    let mut s = session(&[
        ("0084000008", "1122334455667788 9000"),
        (
            "0088000010 0102030405060708 A1A2A3A4A5A6A7A8 10",
            "000102030405060708090A0B0C0D0E0F 9000",
        ),
        ("0082000A10 FFEEDDCCBBAA99887766554433221100", "6985"),
        ("0082000A10 FFEEDDCCBBAA99887766554433221100", "6983"),
        ("0084000008", "11223344 9000"),
    ]);
    assert_eq!(
        auth::get_challenge(&mut s).unwrap(),
        [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
    );
    let answer = auth::internal_authenticate(
        &mut s,
        &[1, 2, 3, 4, 5, 6, 7, 8],
        &[0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8],
    )
    .unwrap();
    assert_eq!(answer.to_vec(), h("000102030405060708090A0B0C0D0E0F"));
    let cryptogram: [u8; 16] = h("FFEEDDCCBBAA99887766554433221100").try_into().unwrap();
    assert_eq!(
        auth::external_authenticate(&mut s, auth::RKSSSE_KEY_ID, &cryptogram),
        Err(AuthError::NoChallenge)
    );
    assert_eq!(
        auth::external_authenticate(&mut s, auth::RKSSSE_KEY_ID, &cryptogram),
        Err(AuthError::KeyBlocked)
    );
    assert_eq!(
        auth::get_challenge(&mut s),
        Err(AuthError::ResponseLength {
            ins: 0x84,
            expected_len: 8,
            actual_len: 4
        })
    );
    s.transport_mut().assert_finished();
}

#[test]
fn malformed_records_from_a_card_are_typed() {
    // EF05 tag 05 with a BCD month of 13.
    let mut s = session(&[
        ("00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "9000"),
        ("00A4020002EF05", "9000"),
        ("00B2010012", "0110441800D1560000053030737878EC1A84 9000"),
        ("00B2020003", "020133 9000"),
        ("00B2030006", "0304332E3030 9000"),
        ("00B204000E", "040C91560000025202005202006A 9000"),
        ("00B2050006", "050420191320 9000"),
        ("00B2060006", "0604FFFFFFFF 9000"),
        ("00B207000B", "0709523437373038383632 9000"),
    ]);
    assert_eq!(
        ssc::read_identity(&mut s),
        Err(SscError::Date { tag: 0x05 })
    );
}
