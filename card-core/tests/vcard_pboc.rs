//! The virtual card's PBOC debit application: PPSE/PSE/AID selection, GPO, READ RECORD over the
//! AFL, GENERATE AC with an ARQC equal to an independent computation, the ATC, ARPC checking and
//! the second GENERATE AC (TC only after issuer authentication with ARC 3030).
//!
//! Independent computation: the test reads the issuer master key, PAN and PSN from the image's
//! TOML text and calls `hsm::emv` itself (derive MK → session key from the ATC → MAC over the
//! CDOL1 data), not the card's code path. Encodings: EMV Book 1 §11–12, Book 3 §6.5 (via
//! card-hsm-anchors.md §3); the GPO/record bytes below were assembled by hand from those tags.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vcard_common;

use card_core::vcard::VirtualCard;
use card_core::{Session, StatusWord};
use hsm::emv::CardAlgorithm;
use vcard_common::*;

/// Session key for `atc`, computed from the image text with hsm::emv.
fn session_key(image: &str, atc: u16) -> ([u8; 16], CardAlgorithm) {
    let v: toml::Value = toml::from_str(image).unwrap();
    let p = &v["pboc"];
    let imk: [u8; 16] = h(p["issuer_master_key"].as_str().unwrap())
        .try_into()
        .unwrap();
    let pan = p["pan"].as_str().unwrap();
    let psn = u8::try_from(p["psn"].as_integer().unwrap()).unwrap();
    let psn_bcd = (psn / 10) << 4 | (psn % 10);
    let alg = match p["algorithm"].as_str().unwrap() {
        "sm4" => CardAlgorithm::Sm4,
        _ => CardAlgorithm::Tdes,
    };
    let mk = match alg {
        CardAlgorithm::Tdes => hsm::emv::derive_icc_master_key_option_a(&imk, pan, psn_bcd),
        CardAlgorithm::Sm4 => hsm::emv::derive_icc_master_key_sm4(&imk, pan, psn_bcd),
    }
    .unwrap();
    let sk = hsm::emv::derive_session_key_pboc(&mk, atc.to_be_bytes(), alg).unwrap();
    (*sk, alg)
}

/// Beijing CDOL1 data (29 bytes): amount 100.00, other 0, country 0156, TVR, currency 0156,
/// date 2024-05-01, type 00, UN.
const BJ_CDOL1: &str = "000000010000 000000000000 0156 0000000000 0156 240501 00 11223344";
/// Beijing CDOL2 data (31 bytes): ARC 3030 then the CDOL1 items.
const BJ_CDOL2: &str = "3030 000000010000 000000000000 0156 0000000000 0156 240501 00 11223344";

fn gac(s: &mut Session<VirtualCard>, p1: u8, data: &str) -> (u8, u16, [u8; 8], Vec<u8>) {
    let data = h(data);
    let cmd = format!("80AE{p1:02X}00{:02X}{}00", data.len(), hex::encode(&data));
    let r = ok(s, &cmd);
    // Format 1: 80 L CID(1) ATC(2) AC(8) IAD.
    assert_eq!(r[0], 0x80);
    assert_eq!(usize::from(r[1]), r.len() - 2);
    (
        r[2],
        u16::from_be_bytes([r[3], r[4]]),
        r[5..13].try_into().unwrap(),
        r[13..].to_vec(),
    )
}

fn start_beijing() -> Session<VirtualCard> {
    let mut s = session(BEIJING);
    ok(&mut s, "00A404000E315041592E5359532E444446303100");
    ok(&mut s, "00A4040008A00000033301010100");
    // No PDOL on this card: 83 00. Format 2: 77 { 82 AIP 7C00, 94 AFL 10010100 18010200 }.
    assert_eq!(
        ok(&mut s, "80A80000028300 00"),
        h("770E 82027C00 9408 10010100 18010200")
    );
    s
}

#[test]
fn directory_selection_finds_the_debit_application() {
    let mut s = session(BEIJING);
    // PPSE: 6F { 84 "2PAY.SYS.DDF01", A5 { BF0C { 61 { 4F AID, 50 label, 87 01 } } } }.
    // Python: each TLV as tag + bytes([len(v)]) + v; "UnionPay Debit" is 14 ASCII bytes.
    let entry = h("611D 4F08A000000333010101 500E556E696F6E506179204465626974 870101");
    let ppse = ok(&mut s, "00A404000E325041592E5359532E444446303100");
    assert!(ppse.windows(entry.len()).any(|w| w == entry.as_slice()));
    assert_eq!(
        &ppse[..18],
        &h("6F34 840E 325041592E5359532E4444463031")[..]
    );
    // PSE: FCI with SFI 1 (88 01 01), then one directory record and 6A83 after it.
    let pse = ok(&mut s, "00A404000E315041592E5359532E444446303100");
    assert!(pse.windows(3).any(|w| w == [0x88, 0x01, 0x01]));
    let mut record = h("701F");
    record.extend(&entry);
    assert_eq!(ok(&mut s, "00B2010C00"), record);
    assert_eq!(x(&mut s, "00B2020C00").sw(), StatusWord::RECORD_NOT_FOUND);
    // The AID's FCI carries the PDOL on the Tianjin card.
    let mut tj = session(TIANJIN);
    let fci = ok(&mut tj, "00A4040008A00000033301010100");
    let pdol = h("9F3809 9F7A01 9F0206 5F2A02");
    assert!(fci.windows(pdol.len()).any(|w| w == pdol.as_slice()));
    // A partial AID selects it too; an unknown one is not found.
    ok(&mut tj, "00A4040007A000000333010100");
    assert_eq!(
        x(&mut tj, "00A4040007A000000333020100").sw(),
        StatusWord::FILE_NOT_FOUND
    );
}

#[test]
fn afl_records_hold_the_pan_and_the_id_number() {
    let mut s = start_beijing();
    let track = ok(&mut s, "00B2011400");
    // 57: PAN D YYMM, service code 220, discretionary 00000: 32 nibbles, no F needed.
    let t2 = h("5710 6214830200000087653D280622000000");
    assert!(track.windows(t2.len()).any(|w| w == t2.as_slice()));
    let app = ok(&mut s, "00B2011C00");
    let pan = h("5A0A 6214830200000087653F");
    assert!(app.windows(pan.len()).any(|w| w == pan.as_slice()));
    assert!(app.windows(3).any(|w| w == [0x5F, 0x34, 0x01]));
    let holder = ok(&mut s, "00B2021C00");
    let mut id = h("9F6112");
    id.extend(b"110105197508232019");
    assert!(holder.windows(id.len()).any(|w| w == id.as_slice()));
    assert_eq!(x(&mut s, "00B2031C00").sw(), StatusWord::RECORD_NOT_FOUND);
    assert_eq!(x(&mut s, "00B2012400").sw(), StatusWord::FILE_NOT_FOUND);
}

#[test]
fn arqc_matches_an_independent_computation_and_the_atc_increments() {
    let mut s = start_beijing();
    let (cid, atc, arqc, iad) = gac(&mut s, 0x80, BJ_CDOL1);
    assert_eq!((cid, atc), (0x80, 0x0101));
    assert_eq!(iad, h("07010103A0000001"));
    let (sk, alg) = session_key(BEIJING, 0x0101);
    assert_eq!(alg, CardAlgorithm::Tdes);
    assert_eq!(
        arqc,
        hsm::emv::generate_arqc(&sk, alg, &h(BJ_CDOL1)).unwrap()
    );
    // Issuer authentication with a correct ARPC and ARC "00", then a TC over the CDOL2 data.
    let arpc = hsm::emv::generate_arpc_method1(&sk, alg, &arqc, *b"00").unwrap();
    ok(&mut s, &format!("008200000A{}3030", hex::encode(arpc)));
    let (cid, atc2, tc, _) = gac(&mut s, 0x40, BJ_CDOL2);
    assert_eq!((cid, atc2), (0x40, 0x0101));
    assert_eq!(tc, hsm::emv::generate_arqc(&sk, alg, &h(BJ_CDOL2)).unwrap());
    // The transaction is over.
    assert_eq!(
        x(&mut s, &format!("80AE40001F{BJ_CDOL2}00").replace(' ', ""))
            .sw()
            .to_u16(),
        0x6985
    );
    // Next transaction: ATC 0102, a wrong ARPC → 6300, and the second GENERATE AC gives an AAC.
    ok(&mut s, "00A4040008A00000033301010100");
    ok(&mut s, "80A80000028300 00");
    let (_, atc, _, _) = gac(&mut s, 0x80, BJ_CDOL1);
    assert_eq!(atc, 0x0102);
    assert_eq!(
        x(&mut s, "008200000A 0000000000000000 3030").sw().to_u16(),
        0x6300
    );
    assert_eq!(
        x(&mut s, "008200000A 0000000000000000 3030").sw().to_u16(),
        0x6985
    );
    let (cid, _, _, _) = gac(&mut s, 0x40, BJ_CDOL2);
    assert_eq!(cid, 0x00);
    // The ATC survives a reset.
    s.transport_mut().reset();
    assert_eq!(s.transport_mut().atc(), 0x0102);
}

#[test]
fn sm4_card_arqc_and_declined_arc_give_an_aac() {
    let mut s = session(TIANJIN);
    ok(&mut s, "00A4040008A00000033301010100");
    // PDOL 9F7A01 9F0206 5F2A02 → 9 bytes.
    ok(&mut s, "80A800000B8309 00 000000010000 0156 00");
    let cdol1 = "000000010000 000000000000 0156 0000000000 0156 240501 00 11223344 101010 \
                 0000000000000000000000000000000000000000";
    let (cid, atc, arqc, _) = gac(&mut s, 0x80, cdol1);
    assert_eq!((cid, atc), (0x80, 0x0011));
    let (sk, alg) = session_key(TIANJIN, 0x0011);
    assert_eq!(alg, CardAlgorithm::Sm4);
    assert_eq!(arqc, hsm::emv::generate_arqc(&sk, alg, &h(cdol1)).unwrap());
    // A correct ARPC for ARC "05" (declined): issuer authentication passes, the card declines.
    let arpc = hsm::emv::generate_arpc_method1(&sk, alg, &arqc, *b"05").unwrap();
    ok(&mut s, &format!("008200000A{}3035", hex::encode(arpc)));
    let cdol2 = format!("3035{}", cdol1.replace(' ', ""));
    let (cid, _, _, _) = gac(&mut s, 0x40, &cdol2);
    assert_eq!(cid, 0x00);
}

#[test]
fn out_of_order_and_malformed_pboc_commands_are_refused() {
    let mut s = session(BEIJING);
    // GPO and GENERATE AC before the application is selected.
    assert_eq!(x(&mut s, "80A80000028300 00").sw().to_u16(), 0x6985);
    ok(&mut s, "00A4040008A00000033301010100");
    assert_eq!(
        x(&mut s, &format!("80AE80001D{BJ_CDOL1}00").replace(' ', ""))
            .sw()
            .to_u16(),
        0x6985
    );
    // GPO with a PDOL data length the card did not ask for.
    assert_eq!(x(&mut s, "80A8000003830100 00").sw().to_u16(), 0x6700);
    ok(&mut s, "80A80000028300 00");
    // CDOL1 data one byte short; EXTERNAL AUTHENTICATE before any ARQC; bad P1.
    assert_eq!(
        x(
            &mut s,
            "80AE80001C 00000001000000000000000001560000000000015624050100112233 00"
        )
        .sw()
        .to_u16(),
        0x6700
    );
    assert_eq!(
        x(&mut s, "008200000A 0000000000000000 3030").sw().to_u16(),
        0x6985
    );
    assert_eq!(
        x(&mut s, &format!("80AEC0001D{BJ_CDOL1}00").replace(' ', ""))
            .sw()
            .to_u16(),
        0x6A86
    );
    // An AAC at the first GENERATE AC ends the transaction (the ATC still counts).
    let (cid, atc, _, _) = gac(&mut s, 0x00, BJ_CDOL1);
    assert_eq!((cid, atc), (0x00, 0x0101));
    assert_eq!(
        x(&mut s, &format!("80AE40001F{BJ_CDOL2}00").replace(' ', ""))
            .sw()
            .to_u16(),
        0x6985
    );
}
