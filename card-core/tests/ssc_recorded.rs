//! Decoding recorded SSSE answers into `CardIdentity`/`Holder`, and the EF05/EF06 read flows over
//! a scripted card. Every response byte is built independently of card-core:
//! - card values are the public examples of ssc-card.md §3/§6 (卡识别码
//!   `441800D1560000053030737878EC1A84`, 规范版本 `332E3030`, 初始化机构编号
//!   `91560000025202005202006A`, 卡号 `R47708862`, 社会保障号码 `441225198703040437`);
//! - names were encoded with Python's codecs, e.g.
//!   `python3 -c "print(('王堃'.encode('gbk')+bytes(26)).hex().upper())"`
//!   → `CDF588D2` + 26 zero bytes; `'李喆'.encode('gbk')` → `C0EE86B4`;
//!   `'阿卜杜热合曼·买买提艾力江·吐尔逊'.encode('gbk')` is 34 bytes: the first 30 in tag 09, the
//!   last 4 (`B6FBD1B7` = 尔逊) in tag 4E; `'王𠀀'.encode('gb18030')` → `CDF595328236`
//!   (𠀀 is outside GBK: a GB18030 four-byte sequence); `b'\xcd\xff'.decode('gbk')` raises.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use card_core::auth::{AuthError, AuthenticatorError, NoExternalAuthentication};
use card_core::ssc::{self, CardGeneration, Holder, RecordSet, Sex, SscError, card_bas_output};
use scripted::{h, session};

const SELECT_SSSE: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF";
const CARD_ID: &str = "441800D1560000053030737878EC1A84";

/// EF05 of the ssc-card.md example card, as (tag, READ RECORD command, answer data) with the
/// given version record.
fn ef05(version_hex: &str, issue: &str, expiry: &str) -> Vec<(u8, String, String)> {
    vec![
        (0x01, "00B2010012".into(), format!("0110{CARD_ID}")),
        (0x02, "00B2020003".into(), "020133".into()),
        (0x03, "00B2030006".into(), format!("0304{version_hex}")),
        (
            0x04,
            "00B204000E".into(),
            "040C91560000025202005202006A".into(),
        ),
        (0x05, "00B2050006".into(), format!("0504{issue}")),
        (0x06, "00B2060006".into(), format!("0604{expiry}")),
        // "R47708862" in ASCII: python3 -c "print(b'R47708862'.hex().upper())"
        (0x07, "00B207000B".into(), "0709523437373038383632".into()),
    ]
}

fn record_set(records: &[(u8, String, String)]) -> RecordSet {
    let mut set = RecordSet::new();
    for (tag, _, data) in records {
        set.insert(*tag, h(data));
    }
    set
}

/// EF06 answers: SSN "441225198703040437" in ASCII, then the given name records, sex '1',
/// 民族 01, 出生地 441225, 出生日期 19870304.
fn ef06(name09: &str, name4e: Option<&str>) -> Vec<(u8, String, String)> {
    let mut records = vec![
        (
            0x08,
            "00B2080014".into(),
            "0812343431323235313938373033303430343337".into(),
        ),
        (0x09, "00B2090020".into(), format!("091E{name09}")),
    ];
    if let Some(ext) = name4e {
        records.push((0x4E, "00B24E0016".into(), format!("4E14{ext}")));
    }
    records.extend([
        (0x0A, "00B20A0003".into(), "0A0131".into()),
        (0x0B, "00B20B0003".into(), "0B0101".into()),
        (0x0C, "00B20C0005".into(), "0C03441225".into()),
        (0x0D, "00B20D0006".into(), "0D0419870304".into()),
    ]);
    records
}

const WANG_KUN: &str = "CDF588D2 0000000000000000000000000000000000000000000000000000";
const LI_ZHE: &str = "C0EE86B4 0000000000000000000000000000000000000000000000000000";
const LONG_BASE: &str = "B0A2B2B7B6C5C8C8BACFC2FCA1A4C2F2C2F2CCE1B0ACC1A6BDADA1A4CDC2";
const LONG_EXT: &str = "B6FBD1B7 00000000000000000000000000000000";

#[test]
fn ef05_of_the_reference_card_decodes() {
    let identity =
        ssc::CardIdentity::from_records(&record_set(&ef05("332E3030", "20191120", "20291120")))
            .unwrap();
    assert_eq!(identity.card_id.to_hex(), CARD_ID);
    assert_eq!(identity.card_id.region_code(), "441800");
    assert_eq!(identity.card_type, "3");
    assert_eq!(identity.spec_version, "3.00");
    assert_eq!(identity.generation, CardGeneration::Third);
    assert_eq!(identity.issuing_org, "91560000025202005202006A");
    assert_eq!(identity.issue_date.to_string(), "20191120");
    assert_eq!(identity.expiry.unwrap().to_string(), "20291120");
    assert_eq!(identity.card_number, "R47708862");
}

#[test]
fn a_card_without_expiry_has_none() {
    let identity =
        ssc::CardIdentity::from_records(&record_set(&ef05("332E3030", "20191120", "FFFFFFFF")))
            .unwrap();
    assert_eq!(identity.expiry, None);
}

#[test]
fn ef06_with_a_rare_gbk_character_decodes_and_masks() {
    let holder = Holder::from_records(&record_set(&ef06(WANG_KUN, None))).unwrap();
    assert_eq!(holder.ssn.expose(), "441225198703040437");
    assert_eq!(holder.name.expose(), "王堃");
    assert_eq!(holder.sex, Sex::Male);
    assert_eq!(holder.ethnicity, Some(1));
    assert_eq!(holder.birthplace.as_deref(), Some("441225"));
    assert_eq!(holder.birth_date.unwrap().to_string(), "19870304");
    let shown = format!("{holder:?}");
    assert!(shown.contains("441225********0437"), "{shown}");
    assert!(shown.contains("王*"), "{shown}");
    assert!(!shown.contains("堃") && !shown.contains("19870304") && !shown.contains("198703040"));
}

#[test]
fn name_extension_4e_is_appended() {
    let holder = Holder::from_records(&record_set(&ef06(LONG_BASE, Some(LONG_EXT)))).unwrap();
    assert_eq!(holder.name.expose(), "阿卜杜热合曼·买买提艾力江·吐尔逊");
}

#[test]
fn gb18030_four_byte_characters_are_decoded_not_replaced() {
    // Decision: encoding_rs's GBK decoder is WHATWG gb18030; a rare character outside GBK
    // decodes to itself instead of failing (a holder must not become unreadable).
    let name = "CDF595328236 000000000000000000000000000000000000000000000000";
    let holder = Holder::from_records(&record_set(&ef06(name, None))).unwrap();
    assert_eq!(holder.name.expose(), "王\u{20000}");
}

#[test]
fn undecodable_gbk_is_a_typed_error() {
    let name = format!("CDFF{}", "00".repeat(28));
    let err = Holder::from_records(&record_set(&ef06(&name, None))).unwrap_err();
    assert_eq!(err, SscError::Gbk { tag: 0x09 });
    assert!(!err.to_string().contains("CD"));
}

fn script(steps: &[(u8, String, String)], skip_tags: &[u8]) -> Vec<(String, String)> {
    steps
        .iter()
        .filter(|(tag, _, _)| !skip_tags.contains(tag))
        .map(|(_, command, data)| (command.clone(), format!("{data}9000")))
        .collect()
}

fn run(steps: &[(String, String)]) -> scripted::ScriptedCard {
    let borrowed: Vec<(&str, &str)> = steps
        .iter()
        .map(|(c, r)| (c.as_str(), r.as_str()))
        .collect();
    scripted::ScriptedCard::new(&borrowed)
}

#[test]
fn a_2_00_card_without_name_extension_reads_in_clear() {
    let mut steps = vec![
        (SELECT_SSSE.to_owned(), "9000".to_owned()),
        ("00A4020002EF05".into(), "9000".into()),
    ];
    steps.extend(script(&ef05("322E3030", "20200226", "20300226"), &[]));
    steps.push((SELECT_SSSE.into(), "9000".into()));
    steps.push(("00A4020002EF06".into(), "9000".into()));
    let ef06 = ef06(LI_ZHE, None);
    steps.extend(script(&ef06[..2], &[]));
    // 姓名扩展 absent on this card: record not found.
    steps.push(("00B24E0016".into(), "6A83".into()));
    steps.extend(script(&ef06[2..], &[]));

    let mut s = card_core::Session::new(run(&steps));
    let (identity, holder) = ssc::read_card(&mut s, &mut NoExternalAuthentication).unwrap();
    s.transport_mut().assert_finished();
    assert_eq!(identity.generation, CardGeneration::Second);
    assert_eq!(holder.name.expose(), "李喆");

    // The unified interface's iReadCardBas line for this card (ssc-card.md §6 example).
    let line = card_bas_output(
        &identity,
        &holder,
        "0087CF20018649618B00930612",
        "T001",
        "D001",
    )
    .unwrap();
    assert_eq!(
        line.expose(),
        "441800|441225198703040437|R47708862|441800D1560000053030737878EC1A84|李喆|\
         0087CF20018649618B00930612|2.00|20200226|20300226|T001|D001|"
    );
    assert!(!format!("{line:?}").contains("4412251987"));
    assert_eq!(
        card_bas_output(&identity, &holder, "0087", "T|1", "D001"),
        Err(SscError::BasField {
            field: "终端机编号"
        })
    );
    assert!(card_bas_output(&identity, &holder, "0G", "T1", "D1").is_err());
}

#[test]
fn a_3_00_card_is_authenticated_before_ef06() {
    let identity =
        ssc::CardIdentity::from_records(&record_set(&ef05("332E3030", "20191120", "20291120")))
            .unwrap();
    let mut steps = vec![
        (SELECT_SSSE.to_owned(), "9000".to_owned()),
        ("0084000008".into(), "0102030405060708 9000".into()),
        (
            "0082000A10 A0A1A2A3A4A5A6A7A8A9AAABACADAEAF".into(),
            "9000".into(),
        ),
        ("00A4020002EF06".into(), "9000".into()),
    ];
    steps.extend(script(&ef06(LONG_BASE, Some(LONG_EXT)), &[]));
    let mut s = card_core::Session::new(run(&steps));
    let mut seen = None;
    let mut authenticator = |card_id: &[u8; 16], challenge: &[u8; 8]| {
        seen = Some((*card_id, *challenge));
        Ok::<_, AuthenticatorError>(
            <[u8; 16]>::try_from(h("A0A1A2A3A4A5A6A7A8A9AAABACADAEAF")).unwrap(),
        )
    };
    let holder = ssc::read_holder(&mut s, &identity, &mut authenticator).unwrap();
    s.transport_mut().assert_finished();
    let (card_id, challenge) = seen.unwrap();
    assert_eq!(card_id.to_vec(), h(CARD_ID));
    assert_eq!(challenge.to_vec(), h("0102030405060708"));
    assert_eq!(holder.name.expose(), "阿卜杜热合曼·买买提艾力江·吐尔逊");
}

#[test]
fn a_3_00_card_without_authenticator_or_with_a_wrong_cryptogram_fails_typed() {
    let identity =
        ssc::CardIdentity::from_records(&record_set(&ef05("332E3030", "20191120", "20291120")))
            .unwrap();
    let mut s = session(&[
        (SELECT_SSSE, "9000"),
        ("0084000008", "0102030405060708 9000"),
    ]);
    assert_eq!(
        ssc::read_holder(&mut s, &identity, &mut NoExternalAuthentication),
        Err(SscError::Auth(AuthError::Authenticator(
            AuthenticatorError::Unavailable
        )))
    );
    let mut s = session(&[
        (SELECT_SSSE, "9000"),
        ("0084000008", "0102030405060708 9000"),
        ("0082000A10 00000000000000000000000000000000", "63C4"),
    ]);
    let mut zeros = |_: &[u8; 16], _: &[u8; 8]| Ok([0u8; 16]);
    assert_eq!(
        ssc::read_holder(&mut s, &identity, &mut zeros),
        Err(SscError::Auth(AuthError::CryptogramWrong { tries_left: 4 }))
    );
}

#[test]
fn ef06_answering_6982_means_authentication_required() {
    // The card says 2.00 but guards EF06 like a 3.00 card.
    let identity =
        ssc::CardIdentity::from_records(&record_set(&ef05("322E3030", "20191120", "20291120")))
            .unwrap();
    let mut s = session(&[
        (SELECT_SSSE, "9000"),
        ("00A4020002EF06", "9000"),
        ("00B2080014", "6982"),
    ]);
    assert_eq!(
        ssc::read_holder(&mut s, &identity, &mut NoExternalAuthentication),
        Err(SscError::AuthenticationRequired)
    );
}

#[test]
fn a_card_without_ssse_and_a_missing_required_record_are_typed() {
    let mut s = session(&[(SELECT_SSSE, "6A82")]);
    assert_eq!(ssc::read_identity(&mut s), Err(SscError::NoSsse));
    let mut s = session(&[
        (SELECT_SSSE, "9000"),
        ("00A4020002EF05", "9000"),
        ("00B2010012", "6A83"),
    ]);
    assert_eq!(
        ssc::read_identity(&mut s),
        Err(SscError::RecordMissing { tag: 0x01 })
    );
}
