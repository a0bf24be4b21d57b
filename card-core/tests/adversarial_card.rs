//! Adversarial input against card-core's parsers, the T=0 session, the virtual card's state
//! machine, its vpcd framing and the card image loader. Each test names the attack; the expected
//! outcomes come from ISO/IEC 7816-4 (§5.1 APDU cases, §5.2 BER-TLV, table 6 status words),
//! EMV 4.4 Book 3 (§5.4 DOLs, §10.2 AFL, Annex B) and ssc-card.md §3 (record formats).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vcard_common;

use card_core::apdu::{APDU_DATA_LEN_MAX, ApduError};
use card_core::dol::{Dol, DolError, parse_afl};
use card_core::ssc::{self, SscError};
use card_core::tlv::{self, TlvError};
use card_core::transport::{TRANSPORT_FOLLOW_MAX, TRANSPORT_RESPONSE_LEN_MAX};
use card_core::vcard::vpcd::{self, VpcdRequest};
use card_core::vcard::{CardImage, ImageError, VirtualCard};
use card_core::{CardTransport, CommandApdu, ResponseApdu, Session, StatusWord, TransportError};
use proptest::prelude::*;
use vcard_common::*;

// ---------------------------------------------------------------------------------------------
// APDU boundaries (ISO 7816-4 §5.1).

#[test]
fn apdu_ne_and_nc_boundaries() {
    let c = CommandApdu::new(0, 0xB0, 0, 0);
    assert_eq!(c.clone().with_ne(0), Err(ApduError::NeOutOfRange { ne: 0 }));
    assert_eq!(
        c.clone().with_ne(65_537),
        Err(ApduError::NeOutOfRange { ne: 65_537 })
    );
    // Ne 255 and 256 are short (Le FF / 00), 257 and 65536 extended (Le 0101 / 0000).
    assert_eq!(c.clone().with_ne(255).unwrap().to_bytes(), h("00B00000FF"));
    assert_eq!(c.clone().with_ne(256).unwrap().to_bytes(), h("00B0000000"));
    assert_eq!(
        c.clone().with_ne(257).unwrap().to_bytes(),
        h("00B00000000101")
    );
    assert_eq!(
        c.clone().with_ne(65_536).unwrap().to_bytes(),
        h("00B00000000000")
    );
    // Nc 65 535 is the largest; 65 536 is refused, not truncated into a 16-bit Lc of 0000.
    let max = c.clone().with_data(vec![0xA5; APDU_DATA_LEN_MAX]).unwrap();
    let bytes = max.to_bytes();
    assert_eq!(&bytes[4..7], &[0x00, 0xFF, 0xFF]);
    assert_eq!(CommandApdu::parse(&bytes).unwrap(), max);
    assert_eq!(
        c.with_data(vec![0; APDU_DATA_LEN_MAX + 1]).map(|_| ()),
        Err(ApduError::DataTooLong {
            len_bytes: APDU_DATA_LEN_MAX + 1
        })
    );
}

#[test]
fn apdu_extended_forms_with_odd_lengths_are_errors() {
    // Extended Lc 0001 with one data byte and a 1-byte (short) Le: neither 3E nor 4E.
    assert!(matches!(
        CommandApdu::parse(&h("00DA0000 000001 AB 00")),
        Err(ApduError::LcMismatch { lc: 1, .. })
    ));
    // Extended Lc 0002 but only one data byte.
    assert!(matches!(
        CommandApdu::parse(&h("00DA0000 000002 AB")),
        Err(ApduError::LcMismatch { lc: 2, .. })
    ));
    // Extended Lc FFFF with a short body.
    assert!(matches!(
        CommandApdu::parse(&h("00DA0000 00FFFF 0102")),
        Err(ApduError::LcMismatch { lc: 65_535, .. })
    ));
    // "00 00" (two bytes after the header) is neither case 2S nor an extended field.
    assert_eq!(
        CommandApdu::parse(&h("00B00000 0000")),
        Err(ApduError::ExtendedLengthMalformed)
    );
    // Extended Lc 0000 followed by data is malformed (Nc must be 1..=65535).
    assert_eq!(
        CommandApdu::parse(&h("00DA0000 000000 AB")),
        Err(ApduError::ExtendedLengthMalformed)
    );
    // Short Lc FF with 255 data bytes and Le: case 4S.
    let mut c4 = h("00DA0000FF");
    c4.extend([0x11; 255]);
    c4.push(0x00);
    let parsed = CommandApdu::parse(&c4).unwrap();
    assert_eq!((parsed.case(), parsed.ne()), (4, Some(256)));
    assert_eq!(parsed.to_bytes(), c4);
}

// ---------------------------------------------------------------------------------------------
// BER-TLV (ISO 7816-4 §5.2).

#[test]
fn tlv_length_84_ffffffff_is_an_error_not_an_allocation() {
    assert_eq!(
        tlv::parse_all(&h("5A 84FFFFFFFF 01")),
        Err(TlvError::ValuePastEnd {
            offset: 6,
            len_bytes: 0xFFFF_FFFF,
            available_bytes: 1
        })
    );
    // 85 (five length bytes) and 80 (indefinite) are unsupported; FF as a length byte too.
    for (input, first) in [("5A 85 0000000001 00", 0x85), ("5A 80 00 00", 0x80)] {
        assert_eq!(
            tlv::parse_all(&h(input)),
            Err(TlvError::LengthUnsupported {
                offset: 1,
                first_byte: first
            })
        );
    }
    assert!(matches!(
        tlv::parse_all(&h("5A FF")),
        Err(TlvError::LengthUnsupported {
            first_byte: 0xFF,
            ..
        })
    ));
    // 81 with no following byte is truncated.
    assert_eq!(
        tlv::parse_all(&h("5A 81")),
        Err(TlvError::LengthTruncated { offset: 1 })
    );
}

#[test]
fn tlv_tags_with_endless_continuation_bytes_stop_at_three_bytes() {
    let mut endless = vec![0x1F];
    endless.extend([0xFF; 4000]);
    assert_eq!(
        tlv::parse_all(&endless),
        Err(TlvError::TagTooLong { offset: 0 })
    );
    assert_eq!(
        tlv::parse_all(&h("9F FF")),
        Err(TlvError::TagTruncated { offset: 0 })
    );
    // A whole input of padding is no object at all.
    assert_eq!(tlv::parse_all(&[0xFF; 300]), Ok(vec![]));
    assert_eq!(tlv::Tlv::from_bytes(&[0x00; 3]), Err(TlvError::Empty));
    // 65 537 bytes: refused before any parsing.
    assert_eq!(
        tlv::parse_all(&vec![0; 65_537]),
        Err(TlvError::InputTooLong { len_bytes: 65_537 })
    );
}

#[test]
fn tlv_deep_nesting_of_empty_templates_is_bounded() {
    // 40 nested empty-but-padded templates: the depth check counts real objects only.
    let mut bytes = vec![0x00];
    for _ in 0..40 {
        let mut outer = vec![0x70, u8::try_from(bytes.len()).unwrap()];
        outer.extend(bytes);
        bytes = outer;
    }
    assert!(matches!(
        tlv::parse_all(&bytes),
        Err(TlvError::DepthExceeded { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// DOL and AFL (EMV 4.4 Book 3 §5.4, §10.2).

#[test]
fn dol_zero_and_huge_lengths() {
    // Zero-length entries are legal and fill nothing.
    let dol = Dol::parse(&h("9F0200 9A00")).unwrap();
    assert_eq!(dol.data_len(), 0);
    assert!(dol.fill(&card_core::dol::TerminalData::new()).is_empty());
    // 80..FF lengths are long forms, refused.
    assert_eq!(
        Dol::parse(&h("9F02 80")),
        Err(DolError::LengthLongForm { offset: 2 })
    );
    assert_eq!(
        Dol::parse(&h("9F02 FF")),
        Err(DolError::LengthLongForm { offset: 2 })
    );
    // Three entries of 7F ask for 381 bytes.
    assert_eq!(
        Dol::parse(&h("DF017F DF027F DF037F")),
        Err(DolError::DataTooLong { len_bytes: 381 })
    );
    // A tag with endless continuation bytes.
    assert!(matches!(
        Dol::parse(&h("1FFFFFFF01")),
        Err(DolError::Tag(TlvError::TagTooLong { .. }))
    ));
    assert_eq!(
        Dol::parse(&h("9F02")),
        Err(DolError::LengthMissing { offset: 0 })
    );
}

#[test]
fn afl_sfi_0_and_31_and_record_ranges() {
    for (afl, reason) in [
        ("00010100", "SFI outside 1..=30"),
        ("F8010100", "SFI outside 1..=30"),
        ("09010100", "bits 3-1 of byte 1 are not zero"),
        ("08000100", "first record is 0"),
        ("08020100", "first record after last record"),
        ("08010102", "more ODA records than records"),
    ] {
        assert_eq!(
            parse_afl(&h(afl)),
            Err(DolError::AflEntry { index: 0, reason }),
            "{afl}"
        );
    }
    let all = parse_afl(&h("F001FFFF")).unwrap();
    assert_eq!((all[0].sfi, all[0].records().count()), (30, 255));
    assert_eq!(all[0].read_record_p2(), 0xF4);
    assert_eq!(
        parse_afl(&h("080101")),
        Err(DolError::AflLength { len_bytes: 3 })
    );
}

// ---------------------------------------------------------------------------------------------
// SSSE decoding (ssc-card.md §3).

#[test]
fn bcd_with_non_digit_nibbles_in_the_middle() {
    for bad in ["12A4", "1B34", "1F34", "F1", "12FA", "CCCC"] {
        assert_eq!(
            ssc::decode_cn(0x0C, &h(bad)),
            Err(SscError::Bcd { tag: 0x0C }),
            "{bad}"
        );
    }
    assert_eq!(ssc::decode_cn(0x0C, &h("FFFF")).unwrap(), "");
    assert_eq!(ssc::decode_cn(0x0C, &[]).unwrap(), "");
}

#[test]
fn impossible_dates_are_errors() {
    // 2023-02-30, 2023-02-29 (not leap), 1900-02-29 (not leap), month 00, day 00, year 0000,
    // date with F padding inside.
    for bad in [
        "20230230", "20230229", "19000229", "20230001", "20230100", "00000101", "2023013F",
        "202301FF",
    ] {
        assert_eq!(
            ssc::decode_date(0x05, &h(bad)),
            Err(SscError::Date { tag: 0x05 }),
            "{bad}"
        );
    }
    assert_eq!(
        ssc::decode_date(0x05, &h("20240229")).unwrap().to_string(),
        "20240229"
    );
}

#[test]
fn gbk_edge_cases() {
    // "张" is D5C5 in GBK (Python: "张".encode("gbk").hex() == "d5c5").
    assert_eq!(ssc::decode_gbk(0x09, &h("D5C5 0000")).unwrap(), "张");
    // An odd trailing lead byte, an invalid lead byte FF, a lead byte followed by 00 padding
    // (the trail byte is missing), and 00 inside the text.
    for bad in ["D5C5D5", "FF41", "D500", "D5C500D5C5"] {
        assert!(
            matches!(
                ssc::decode_gbk(0x09, &h(bad)),
                Err(SscError::Gbk { tag: 0x09 } | SscError::Padding { tag: 0x09 })
            ),
            "{bad}"
        );
    }
    // All-00: empty text (the holder decoding decides whether that is acceptable).
    assert_eq!(ssc::decode_gbk(0x09, &[0; 30]).unwrap(), "");
    // A GBK error message never repeats the bytes.
    let err = ssc::decode_gbk(0x09, &h("D5C5D5")).unwrap_err().to_string();
    assert!(!err.to_uppercase().contains("D5C5"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The T=0 session over a scripted, hostile transport.

/// Answers each transmit from a closure, counting transmits.
struct Hostile<F: FnMut(usize, &[u8]) -> Vec<u8>> {
    answer: F,
    transmits: usize,
}

impl<F: FnMut(usize, &[u8]) -> Vec<u8>> CardTransport for Hostile<F> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transmits += 1;
        Ok((self.answer)(self.transmits, command))
    }
}

fn hostile<F: FnMut(usize, &[u8]) -> Vec<u8>>(answer: F) -> Session<Hostile<F>> {
    Session::new(Hostile {
        answer,
        transmits: 0,
    })
}

#[test]
fn session_6cxx_loop_resends_once_only() {
    let mut s = hostile(|_, _| h("6C10"));
    let r = s.exchange(&apdu("00B2010C00")).unwrap();
    assert_eq!(r.sw(), StatusWord::from_u16(0x6C10));
    assert_eq!(s.transport_mut().transmits, 2);
}

#[test]
fn session_alternating_61xx_and_6cxx_is_bounded() {
    let mut s = hostile(|n, _| if n % 2 == 0 { h("6C05") } else { h("AA 6101") });
    let r = s.exchange(&apdu("00B2010C00"));
    // Either the 6CXX is handed back or the chain limit hits; never more than the bound.
    assert!(s.transport_mut().transmits <= TRANSPORT_FOLLOW_MAX + 1);
    if let Ok(r) = r {
        assert_eq!(r.sw(), StatusWord::from_u16(0x6C05));
    }
}

#[test]
fn session_endless_6100_chain_is_bounded_by_length_or_steps() {
    let mut s = hostile(|_, _| {
        let mut a = vec![0x55; 256];
        a.extend(h("6100"));
        a
    });
    assert_eq!(
        s.exchange(&apdu("00B2010C00")),
        Err(TransportError::ChainTooLong)
    );
    assert!(s.transport_mut().transmits <= TRANSPORT_FOLLOW_MAX + 1);
    // One giant answer past the response limit.
    let mut s = hostile(|_, _| vec![0x90; TRANSPORT_RESPONSE_LEN_MAX + 3]);
    assert_eq!(
        s.exchange(&apdu("00B2010C00")),
        Err(TransportError::ChainTooLong)
    );
    // Empty and one-byte answers.
    let mut s = hostile(|_, _| Vec::new());
    assert_eq!(
        s.exchange(&apdu("00B2010C00")),
        Err(TransportError::Apdu(ApduError::ResponseTruncated {
            len_bytes: 0
        }))
    );
}

// ---------------------------------------------------------------------------------------------
// The virtual card's state machine (answers by ISO 7816-4 table 6).

fn sw_of(answer: &[u8]) -> u16 {
    u16::from_be_bytes([answer[answer.len() - 2], answer[answer.len() - 1]])
}

#[test]
fn vcard_get_response_without_pending_data_is_6985() {
    for image in [TIANJIN, BEIJING, HEBEI] {
        let mut c = card(image);
        assert_eq!(c.process(&h("00C0000010")), h("6985"));
        assert_eq!(c.process(&h("00C0000000")), h("6985"));
        // A GET RESPONSE with data is 6700, with P1-P2 not 0000 is 6A86.
        assert_eq!(c.process(&h("00C00000 01 00")), h("6700"));
        assert_eq!(c.process(&h("00C0010000")), h("6A86"));
        // A malformed APDU drops any pending data.
        c.process(&h(SELECT_SSSE));
        c.process(&h("00A404"));
        assert_eq!(c.process(&h("00C0000000")), h("6985"));
    }
}

#[test]
fn vcard_external_authenticate_replay_is_refused() {
    let mut c = card(HEBEI);
    c.process(&h(SELECT_SSSE));
    let challenge = c.process(&h("0084000008"));
    assert_eq!(sw_of(&challenge), 0x9000);
    // Wrong cryptogram consumes the challenge and a try.
    let wrong = "0082000A10 00000000000000000000000000000000";
    assert_eq!(sw_of(&c.process(&h(wrong))), 0x63C4);
    // Replay without a new challenge: conditions not satisfied, no try used.
    assert_eq!(c.process(&h(wrong)), h("6985"));
    assert_eq!(c.process(&h(wrong)), h("6985"));
    // Wrong lengths (0, 15, 17 bytes) are 6700 and use no try.
    assert_eq!(c.process(&h("0082000A")), h("6700"));
    assert_eq!(
        c.process(&h("0082000A0F 000000000000000000000000000000")),
        h("6700")
    );
    c.process(&h("0084000008"));
    assert_eq!(sw_of(&c.process(&h(wrong))), 0x63C3);
}

#[test]
fn vcard_generate_ac_before_gpo_is_6985() {
    let mut s = session(BEIJING);
    ok(&mut s, "00A4040008A00000033301010100");
    let cdol1 = "80AE80001D 000000000100 000000000000 0156 0000000000 0156 240101 00 11223344 00";
    assert_eq!(x(&mut s, cdol1).sw(), StatusWord::CONDITIONS_NOT_SATISFIED);
    // Issuer authentication before any GENERATE AC.
    assert_eq!(
        x(&mut s, "008200000A 1122334455667788 3030").sw(),
        StatusWord::CONDITIONS_NOT_SATISFIED
    );
}

#[test]
fn vcard_verify_with_0_or_255_bytes() {
    let mut c = card(BEIJING);
    let tries = c.pin_tries_left();
    // No data: the tries-left query (ISO 7816-4 §11.5.6), no try used.
    assert_eq!(sw_of(&c.process(&h("00200000"))), 0x63C0 | u16::from(tries));
    assert_eq!(c.pin_tries_left(), tries);
    // 255 bytes of F padding or of digits: malformed, no try used.
    let mut all_f = h("00200000FF");
    all_f.extend([0xFF; 255]);
    assert_eq!(c.process(&all_f), h("6700"));
    let mut digits = h("00200000FF");
    digits.extend([0x11; 255]);
    assert_eq!(c.process(&digits), h("6700"));
    assert_eq!(c.pin_tries_left(), tries);
    // A digit after F padding, and a non-digit nibble.
    assert_eq!(c.process(&h("0020000003 12F456")), h("6700"));
    assert_eq!(c.process(&h("0020000003 12A456")), h("6700"));
    assert_eq!(c.pin_tries_left(), tries);
}

#[test]
fn vcard_read_record_p2_for_every_sfi() {
    for image in [TIANJIN, BEIJING, HEBEI] {
        let mut c = card(image);
        c.process(&h(SELECT_SSSE));
        for sfi in 0u8..=31 {
            for mode in 0u8..=7 {
                let p2 = (sfi << 3) | mode;
                let answer = c.process(&[0x00, 0xB2, 0x01, p2, 0x00]);
                let sw = sw_of(&answer);
                let expected_ok = mode == 4 && (sfi == 5 || sfi == 6);
                if !expected_ok && p2 != 0x00 {
                    assert_ne!(sw, 0x9000, "P2 {p2:02X} answered data");
                }
                if sw == 0x9000 || sw >> 8 == 0x61 || sw >> 8 == 0x6C {
                    assert!(expected_ok || p2 == 0x00, "P2 {p2:02X}");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The PBOC side of the card never answers data to a READ RECORD outside its AFL.
    #[test]
    fn vcard_pboc_read_record_outside_the_afl_is_never_data(p1 in any::<u8>(), p2 in any::<u8>()) {
        let mut c = card(BEIJING);
        c.process(&h("00A4040008A00000033301010100"));
        let answer = c.process(&[0x00, 0xB2, p1, p2, 0x00]);
        let sw = sw_of(&answer);
        let in_afl = p2 & 7 == 4 && matches!((p2 >> 3, p1), (2, 1) | (3, 1..=2));
        prop_assert_eq!(sw == 0x9000 || sw >> 8 == 0x61 || sw >> 8 == 0x6C, in_afl, "{:02X}{:02X}", p1, p2);
    }
}

// ---------------------------------------------------------------------------------------------
// GET PROCESSING OPTIONS with a long PDOL: the command template 83 takes the long length form.

fn beijing_with(pattern: &str, replacement: &str) -> String {
    assert!(BEIJING.contains(pattern), "{pattern}");
    BEIJING.replacen(pattern, replacement, 1)
}

#[test]
fn vcard_gpo_accepts_a_long_form_83_template_for_a_128_byte_pdol() {
    // PDOL DF01 40 DF02 40 asks for 128 bytes: the template is 83 81 80 <128 bytes> (EMV Book 3
    // Annex B: lengths 128..=255 take the 81 form), so Lc = 131.
    let image = beijing_with("pdol = \"\"", "pdol = \"DF0140 DF0240\"");
    let mut s = Session::new(VirtualCard::new(
        CardImage::from_toml_str(&image).unwrap(),
        7,
    ));
    ok(&mut s, "00A4040008A00000033301010100");
    let gpo = card_core::pboc::gpo_command(&[0x00; 128]).unwrap();
    assert_eq!(&gpo.data()[..3], &[0x83, 0x81, 0x80]);
    let r = s.exchange(&gpo).unwrap();
    assert_eq!(r.sw(), StatusWord::SUCCESS);
    let (aip, afl) = card_core::pboc::parse_gpo_response(r.data()).unwrap();
    assert_eq!(aip, [0x7C, 0x00]);
    assert_eq!(afl.len(), 2);
    // The whole read flow works on such a card.
    let mut s = Session::new(VirtualCard::new(
        CardImage::from_toml_str(&image).unwrap(),
        7,
    ));
    let app =
        card_core::pboc::read_application(&mut s, &card_core::dol::TerminalData::new()).unwrap();
    assert_eq!(app.pdol.data_len(), 128);
    // A template whose length disagrees with the PDOL is still refused.
    ok(&mut s, "00A4040008A00000033301010100");
    let short = card_core::pboc::gpo_command(&[0x00; 127]).unwrap();
    assert_eq!(s.exchange(&short).unwrap().sw(), StatusWord::WRONG_LENGTH);
}

// ---------------------------------------------------------------------------------------------
// vpcd framing (vsmartcard doc/api.txt).

#[test]
fn vpcd_frames_of_odd_shapes() {
    let mut c = card(TIANJIN);
    // Length 0: an empty APDU, answered 6700 (it is not a control message).
    assert_eq!(VpcdRequest::from_payload(&[]), VpcdRequest::Apdu(&[]));
    assert_eq!(
        vpcd::handle(&mut c, VpcdRequest::from_payload(&[])),
        Some(h("6700"))
    );
    // Control bytes other than 00/01/02/04 get no reply and change nothing.
    for control in [0x03u8, 0x05, 0x7F, 0xFF] {
        assert_eq!(
            VpcdRequest::from_payload(&[control]),
            VpcdRequest::UnknownControl(control)
        );
        assert_eq!(
            vpcd::handle(&mut c, VpcdRequest::UnknownControl(control)),
            None
        );
    }
    // The largest length header and the smallest.
    assert_eq!(vpcd::payload_len([0xFF, 0xFF]), 65_535);
    assert_eq!(vpcd::payload_len([0x00, 0x00]), 0);
    // A payload that does not fit the 16-bit length is an error, 65 535 bytes fit.
    assert!(vpcd::frame(&vec![0; 65_536]).is_err());
    assert_eq!(vpcd::frame(&vec![0; 65_535]).unwrap().len(), 65_537);
    // A 65 535-byte APDU (an extended 3E with Lc FFFF but 65 528 data bytes) is 6700.
    let mut big = h("00D60000 00FFFF");
    big.resize(65_535, 0);
    assert_eq!(c.process(&big), h("6700"));
}

// ---------------------------------------------------------------------------------------------
// Hostile card images.

fn image_err(text: &str) -> ImageError {
    match CardImage::from_toml_str(text) {
        Ok(_) => panic!("image accepted"),
        Err(e) => e,
    }
}

#[test]
fn image_with_impossible_date_20230230_is_refused() {
    for (pattern, replacement) in [
        ("issue_date = \"20180620\"", "issue_date = \"20230230\""),
        ("expiry_date = \"20280620\"", "expiry_date = \"20230229\""),
        ("birth_date = \"19750823\"", "birth_date = \"19000229\""),
        ("birth_date = \"19750823\"", "birth_date = \"00000101\""),
        ("expiry_date = \"20280630\"", "expiry_date = \"20281399\""),
        ("expiry_date = \"20280630\"", "expiry_date = \"20270229\""),
        (
            "effective_date = \"20180620\"",
            "effective_date = \"20180631\"",
        ),
    ] {
        let err = image_err(&beijing_with(pattern, replacement));
        assert!(
            matches!(err, ImageError::Field { .. }),
            "{replacement}: {err}"
        );
    }
    // A real leap day is fine.
    assert!(
        CardImage::from_toml_str(&beijing_with(
            "birth_date = \"19750823\"",
            "birth_date = \"19760229\""
        ))
        .is_ok()
    );
}

#[test]
fn image_dol_asking_for_more_than_fits_a_command_is_refused() {
    // PDOL of 3 × 7F = 381 bytes of data: no GPO command can carry it (Lc ≤ 255).
    let err = image_err(&beijing_with(
        "pdol = \"\"",
        "pdol = \"DF017F DF027F DF037F\"",
    ));
    assert!(
        matches!(
            err,
            ImageError::Field {
                field: "pboc.pdol",
                ..
            }
        ),
        "{err}"
    );
    // CDOL1 of 3 × 7F: likewise past the 255-byte GENERATE AC data.
    let err = image_err(&beijing_with(
        "cdol1 = \"9F0206 9F0306 9F1A02 9505 5F2A02 9A03 9C01 9F3704\"",
        "cdol1 = \"DF017F DF027F DF037F\"",
    ));
    assert!(
        matches!(
            err,
            ImageError::Field {
                field: "pboc.cdol1",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn image_hostile_toml_is_a_typed_error() {
    // A 1000-character name does not fit 30 GBK bytes.
    let long_name = format!("name = \"{}\"", "张".repeat(1000));
    let err =
        image_err(&BEIJING.replacen("name = \"阿卜杜热合曼·买买提艾力·艾合\"", &long_name, 1));
    assert!(
        matches!(
            err,
            ImageError::Field {
                field: "ssse.name",
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("张张"));
    // Non-hex keys and short keys.
    let err = image_err(&beijing_with(
        "issuer_master_key = \"9E15204313F7318ACB79B90BD986AD29\"",
        "issuer_master_key = \"9E15204313F7318ACB79B90BD986AD2Z\"",
    ));
    assert!(!err.to_string().contains("9E152043"), "{err}");
    // Missing fields, wrong types, unknown fields: schema errors that repeat no value.
    for (pattern, replacement) in [
        ("ssn = \"110105197508232019\"", ""),
        ("tries_max = 3", "tries_max = \"110105197508232019\""),
        ("psn = 0", "psn = 6214830200000087653"),
        ("psn = 0", "psn = 300"),
        ("atc = 0x0100", "atc = -1"),
        ("sex = \"1\"", "sex = 1\nsecret = \"888888\""),
        (
            "pan = \"6214830200000087653\"",
            "pan = 6214830200000087653.0",
        ),
    ] {
        let err = image_err(&beijing_with(pattern, replacement)).to_string();
        for value in ["110105197508232019", "6214830200000087653", "888888"] {
            assert!(!err.contains(value), "{replacement}: {err}");
        }
    }
    // Huge text: refused by size before parsing.
    let huge = format!("label = \"{}\"", "x".repeat(70_000));
    assert!(matches!(image_err(&huge), ImageError::TooLong { .. }));
    // Deep nesting inside the size limit must be an error, not a stack overflow.
    let deep = format!("label = {}{}", "[".repeat(30_000), "]".repeat(30_000));
    assert!(matches!(image_err(&deep), ImageError::Toml { .. }));
    let deep_tables = format!("label = {}1{}", "{a=".repeat(15_000), "}".repeat(15_000));
    assert!(matches!(image_err(&deep_tables), ImageError::Toml { .. }));
}

#[test]
fn image_all_zero_or_control_character_names() {
    // An empty name decodes to nothing; the holder still decodes but iReadCardBas refuses a name
    // with a control character or '|'.
    for name in ["\\u0001", "a|b"] {
        let image = BEIJING.replacen(
            "name = \"阿卜杜热合曼·买买提艾力·艾合\"",
            &format!("name = \"{name}\""),
            1,
        );
        let mut s = Session::new(VirtualCard::new(
            CardImage::from_toml_str(&image).unwrap(),
            7,
        ));
        let (identity, holder) =
            ssc::read_card(&mut s, &mut card_core::auth::NoExternalAuthentication).unwrap();
        assert_eq!(
            ssc::card_bas_output(&identity, &holder, "", "T1", "D1"),
            Err(SscError::BasField { field: "姓名" })
        );
    }
}

// ---------------------------------------------------------------------------------------------
// No personal data in Debug/Display.

#[test]
fn debug_output_of_decoded_cards_holds_no_personal_data() {
    let mut s = session(BEIJING);
    let (identity, holder) =
        ssc::read_card(&mut s, &mut card_core::auth::NoExternalAuthentication).unwrap();
    let mut s = session(BEIJING);
    let app =
        card_core::pboc::read_application(&mut s, &card_core::dol::TerminalData::new()).unwrap();
    let shown = format!(
        "{identity:?} {holder:?} {app:?} {:?} {:?}",
        s.transport_mut(),
        ResponseApdu::new(b"110105197508232019".to_vec(), StatusWord::SUCCESS)
    );
    for secret in [
        "110105197508232019",
        "6214830200000087653",
        "ABUDUREHEMAN",
        "买买提",
        "888888",
        "9E15204313F7318ACB79B90BD986AD29",
        "19750823",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
