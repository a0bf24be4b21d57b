//! The insured persons' register at rest (issue 8: "ID numbers and names are stored encrypted
//! (keys from the hsm) or as keyed hashes where only matching is needed"), on SQLite and
//! PostgreSQL. The harness imports fixtures/persons/cards.csv in clear (no keys yet), as
//! `settlement import-persons` does; `seal_persons` with the hsm-wrapped data keys (what
//! `settlement serve --hsm-dir` runs at start) then:
//! - leaves no name, ID number or card number of any fixture person in the table's bytes (read
//!   raw, bypassing the code), and no lookup column equal to the unkeyed SHA-256 lookup key
//!   (computed here from its published layout, `"nhsa-person-v1\0" ‖ kind ‖ "\0" ‖ number`);
//! - still answers 1101 by ID number and by card number with the CSV's name and ID number, and
//!   the card sign-in still finds the holder;
//! - refuses a record copied onto another person's row (it is bound to its psn_no), and a node
//!   without the keys answers a clear error, never the ciphertext;
//! - a person imported in clear afterwards is still found, and sealed by the next run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod identity_support;
mod service_support;

use std::str::FromStr;
use std::sync::Arc;

use common::{BOTH, Db, pg_url};
use identity_support::{CARD, CARD_NO, IdHarness};
use serde_json::{Value, json};
use service_support::{envelope, fixtures, msgid, refdata};
use settlement::LedgerOptions;
use settlement::medical::{Medical, PersonImport, PersonRecord, seal_persons};
use settlement::nhsa::Envelope;
use sha2::{Digest, Sha256};
use sqlx::Connection;

/// A fixture person: psn_no, certno, name, insured region, card number.
struct Person {
    psn_no: String,
    certno: String,
    name: String,
    admdvs: String,
    card_no: String,
}

/// fixtures/persons/cards.csv read here (not through the crate's loader).
fn fixture_persons() -> Vec<Person> {
    let text = std::fs::read_to_string(fixtures().join("persons/cards.csv")).unwrap();
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (psn, cert, name, region, card) = (
        col("psn_no"),
        col("certno"),
        col("psn_name"),
        col("insuplc_admdvs"),
        col("card_no"),
    );
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Person {
                psn_no: f[psn].to_owned(),
                certno: f[cert].to_owned(),
                name: f[name].to_owned(),
                admdvs: f[region].to_owned(),
                card_no: f[card].to_owned(),
            }
        })
        .collect()
}

fn unkeyed(kind: &str, number: &str) -> Vec<u8> {
    Sha256::digest(
        [
            b"nhsa-person-v1\0",
            kind.as_bytes(),
            b"\0",
            number.as_bytes(),
        ]
        .concat(),
    )
    .to_vec()
}

/// (psn_no, record, certno key, card key) of every row, read raw.
type RawRow = (String, String, Vec<u8>, Option<Vec<u8>>);
const SELECT: &str = "SELECT psn_no, record, certno_sha256, card_no_sha256 FROM persons";

async fn raw_rows(t: &IdHarness) -> Vec<RawRow> {
    match t.h.test.db {
        Db::Sqlite => {
            let path = t.h.test.sqlite_path().unwrap();
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            sqlx::query_as(SELECT).fetch_all(&mut conn).await.unwrap()
        }
        Db::Postgres => {
            let mut conn = pg(t).await;
            sqlx::query_as(SELECT).fetch_all(&mut conn).await.unwrap()
        }
    }
}

async fn pg(t: &IdHarness) -> sqlx::PgConnection {
    let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
        .unwrap()
        .options([("search_path", t.h.test.pg_schema().unwrap())]);
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

/// Runs one statement on the test database, bypassing the code.
async fn execute(t: &IdHarness, sql: &'static str, binds: &[String]) {
    match t.h.test.db {
        Db::Sqlite => {
            let path = t.h.test.sqlite_path().unwrap();
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(b.clone());
            }
            query.execute(&mut conn).await.unwrap();
        }
        Db::Postgres => {
            let mut conn = pg(t).await;
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(b.clone());
            }
            query.execute(&mut conn).await.unwrap();
        }
    }
}

fn person_query(p: &Person, by_card: bool, n: u32) -> Value {
    let data = if by_card {
        json!({"mdtrt_cert_type": "03", "mdtrt_cert_no": p.card_no})
    } else {
        json!({"mdtrt_cert_type": "02", "certno": p.certno})
    };
    envelope(
        "1101",
        &msgid("H11010500001", n),
        "H11010500001",
        &p.admdvs,
        json!({ "data": data }),
    )
}

fn leaks(row: &RawRow, persons: &[Person]) -> Vec<String> {
    let bytes = [
        row.1.as_bytes(),
        &row.2,
        row.3.as_deref().unwrap_or_default(),
    ]
    .concat();
    let text = String::from_utf8_lossy(&bytes);
    persons
        .iter()
        .flat_map(|p| [&p.name, &p.certno, &p.card_no])
        .filter(|clear| !clear.is_empty() && text.contains(clear.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn person_records_are_sealed_and_still_served() {
    let persons = fixture_persons();
    assert!(persons.len() >= 6, "fixture persons: {}", persons.len());
    for db in BOTH {
        let t = IdHarness::new(db).await;

        // Imported without keys: the clear register this test exists to catch.
        let before = raw_rows(&t).await;
        assert_eq!(before.len(), persons.len());
        assert!(before.iter().any(|r| !leaks(r, &persons).is_empty()));

        let keys = t.identity.shared_data_keys();
        let sealed = seal_persons(&t.h.ledger, keys.clone()).await.unwrap();
        assert_eq!(sealed, persons.len());
        assert_eq!(seal_persons(&t.h.ledger, keys.clone()).await.unwrap(), 0);

        let after = raw_rows(&t).await;
        assert_eq!(after.len(), persons.len());
        for row in &after {
            assert!(row.1.starts_with("sealed:v1:"), "{}", row.0);
            assert_eq!(leaks(row, &persons), Vec::<String>::new(), "{}", row.0);
            let p = persons.iter().find(|p| p.psn_no == row.0).unwrap();
            assert_ne!(row.2, unkeyed("certno", &p.certno));
            if let Some(card) = &row.3 {
                assert_ne!(*card, unkeyed("card", &p.card_no));
            }
        }

        // 1101 by ID number and by card number: the CSV's person.
        let mut n = 1;
        for p in &persons {
            for by_card in [false, true] {
                if by_card && p.card_no.is_empty() {
                    continue;
                }
                n += 1;
                let out = t.h.ok(&person_query(p, by_card, n)).await;
                assert_eq!(out["baseinfo"]["psn_no"], p.psn_no.as_str());
                assert_eq!(out["baseinfo"]["psn_name"], p.name.as_str());
                assert_eq!(out["baseinfo"]["certno"], p.certno.as_str());
                assert_eq!(out["insuinfo"][0]["insuplc_admdvs"], p.admdvs.as_str());
            }
        }
        // The card sign-in finds the holder through the keyed card lookup.
        let (status, body) = t.sign_in(CARD, CARD_NO, true).await;
        assert_eq!(status, 201, "{body}");

        // A record copied onto another person's row does not open there (a fresh node with the
        // keys, so no cached record answers).
        let (a, b) = (&persons[0], &persons[1]);
        let record_a = &after.iter().find(|r| r.0 == a.psn_no).unwrap().1;
        execute(
            &t,
            "UPDATE persons SET record = $1 WHERE psn_no = $2",
            &[record_a.clone(), b.psn_no.clone()],
        )
        .await;
        let keyed = Arc::new(t.h.test.open(LedgerOptions::default()).await);
        assert!(keyed.person_vault().install(keys.clone()));
        let fresh = Medical::new(keyed.clone(), refdata());
        let body = person_query(b, false, 900).to_string();
        let error = fresh
            .handle(&Envelope::parse(body.as_bytes()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.code(), "E9999", "{error}");
        drop(fresh);

        // A node on this database without the keys: a clear refusal, not the ciphertext.
        let bare = Arc::new(t.h.test.open(LedgerOptions::default()).await);
        let medical = Medical::new(bare.clone(), refdata());
        let c = &persons[2];
        let body = person_query(c, false, 901).to_string();
        let error = medical
            .handle(&Envelope::parse(body.as_bytes()).unwrap())
            .await
            .unwrap_err();
        assert_eq!(error.code(), "E2401", "{error}");
        assert!(error.to_string().contains("hsm"), "{error}");

        // A person imported in clear later (keys not given to the importer) is still found,
        // then sealed by the next run.
        let late = PersonRecord {
            psn_no: "12000000000000000099".into(),
            psn_name: "钱七".into(),
            certno: "120101199101010017".into(),
            card_no: Some("T00099999".into()),
            gend: "1".into(),
            brdy: "1991-01-01".into(),
            insutype: "310".into(),
            psn_type: "11".into(),
            insuplc_admdvs: "120000".into(),
            emp_name: String::new(),
        };
        medical
            .import_persons(&[PersonImport {
                record: late.clone(),
                acct_opening: settlement::Fen::from_fen(0).unwrap(),
            }])
            .await
            .unwrap();
        let late_person = Person {
            psn_no: late.psn_no.clone(),
            certno: late.certno.clone(),
            name: late.psn_name.clone(),
            admdvs: late.insuplc_admdvs.clone(),
            card_no: "T00099999".into(),
        };
        let out = t.h.ok(&person_query(&late_person, true, 902)).await;
        assert_eq!(out["baseinfo"]["psn_name"], "钱七");
        assert_eq!(seal_persons(&t.h.ledger, keys).await.unwrap(), 1);
        let rows = raw_rows(&t).await;
        let row = rows.iter().find(|r| r.0 == late.psn_no).unwrap();
        assert!(leaks(row, &[late_person]).is_empty());
        drop(medical);
        for ledger in [bare, keyed] {
            Arc::try_unwrap(ledger).unwrap().close().await;
        }
        t.finish().await;
    }
}
