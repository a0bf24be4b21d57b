//! Catalogue loading and per-line classification (medical-settlement.md §1.5, §4.1) on the fixture
//! catalogues, and bad input. Expected amounts are hand arithmetic written beside each case
//! (cnt × price, cap, ratio), rounding half-up to the fen as `Catalogue::classify` documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::str::FromStr;

use rust_decimal::Decimal;
use settlement::catalogue::{
    Catalogue, CatalogueError, CatalogueSet, ChrgitmLv, FeeLine, LineSign, parse_amount_text,
};
use settlement::{Admdvs, Fen};

// Codes of fixtures/catalogue/110000.csv.
const AMOXICILLIN_C1: &str = "XJ01CAA001A000000007919"; // 甲, no cap
const CEFTRIAXONE_C2: &str = "XJ01DDA006A000000047514"; // 乙, cap 12.00, 10 %
const IBUPROFEN_C3: &str = "XM01AEA011A000000087109"; // 丙
const OMEPRAZOLE_C1_CAP: &str = "XA02BCA010A000000079190"; // 甲, cap 2.00
const ANGONG_SELFPAY_1: &str = "ZA05AC00000001675664"; // 乙 with selfpay_prop 1
const MRI_C2: &str = "002102000010000"; // 乙 service, cap 600.00 / 20 % in 北京, 550.00 / 15 % in 天津

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/catalogue")
}

fn beijing() -> Catalogue {
    Catalogue::load(&dir().join("110000.csv")).unwrap()
}

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn fee(sn: &str, code: &str, cnt: &str, pric: &str, det: &str) -> FeeLine {
    let init = d(cnt).is_sign_negative().then_some("1");
    FeeLine::from_wire(sn, init, code, d(cnt), d(pric), d(det)).unwrap()
}

fn parts(c: &settlement::catalogue::ClassifiedLine) -> [i64; 5] {
    [
        c.det_item_fee_sumamt.fen(),
        c.fulamt_ownpay_amt.fen(),
        c.overlmt_amt.fen(),
        c.preselfpay_amt.fen(),
        c.inscp_scp_amt.fen(),
    ]
}

#[test]
fn fixture_catalogues_load() {
    let set = CatalogueSet::load_dir(&dir()).unwrap();
    let regions: Vec<String> = set.regions().map(|a| a.to_string()).collect();
    assert_eq!(regions, ["110000", "120000", "130100"]);
    assert!(set.region(Admdvs::parse("110000").unwrap()).unwrap().len() >= 30);
    assert!(set.region(Admdvs::parse("440300").unwrap()).is_err());
}

#[test]
fn class_1_2_3_caps_and_self_pay_first() {
    let cat = beijing();
    // 甲, 2.5 × 3.33 = 8.325 → 8.33 (half-up), all in scope.
    let c = cat
        .classify(&fee("1", AMOXICILLIN_C1, "2.5", "3.33", "8.33"))
        .unwrap();
    assert_eq!(parts(&c), [833, 0, 0, 0, 833]);
    assert_eq!(c.chrgitm_lv, ChrgitmLv::Class1);
    // 乙, 3 × 15.00 = 45.00; cap 12.00 → allowed 36.00, over 9.00; 10 % of 36.00 = 3.60; 32.40.
    let c = cat
        .classify(&fee("2", CEFTRIAXONE_C2, "3", "15.00", "45.00"))
        .unwrap();
    assert_eq!(parts(&c), [4500, 0, 900, 360, 3240]);
    assert_eq!(c.pric_uplmt_amt, Some(Fen::from_fen(1200).unwrap()));
    // 乙 under the cap: 2 × 10.00 = 20.00; 10 % = 2.00; 18.00.
    let c = cat
        .classify(&fee("3", CEFTRIAXONE_C2, "2", "10.00", "20.00"))
        .unwrap();
    assert_eq!(parts(&c), [2000, 0, 0, 200, 1800]);
    // 丙: 2 × 18.50 = 37.00 fully self-paid.
    let c = cat
        .classify(&fee("4", IBUPROFEN_C3, "2", "18.50", "37.00"))
        .unwrap();
    assert_eq!(parts(&c), [3700, 3700, 0, 0, 0]);
    // 甲 over its cap: 7 × 2.35 = 16.45; cap 2.00 → 14.00 allowed, 2.45 over.
    let c = cat
        .classify(&fee("5", OMEPRAZOLE_C1_CAP, "7", "2.35", "16.45"))
        .unwrap();
    assert_eq!(parts(&c), [1645, 0, 245, 0, 1400]);
    // selfpay_prop 1: whole line self-paid (medical-settlement.md §1.5 rule of thumb).
    let c = cat
        .classify(&fee("6", ANGONG_SELFPAY_1, "1", "560.00", "560.00"))
        .unwrap();
    assert_eq!(parts(&c), [56000, 56000, 0, 0, 0]);
    // Self-pay-first rounding: 1 × 0.15 at 10 % = 0.015 → 0.02 (half-up).
    let c = cat
        .classify(&fee("7", CEFTRIAXONE_C2, "1", "0.15", "0.15"))
        .unwrap();
    assert_eq!(parts(&c), [15, 0, 0, 2, 13]);
}

#[test]
fn the_treating_regions_catalogue_decides() {
    // MRI 700.00: 北京 cap 600 / 20 % → over 100, pre 120, in 480;
    // 天津 cap 550 / 15 % → over 150, pre 82.50, in 467.50.
    let set = CatalogueSet::load_dir(&dir()).unwrap();
    let line = fee("1", MRI_C2, "1", "700.00", "700.00");
    let bj = set.region(Admdvs::parse("110000").unwrap()).unwrap();
    let tj = set.region(Admdvs::parse("120000").unwrap()).unwrap();
    assert_eq!(
        parts(&bj.classify(&line).unwrap()),
        [70000, 0, 10000, 12000, 48000]
    );
    assert_eq!(
        parts(&tj.classify(&line).unwrap()),
        [70000, 0, 15000, 8250, 46750]
    );
}

#[test]
fn refund_lines_keep_consistent_signs() {
    let cat = beijing();
    // −1 × 15.00 referencing line 2: magnitudes 15.00 = 3.00 over + 1.20 pre + 10.80 in scope.
    let line = FeeLine::from_wire(
        "9",
        Some("2"),
        CEFTRIAXONE_C2,
        d("-1"),
        d("15.00"),
        d("-15.00"),
    )
    .unwrap();
    assert_eq!(line.sign, LineSign::Refund);
    let c = cat.classify(&line).unwrap();
    assert_eq!(c.sign, LineSign::Refund);
    assert_eq!(parts(&c), [1500, 0, 300, 120, 1080]);
    // A refund without init_feedetl_sn, or with mixed signs, is refused.
    let e = FeeLine::from_wire("9", None, CEFTRIAXONE_C2, d("-1"), d("15.00"), d("-15.00"));
    assert!(
        matches!(e, Err(CatalogueError::SignMismatch { .. })),
        "{e:?}"
    );
    let e = FeeLine::from_wire(
        "9",
        Some("2"),
        CEFTRIAXONE_C2,
        d("-1"),
        d("15.00"),
        d("15.00"),
    );
    assert_eq!(
        e.unwrap_err().to_string(),
        "fee line 9: cnt and det_item_fee_sumamt have different signs"
    );
}

#[test]
fn bad_lines_get_precise_errors() {
    let cat = beijing();
    // Unknown code.
    let e = cat
        .classify(&fee("1", "XZ99ZZZ999Z999999999999", "1", "1", "1"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "fee line 1: code XZ99ZZZ999Z999999999999 is not in the catalogue of region 110000"
    );
    assert!(matches!(e, CatalogueError::UnknownCode { .. }));
    // det ≠ cnt × pric.
    let e = cat
        .classify(&fee("2", CEFTRIAXONE_C2, "3", "15.00", "45.01"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "fee line 2: det_item_fee_sumamt 45.01 differs from cnt × pric = 45.00 (rounded half-up to the fen)"
    );
    // Negative price.
    let e =
        FeeLine::from_wire("3", None, CEFTRIAXONE_C2, d("1"), d("-1.00"), d("1.00")).unwrap_err();
    assert_eq!(e.to_string(), "fee line 3: pric amount is negative");
    // Sub-fen amount.
    let e =
        FeeLine::from_wire("4", None, CEFTRIAXONE_C2, d("1"), d("1.001"), d("1.00")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "fee line 4: pric amount has more than 2 decimal places"
    );
    // Non-numeric text.
    let e = parse_amount_text("5", "det_item_fee_sumamt", "12a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "fee line 5: det_item_fee_sumamt is not a number (3 bytes of text)"
    );
    for text in ["", "1e3", ".5", "5.", "--1", " 1", "1,0"] {
        assert!(parse_amount_text("5", "cnt", text).is_err(), "{text:?}");
    }
    assert_eq!(parse_amount_text("5", "cnt", "-20").unwrap(), d("-20"));
    // Empty feedetl_sn.
    assert!(matches!(
        FeeLine::from_wire("", None, CEFTRIAXONE_C2, d("1"), d("1"), d("1")),
        Err(CatalogueError::BadField {
            field: "feedetl_sn",
            ..
        })
    ));
}

#[test]
fn bad_catalogue_files_are_refused() {
    let tmp = std::env::temp_dir().join(format!("catalogue-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let header = "med_list_codg,med_list_name,list_type,chrgitm_lv,pric_uplmt_amt,selfpay_prop\n";
    let cases = [
        (
            "X123,短码,drug,01,,0\n",
            "row 1: code X123 is not in the national Drug format",
        ),
        (
            "001101000010000,a,service,04,,0\n",
            "row 1: chrgitm_lv \"04\" is not 01/02/03",
        ),
        (
            "001101000010000,a,service,02,,1.5\n",
            "row 1: selfpay_prop 1.5 is outside 0..=1",
        ),
        (
            "001101000010000,a,service,01,,0\n001101000010000,b,service,01,,0\n",
            "code 001101000010000 listed twice",
        ),
    ];
    for (body, message) in cases {
        let path = tmp.join("110000.csv");
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        let e = Catalogue::load(&path).unwrap_err().to_string();
        assert!(e.contains(message), "{e} should contain {message}");
    }
    let path = tmp.join("beijing.csv");
    std::fs::write(&path, header).unwrap();
    assert!(matches!(
        Catalogue::load(&path),
        Err(CatalogueError::BadFileName { .. })
    ));
    std::fs::remove_dir_all(&tmp).unwrap();
}

proptest::proptest! {
    /// For any line of any fixture code, the four parts add up to det exactly and none is negative
    /// (Fen cannot be), and det is cnt × pric rounded half-up.
    #[test]
    fn classification_identity(index in 0usize..33, cnt_hundredths in 1i64..100_000, pric_fen in 0i64..1_000_000) {
        let cat = beijing();
        let entry = cat.entries().nth(index).unwrap().clone();
        let cnt = Decimal::new(cnt_hundredths, 2);
        let det_fen = (cnt_hundredths * pric_fen + 50) / 100; // half-up, integers
        let line = FeeLine::from_wire("1", None, &entry.med_list_codg, cnt, Decimal::new(pric_fen, 2), Decimal::new(det_fen, 2)).unwrap();
        let c = cat.classify(&line).unwrap();
        let p = parts(&c);
        proptest::prop_assert_eq!(p[0], det_fen);
        proptest::prop_assert_eq!(p[1] + p[2] + p[3] + p[4], p[0]);
    }

    #[test]
    fn parse_amount_never_panics(text in "\\PC{0,50}") {
        let _ = parse_amount_text("1", "cnt", &text);
    }
}
