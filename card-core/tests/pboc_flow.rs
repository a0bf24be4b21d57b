//! The PBOC debit read flow over a scripted card, and GENERATE AC / issuer authentication
//! framing. Responses were assembled with a small Python TLV helper
//! (`t = lambda tag, v: tag + '%02X' % (len(v)//2) + v`), the GBK name with
//! `'张三'.encode('gbk').hex()` → `D5C5C8FD`; the APDU shapes follow card-hsm-anchors.md §3.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use card_core::dol::TerminalData;
use card_core::pboc::{self, AcType, CryptogramType, PbocError, parse_generate_ac_response, tags};
use card_core::tlv::Tag;
use scripted::{h, session};

fn terminal() -> TerminalData {
    let tag = |v| Tag::from_u32(v).unwrap();
    TerminalData::new()
        .with(tag(0x9F02), h("000000010000")) // 100.00 CNY
        .with(tag(0x9F03), h("000000000000"))
        .with(tag(0x9F1A), h("0156"))
        .with(tag(0x95), h("0000000000"))
        .with(tag(0x5F2A), h("0156"))
        .with(tag(0x9A), h("250131"))
        .with(tag(0x9C), h("00"))
        .with(tag(0x9F37), h("11223344"))
        .with(tag(0x8A), h("3030"))
}

/// PPSE absent → PSE with two entries in one record (debit priority 1, quasi-credit priority 2)
/// → final SELECT of the debit AID → GPO (format 2, answered through 61XX) → 3 records.
const READ_FLOW: &[(&str, &str)] = &[
    ("00A404000E325041592E5359532E444446303100", "6A82"),
    (
        "00A404000E315041592E5359532E444446303100",
        "6F1A840E315041592E5359532E4444463031A5088801015F2D027A68 9000",
    ),
    (
        "00B2010C00",
        "7038611B4F08A000000333010103500C554943532051437265646974870102\
         61194F08A000000333010101500A55494353204465626974870101 9000",
    ),
    ("00B2020C00", "6A83"),
    (
        "00A4040008A00000033301010100",
        "6F368408A000000333010101A52A500A554943532044656269748701019F3818\
         9F66049F02069F03069F1A0295055F2A029A039C019F3704 9000",
    ),
    // PDOL data: 9F66 absent → 00000000, then 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 (33 bytes).
    (
        "80A8000023 8321 00000000 000000010000 000000000000 0156 0000000000 0156 250131 00 11223344 00",
        "6110",
    ),
    ("00C0000010", "770E82027C0094080801020010010100 9000"),
    (
        "00B2010C00",
        "703757136228480402564890018D30122201234567890F5F2006D5C5C8FD2020\
         9F61123131303130313139393030333037313233349F620100 9000",
    ),
    (
        "00B2020C00",
        "703C5A0A6228480402564890018F5F3401015F24033012315F2503200101\
         8C159F02069F03069F1A0295055F2A029A039C019F37048D078A029F37049505 9000",
    ),
    ("00B2011400", "700A9F080200305F28020156 9000"),
];

#[test]
fn read_flow_falls_back_to_pse_and_extracts_the_application() {
    let mut s = session(READ_FLOW);
    let app = pboc::read_application(&mut s, &terminal()).unwrap();
    s.transport_mut().assert_finished();

    assert_eq!(app.aid, h("A000000333010101"));
    assert_eq!(app.label.as_deref(), Some("UICS Debit"));
    assert_eq!(app.aip, [0x7C, 0x00]);
    assert_eq!(app.afl.len(), 2);
    assert_eq!(app.pan.expose(), "6228480402564890018");
    assert_eq!(app.psn, Some(1));
    assert_eq!(app.expiry.to_string(), "20301231");
    assert_eq!(app.cardholder_name.as_ref().unwrap().expose(), "张三");
    assert_eq!(
        app.id_number.as_ref().unwrap().expose(),
        "110101199003071234"
    );
    assert_eq!(app.id_type, Some(0));
    let cdol1: Vec<(u32, u8)> = app
        .cdol1
        .entries()
        .iter()
        .map(|e| (e.tag.to_u32(), e.len))
        .collect();
    assert_eq!(
        cdol1,
        [
            (0x9F02, 6),
            (0x9F03, 6),
            (0x9F1A, 2),
            (0x95, 5),
            (0x5F2A, 2),
            (0x9A, 3),
            (0x9C, 1),
            (0x9F37, 4)
        ]
    );
    assert_eq!(app.cdol2.data_len(), 11);
    assert_eq!(
        app.card_data.get(Tag::from_u32(0x9F08).unwrap()),
        Some(&h("0030")[..])
    );

    // Personal data never shows in Debug.
    let shown = format!("{app:?}");
    assert!(shown.contains("622848*********0018"), "{shown}");
    for secret in [
        "6228480402564890018",
        "张三",
        "110101199003071234",
        "D30122",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

#[test]
fn generate_ac_framing_and_both_response_formats() {
    let mut s = session(READ_FLOW);
    let app = pboc::read_application(&mut s, &terminal()).unwrap();
    let data = app.cdol1.fill(&terminal());
    assert_eq!(
        data,
        h("000000010000 000000000000 0156 0000000000 0156 250131 00 11223344")
    );
    assert_eq!(
        pboc::generate_ac_command(AcType::Arqc, &data)
            .unwrap()
            .to_bytes(),
        h("80AE80001D 000000010000 000000000000 0156 0000000000 0156 250131 00 11223344 00")
    );

    // Format 1: 80 12 | CID 80 | ATC 0011 | AC 1122334455667788 | IAD 07010103A00000.
    let f1 = parse_generate_ac_response(&h("8012800011112233445566778807010103A00000")).unwrap();
    // Format 2: the same values in 77 { 9F27, 9F36, 9F26, 9F10 }.
    let f2 = parse_generate_ac_response(&h(
        "771E9F2701809F360200119F260811223344556677889F100707010103A00000",
    ))
    .unwrap();
    assert_eq!(f1, f2);
    assert_eq!(f1.cid, 0x80);
    assert_eq!(f1.cryptogram_type(), CryptogramType::Arqc);
    assert_eq!(f1.atc, [0x00, 0x11]);
    assert_eq!(f1.ac, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    assert_eq!(f1.iad, h("07010103A00000"));

    // Too short, or missing the AC, are typed errors.
    assert!(parse_generate_ac_response(&h("8005800011AABB")).is_err());
    assert_eq!(
        parse_generate_ac_response(&h("770B9F2701809F360200119F")),
        Err(PbocError::Tlv {
            context: "GENERATE AC response",
            source: card_core::tlv::TlvError::ValuePastEnd {
                offset: 2,
                len_bytes: 11,
                available_bytes: 10
            }
        })
    );
    assert_eq!(
        parse_generate_ac_response(&h("77099F2701809F36020011")),
        Err(PbocError::MissingData { tag: tags::AC })
    );
}

#[test]
fn online_completion_issuer_authentication_and_second_generate_ac() {
    let mut s = session(&[
        ("008200000A 1A2B3C4D5E6F7081 3030", "9000"),
        // CDOL2: 8A ARC '00' (3030), 9F37, 95.
        (
            "80AE40000B 3030 11223344 0000000000 00",
            "8012400012AABBCCDDEEFF001107010103A00000 9000",
        ),
        ("008200000A 0000000000000000 3030", "6300"),
    ]);
    let arpc = <[u8; 8]>::try_from(h("1A2B3C4D5E6F7081")).unwrap();
    pboc::issuer_authenticate(&mut s, &arpc, [0x30, 0x30]).unwrap();
    let cdol2 = card_core::dol::Dol::parse(&h("8A029F37049505")).unwrap();
    let tc = pboc::generate_ac_with_dol(&mut s, AcType::Tc, &cdol2, &terminal()).unwrap();
    assert_eq!(tc.cryptogram_type(), CryptogramType::Tc);
    assert_eq!(tc.atc, [0x00, 0x12]);
    assert_eq!(
        pboc::issuer_authenticate(&mut s, &[0; 8], [0x30, 0x30]),
        Err(PbocError::IssuerAuthenticationFailed)
    );
    s.transport_mut().assert_finished();
}

#[test]
fn ppse_directory_is_used_when_present() {
    let mut s = session(&[
        (
            "00A404000E325041592E5359532E444446303100",
            "6F3F840E325041592E5359532E4444463031A52DBF0C2A610D4F08A0000003330101028701\
             0261194F08A000000333010101500A50424F43204445424954870101 9000",
        ),
        // Priority 1 wins over priority 2: the debit AID is selected; it has no PDOL.
        (
            "00A4040008A00000033301010100",
            "6F0A8408A000000333010101 9000",
        ),
        ("80A80000028300 00", "8006 7C00 08010100 9000"),
        (
            "00B2010C00",
            "70195A0862123456789012345F24033012318C039F37048D028A02 9000",
        ),
    ]);
    let app = pboc::read_application(&mut s, &TerminalData::new()).unwrap();
    s.transport_mut().assert_finished();
    assert_eq!(app.label.as_deref(), Some("PBOC DEBIT"));
    assert_eq!(app.pan.expose(), "6212345678901234");
    assert_eq!(app.psn, None);
    assert!(app.cardholder_name.is_none());
}

#[test]
fn aid_list_fallback_and_no_application() {
    // No PPSE, no PSE: the AID list is tried in order; 0101 answers, 0102 and 0103 do not.
    let mut s = session(&[
        ("00A404000E325041592E5359532E444446303100", "6A82"),
        ("00A404000E315041592E5359532E444446303100", "6A82"),
        (
            "00A4040008A00000033301010100",
            "6F0A8408A000000333010101 9000",
        ),
        ("00A4040008A00000033301010200", "6A82"),
        ("00A4040008A00000033301010300", "6A82"),
        (
            "00A4040008A00000033301010100",
            "6F0A8408A000000333010101 9000",
        ),
        ("80A80000028300 00", "8002 7C00 9000"),
    ]);
    // The AFL is empty, so there is no PAN: a typed error, not a panic.
    assert_eq!(
        pboc::read_application(&mut s, &TerminalData::new()),
        Err(PbocError::MissingData { tag: tags::PAN })
    );
    s.transport_mut().assert_finished();

    let mut s = session(&[
        ("00A404000E325041592E5359532E444446303100", "6A82"),
        ("00A404000E315041592E5359532E444446303100", "6A82"),
        ("00A4040008A00000033301010100", "6A82"),
        ("00A4040008A00000033301010200", "6A82"),
        ("00A4040008A00000033301010300", "6A82"),
    ]);
    assert_eq!(
        pboc::read_application(&mut s, &TerminalData::new()),
        Err(PbocError::NoApplication)
    );
}
