//! The virtual card's SSSE side through `transport::Session`: SELECT, READ RECORD by tag and by
//! SFI, PIN tries, status words for wrong input, and strict T=0 behaviour.
//!
//! Expected record bytes were computed independently with Python 3 (`/tmp/exp.py` in the
//! author's session): `rec(tag, v) = "%02X%02X" % (tag, len(v)//2) + v`, with
//! `s.encode("gbk")` padded with 00 for names, digits padded with F for cn items, and
//! `s.encode("ascii")` for an items (formats: ssc-card.md §3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vcard_common;

use card_core::StatusWord;
use vcard_common::*;

#[test]
fn select_ssse_answers_its_fci_with_the_algorithm_id_on_3_00_cards() {
    let mut s = session(TIANJIN);
    // Python: "6F19840F" + "sx1.sh.社会保障".encode("gbk").hex() + "A5069F0C03860103".
    assert_eq!(
        ok(&mut s, SELECT_SSSE),
        h("6F19840F7378312E73682EC9E7BBE1B1A3D5CF A5069F0C03860103")
    );
    let mut s = session(BEIJING);
    assert_eq!(
        ok(&mut s, SELECT_SSSE),
        h("6F11840F7378312E73682EC9E7BBE1B1A3D5CF")
    );
}

#[test]
fn ef05_reads_by_tag_and_by_sfi_give_the_same_records() {
    let mut s = session(TIANJIN);
    ok(&mut s, SELECT_SSSE);
    // By record number + SFI 5 (P2 = 2C), no EF select needed (ssc-card.md §4).
    assert_eq!(
        ok(&mut s, "00B2012C12"),
        h("0110120000D1560000050A1B2C3D4E5F6071")
    );
    assert_eq!(ok(&mut s, "00B2032C06"), h("0304332E3030"));
    assert_eq!(ok(&mut s, "00B2052C06"), h("050420240315"));
    assert_eq!(ok(&mut s, "00B2072C0B"), h("0709543030303132333435"));
    // By tag after SELECT EF05 (P1 = 02, and P1 = 00 as seen in the field).
    ok(&mut s, "00A4020002EF05");
    assert_eq!(ok(&mut s, "00B2070000"), h("0709543030303132333435"));
    ok(&mut s, "00A4000002EF05");
    assert_eq!(
        ok(&mut s, "00B2010012"),
        h("0110120000D1560000050A1B2C3D4E5F6071")
    );
}

#[test]
fn ef06_on_a_2_00_card_reads_without_authentication_and_joins_the_name_extension() {
    let mut s = session(BEIJING);
    ok(&mut s, SELECT_SSSE);
    ok(&mut s, "00A4020002EF06");
    // Python: "阿卜杜热合曼·买买提艾力·艾合".encode("gbk") is exactly 30 bytes.
    let name = ok(&mut s, "00B2090020");
    assert_eq!(
        name,
        h("091EB0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6A1A4B0ACBACF")
    );
    let ext = ok(&mut s, "00B24E0016");
    assert_eq!(ext, h("4E14C2F2CCE1BDAD0000000000000000000000000000"));
    let full: Vec<u8> = name[2..]
        .iter()
        .chain(&ext[2..])
        .copied()
        .filter(|&b| b != 0)
        .collect();
    let (text, _, bad) = encoding_rs::GBK.decode(&full);
    assert!(!bad);
    assert_eq!(text, "阿卜杜热合曼·买买提艾力·艾合买提江");
    // 2.00 record numbers: 3 is 姓名扩展, 4 性别 (ssc-card.md §3; SSCReaderFuncs reads sex at 04).
    assert_eq!(ok(&mut s, "00B2033416")[0], 0x4E);
    assert_eq!(ok(&mut s, "00B2043403"), h("0A0131"));
    assert_eq!(ok(&mut s, "00B2053403"), h("0B0105"));
}

#[test]
fn a_3_00_card_refuses_ef06_until_external_authentication() {
    let mut s = session(TIANJIN);
    ok(&mut s, SELECT_SSSE);
    // EF05 is open; EF06 needs RKSSSE (model: docs/ssc-auth-model.md).
    ok(&mut s, "00B2012C12");
    assert_eq!(
        x(&mut s, "00B2013414").sw(),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    ok(&mut s, "00A4020002EF06");
    assert_eq!(
        x(&mut s, "00B2080014").sw(),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
}

#[test]
fn bad_input_gets_the_right_status_word() {
    let mut s = session(BEIJING);
    let sw = |s: &mut card_core::Session<_>, a: &str| x(s, a).sw().to_u16();
    // Before SSSE is selected, its files are not found.
    assert_eq!(sw(&mut s, "00B2012C12"), 0x6A82);
    assert_eq!(sw(&mut s, "00A4040005D156000099"), 0x6A82);
    ok(&mut s, SELECT_SSSE);
    assert_eq!(sw(&mut s, "00A4020002EF09"), 0x6A82);
    assert_eq!(sw(&mut s, "00A4020003EF0500"), 0x6700);
    assert_eq!(sw(&mut s, "00A4090002EF05"), 0x6A86);
    // READ RECORD by tag with no current EF.
    assert_eq!(sw(&mut s, "00B2080014"), 0x6986);
    assert_eq!(sw(&mut s, "00B2082C14"), 0x6A83);
    assert_eq!(sw(&mut s, "00B2013C14"), 0x6A82);
    assert_eq!(sw(&mut s, "00B2012D14"), 0x6A86);
    ok(&mut s, "00A4020002EF05");
    assert_eq!(sw(&mut s, "00B2500000"), 0x6A83);
    assert_eq!(sw(&mut s, "00CA9F1700"), 0x6D00);
    assert_eq!(sw(&mut s, "80B2012C12"), 0x6E00);
    assert_eq!(sw(&mut s, "FFB2012C12"), 0x6E00);
    assert_eq!(sw(&mut s, "00C0000010"), 0x6985);
    // An external authentication on a card with no SSSE keys: key not found.
    assert_eq!(
        sw(&mut s, "0082000A10 00000000000000000000000000000000"),
        0x6A88
    );
}

#[test]
fn pin_tries_count_down_to_blocked_and_survive_reset() {
    let mut s = session(BEIJING);
    ok(&mut s, SELECT_SSSE);
    // Tries query (case 1 VERIFY) at issue: 63C3.
    assert_eq!(x(&mut s, "00200000").sw().to_u16(), 0x63C3);
    assert_eq!(x(&mut s, "0020000003123456").sw().to_u16(), 0x63C2);
    // The right PIN (888888, BCD) resets the counter.
    ok(&mut s, "0020000003888888");
    assert_eq!(s.transport_mut().pin_tries_left(), 3);
    assert_eq!(x(&mut s, "0020000003123456").sw().to_u16(), 0x63C2);
    s.transport_mut().reset();
    assert_eq!(s.transport_mut().pin_tries_left(), 2);
    ok(&mut s, SELECT_SSSE);
    assert_eq!(x(&mut s, "0020000003111111").sw().to_u16(), 0x63C1);
    assert_eq!(x(&mut s, "0020000003222222").sw().to_u16(), 0x63C0);
    assert_eq!(x(&mut s, "0020000003888888").sw().to_u16(), 0x6983);
    assert_eq!(x(&mut s, "00200000").sw().to_u16(), 0x6983);
    // A malformed PIN (digit A) is a length/format error and costs no try.
    let mut s = session(BEIJING);
    assert_eq!(x(&mut s, "002000000312345A").sw().to_u16(), 0x6700);
    assert_eq!(s.transport_mut().pin_tries_left(), 3);
}

#[test]
fn change_pin_then_verify_with_the_new_pin() {
    let mut s = session(BEIJING);
    ok(&mut s, SELECT_SSSE);
    ok(&mut s, "805E010007888888FF654321");
    assert_eq!(x(&mut s, "0020000003888888").sw().to_u16(), 0x63C2);
    ok(&mut s, "0020000003654321");
}

#[test]
fn strict_t0_card_asks_for_get_response_and_the_exact_le() {
    // Raw card, no Session: see the transport-level answers themselves.
    let mut card = card(HEBEI);
    // SELECT (case 3) with its 27-byte FCI (6F 19 ...): 61 1B, and GET RESPONSE serves it.
    assert_eq!(card.process(&h(SELECT_SSSE)), h("611B"));
    assert_eq!(
        card.process(&h("00C000001B")),
        h("6F19840F7378312E73682EC9E7BBE1B1A3D5CFA5069F0C03860103 9000")
    );
    // A short GET RESPONSE leaves the rest behind 61XX.
    card.process(&h(SELECT_SSSE));
    let first = card.process(&h("00C0000010"));
    assert_eq!((first.len(), &first[16..]), (16 + 2, &h("610B")[..]));
    assert_eq!(
        card.process(&h("00C000000B")),
        h("A3D5CFA5069F0C03860103 9000")
    );
    // READ RECORD with Le 00 or a wrong Le: 6CXX with the record's length.
    assert_eq!(card.process(&h("00B2012C00")), h("6C12"));
    assert_eq!(card.process(&h("00B2012C10")), h("6C12"));
    assert_eq!(
        card.process(&h("00B2012C12")),
        h("0110130100D156000005A0B1C2D3E4F50617 9000")
    );
    // The same through a Session, which follows 61XX and 6CXX on its own.
    let mut s = session(HEBEI);
    ok(&mut s, SELECT_SSSE);
    assert_eq!(
        ok(&mut s, "00B2012C00"),
        h("0110130100D156000005A0B1C2D3E4F50617")
    );
}

#[test]
fn lenient_card_answers_directly_and_asks_for_6cxx_only_when_le_is_too_small() {
    let mut card = card(TIANJIN);
    assert!(card.process(&h(SELECT_SSSE)).ends_with(&h("9000")));
    assert_eq!(
        card.process(&h("00B2072C00")),
        h("0709543030303132333435 9000")
    );
    assert_eq!(card.process(&h("00B2072C05")), h("6C0B"));
}
