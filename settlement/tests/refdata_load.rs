//! Reference data: the persons of the fixture cards match the cards (fixtures/cards/*.toml), the
//! institutions load, personal data never shows in Debug, bad rows are refused with the row and
//! field but not the value, and the generated population is deterministic with unique keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use settlement::policy::{HospLv, Insutype, PsnType};
use settlement::refdata::{
    InstitutionKind, RefdataError, certno_check_digit, generate_persons, load_institutions,
    load_persons_csv, write_persons_csv,
};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

#[test]
fn persons_of_the_fixture_cards() {
    let persons = load_persons_csv(&fixtures().join("persons/cards.csv")).unwrap();
    // Values copied from fixtures/cards/{beijing-2g,tianjin-3g,hebei-3g}.toml [ssse].
    let cards = [
        ("110105197508232019", "B10020030", "110000", '1'),
        ("120101198805121236", "T00012345", "120000", '1'),
        ("130102199203041522", "H01234567", "130100", '2'),
    ];
    for (ssn, card_no, region, sex) in cards {
        let p = persons.iter().find(|p| p.certno.expose() == ssn).unwrap();
        assert_eq!(p.card_no, card_no);
        assert_eq!(p.insuplc_admdvs.to_string(), region);
        assert_eq!(p.gend, sex);
    }
    let wang = persons.iter().find(|p| p.card_no == "H01234567").unwrap();
    assert_eq!(wang.psn_name.expose(), "王喆");
    assert_eq!(wang.brdy, (1992, 3, 4));
    assert_eq!(wang.age_on(2025, 3, 3), 32);
    assert_eq!(wang.age_on(2025, 3, 4), 33);
    // Masked in Debug: neither the ID number nor the name appears.
    let debug = format!("{wang:?}");
    assert!(
        !debug.contains("130102199203041522") && !debug.contains("王喆"),
        "{debug}"
    );
    assert!(persons.iter().any(|p| p.psn_type == PsnType::Retired));
    assert!(persons.iter().any(|p| p.insutype == Insutype::Resident));
}

#[test]
fn institutions_load() {
    let list = load_institutions(&fixtures().join("institutions/institutions.csv")).unwrap();
    for region in ["110000", "120000", "130100"] {
        let here: Vec<_> = list
            .iter()
            .filter(|i| i.admdvs.to_string() == region)
            .collect();
        assert!(here.iter().any(|i| i.kind == InstitutionKind::Pharmacy));
        assert!(here.iter().any(|i| i.hosp_lv == HospLv::Level3));
        assert!(here.iter().any(|i| i.hosp_lv == HospLv::Community));
    }
}

#[test]
fn bad_person_rows_name_the_field_not_the_value() {
    let dir = std::env::temp_dir().join(format!("refdata-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let header = "psn_no,certno,psn_name,gend,brdy,insutype,psn_type,insuplc_admdvs,card_no,acct_balance,cvlserv_flag\n";
    let good = "1,120101198805121236,赵文博,1,1988-05-12,310,in_service,120000,T00012345,1.00,0\n";
    let cases = [
        // Check digit 6 changed to 7.
        (
            good.replace("1236", "1237"),
            "row 1: certno check digit (ISO 7064 MOD 11-2) is wrong",
        ),
        (
            good.replace("310", "320"),
            "row 1: insutype must be 310 or 390",
        ),
        (
            good.replace("1.00", "-1.00"),
            "row 1: acct_balance must be a non-negative amount in yuan",
        ),
        (
            good.replace("1988-05-12", "1988-02-30"),
            "row 1: brdy must be a date YYYY-MM-DD",
        ),
        (
            format!(
                "{good}{}",
                good.replace("T00012345", "T00012399").replacen('1', "2", 1)
            ),
            "row 2: certno repeats an earlier row",
        ),
    ];
    for (body, message) in cases {
        let path = dir.join("p.csv");
        std::fs::write(&path, format!("{header}{body}")).unwrap();
        let error = load_persons_csv(&path).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(message), "{text} should contain {message}");
        assert!(
            !text.contains("120101198805121236") && !text.contains("赵文博"),
            "{text}"
        );
        assert!(matches!(
            error,
            RefdataError::BadRow { .. } | RefdataError::Duplicate { .. }
        ));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_digit_on_published_shape() {
    // The fixture cards' numbers were checked by hand with the GB 11643 weights (card TOML notes).
    assert_eq!(certno_check_digit("11010519750823201"), Some('9'));
    assert_eq!(certno_check_digit("12010119880512123"), Some('6'));
    assert_eq!(certno_check_digit("13010219920304152"), Some('2'));
    assert_eq!(certno_check_digit("1301021992030415"), None);
}

#[test]
fn generated_population_is_deterministic_unique_and_loads() {
    let dir = std::env::temp_dir().join(format!("refdata-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.csv");
    let b = dir.join("b.csv");
    assert_eq!(
        write_persons_csv(&a, generate_persons(100_000, 7)).unwrap(),
        100_000
    );
    write_persons_csv(&b, generate_persons(100_000, 7)).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // load_persons_csv checks every certno check digit and refuses duplicate keys.
    let persons = load_persons_csv(&a).unwrap();
    assert_eq!(persons.len(), 100_000);
    assert!(persons.iter().any(|p| p.insutype == Insutype::Resident));
    assert!(persons.iter().any(|p| p.psn_type == PsnType::Retired));
    // Another seed gives other persons (the birth date in certno shifts with the seed).
    let seed7 = generate_persons(1, 7).next().unwrap();
    let seed8 = generate_persons(1, 8).next().unwrap();
    assert_eq!(seed7.certno, persons[0].certno);
    assert_ne!(seed7.certno, seed8.certno);
    std::fs::remove_dir_all(&dir).unwrap();
}
