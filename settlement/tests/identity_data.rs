//! Personal data at rest and the card-use trail (issue 8), on SQLite and PostgreSQL:
//!
//! - the rows the sign-in writes hold no clear name, ID number, person number or card number
//!   (read back raw, bypassing the code), and the ciphertexts open only with the data keys the
//!   hsm wrapped: a node with another hsm (another KEK) refuses to start on this database;
//! - every operator or partner read is logged first and listed to the holder; none without a
//!   reason;
//! - the trail: the sign-in, a medical settlement replayed as HIS sends it (copied once,
//!   idempotently), an approved card payment (aggregates only), a partner verification; the
//!   holder sees their own rows only; operators get counts per day, region, category, kind.
//!
//! Expected values: fixtures/persons/cards.csv (赵文博 120101198805121236 T00012345; 陈晓's card
//! B10020032 is person 11000000000000000003 of 110000), the 2207 reply's own setl_id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod identity_support;
mod service_support;

use std::str::FromStr;

use common::{BOTH, Db, pg_url};
use identity_support::{CARD_NO, CERTNO, IdHarness, NAME, hsm_with_master};
use serde_json::Value;
use service_support::fixtures;
use settlement::directory::Category;
use settlement::identity::{Identity, IdentityError, IdentityOptions, TrailKind};
use sqlx::Connection;

/// Every identity row's bytes, read raw (SQLite file or the test's PostgreSQL schema).
async fn raw_rows(t: &IdHarness) -> Vec<Vec<u8>> {
    let tables = [
        "SELECT holder_id, psn_no_ct, name_ct, certno_ct, certno_hmac FROM identity_holders",
        "SELECT holder_id, card_hmac, card_no_hmac, status FROM identity_cards",
        "SELECT sid, holder_id, card_hmac, terminal FROM identity_sessions",
        "SELECT event_id, ref, holder_id, actor FROM card_trail",
        "SELECT read_id, holder_id, reader, reason FROM identity_pii_reads",
        "SELECT card_no_hmac, reporter, reporter FROM identity_lost_cards",
    ];
    let mut out = Vec::new();
    match t.h.test.db {
        Db::Sqlite => {
            let path = t.h.test.sqlite_path().unwrap();
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                .await
                .unwrap();
            for sql in tables {
                for row in sqlx::query(sql).fetch_all(&mut conn).await.unwrap() {
                    out.push(row_bytes(&row));
                }
            }
        }
        Db::Postgres => {
            let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
                .unwrap()
                .options([("search_path", t.h.test.pg_schema().unwrap())]);
            let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
            for sql in tables {
                for row in sqlx::query(sql).fetch_all(&mut conn).await.unwrap() {
                    out.push(row_bytes(&row));
                }
            }
        }
    }
    out
}

fn row_bytes<R: sqlx::Row>(row: &R) -> Vec<u8>
where
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let mut bytes = Vec::new();
    for i in 0..row.len() {
        match row.try_get::<Vec<u8>, _>(i) {
            Ok(value) => bytes.extend(value),
            Err(_) => bytes.extend(row.try_get::<String, _>(i).unwrap_or_default().into_bytes()),
        }
        bytes.push(0);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Replays a HIS visit file; returns the 2207 output.
async fn settle_visit(t: &IdHarness, file: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("his").join(file)).unwrap();
    let steps: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut mdtrt_id, mut sign_no, mut settled) = (String::new(), String::new(), Value::Null);
    for step in steps {
        let text = step
            .to_string()
            .replace("${mdtrt_id}", &mdtrt_id)
            .replace("${sign_no}", &sign_no);
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let output = t.h.ok(&envelope).await;
        if let Some(id) = output["data"]["mdtrt_id"]
            .as_str()
            .or(output["result"]["mdtrt_id"].as_str())
        {
            mdtrt_id = id.to_owned();
        }
        if let Some(no) = output["signinoutb"]["sign_no"].as_str() {
            sign_no = no.to_owned();
        }
        if envelope["infno"] == "2207" {
            settled = output;
        }
    }
    settled
}

#[tokio::test]
async fn personal_data_is_encrypted_and_every_read_is_logged_for_the_holder() {
    for db in BOTH {
        let t = IdHarness::new(db).await;
        let token = t.token().await;
        let holder_id = t.identity.holder_by_certno(CERTNO).await.unwrap();

        // Nothing in clear in the identity tables: not the name, the ID number, the person
        // number, the card number or the 卡识别码.
        let rows = raw_rows(&t).await;
        assert!(rows.len() >= 4, "{db:?}: {} rows", rows.len());
        let card_id = identity_support::card_id(identity_support::CARD);
        for row in &rows {
            for secret in [
                NAME,
                CERTNO,
                "12000000000000000001",
                CARD_NO,
                card_id.as_str(),
            ] {
                assert!(!contains(row, secret), "{db:?}: {secret} in clear");
            }
        }

        // A holder's read log starts empty; reads without a reason are refused and not logged.
        let reads = || {
            let t = &t;
            let token = token.clone();
            async move {
                let (status, body) = t
                    .request(
                        "GET",
                        "/identity/v1/me/reads",
                        &IdHarness::bearer(&token),
                        None,
                    )
                    .await;
                assert_eq!(status, 200);
                body["reads"].as_array().unwrap().clone()
            }
        };
        assert!(reads().await.is_empty());
        let refused = t
            .identity
            .operator_read(&holder_id, "console:op1", "  ")
            .await;
        assert!(matches!(refused, Err(IdentityError::ReasonRequired)));
        let refused = t
            .identity
            .operator_trail(&holder_id, "console:op1", "", 10)
            .await;
        assert!(matches!(refused, Err(IdentityError::ReasonRequired)));
        assert!(reads().await.is_empty());

        // An operator's read with a reason: the clear record, logged.
        let record = t
            .identity
            .operator_read(&holder_id, "console:op1", "complaint 0042")
            .await
            .unwrap();
        assert_eq!(record.name, NAME);
        assert_eq!(record.psn_no, "12000000000000000001");
        assert_eq!(record.certno_masked, "120101********1236");
        assert_eq!(record.insuplc_admdvs, 120_000);

        // A partner checks identity with the holder's consent: right and wrong data, both logged.
        let ok = t
            .identity
            .partner_verify_identity(
                &holder_id,
                CERTNO,
                NAME,
                "bank-icbc",
                "open account",
                "req-1",
            )
            .await
            .unwrap();
        let wrong_name = t
            .identity
            .partner_verify_identity(
                &holder_id,
                CERTNO,
                "赵文",
                "bank-icbc",
                "open account",
                "req-2",
            )
            .await
            .unwrap();
        let wrong_id = t
            .identity
            .partner_verify_identity(
                &holder_id,
                "120101198805121244",
                NAME,
                "bank-icbc",
                "open account",
                "req-3",
            )
            .await
            .unwrap();
        assert_eq!((ok, wrong_name, wrong_id), (true, false, false));
        let log = reads().await;
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(log[3]["reader_kind"], "operator");
        assert_eq!(log[3]["reason"], "complaint 0042");
        assert_eq!(log[3]["fields"], "psn_no,name,certno");
        assert!(
            log[..3]
                .iter()
                .all(|r| r["reader"] == "bank-icbc" && r["reader_kind"] == "partner")
        );

        // Another node process on the same database and hsm reads the same data; a node whose
        // hsm has another KEK cannot unwrap the data keys and refuses to start.
        let again = Identity::open(&t.h.ledger, t.hsm.clone(), IdentityOptions::default())
            .await
            .unwrap();
        assert_eq!(
            again.holder_profile(&holder_id).await.unwrap().name_masked,
            "赵**"
        );
        let (_other_dir, other_hsm) = hsm_with_master();
        let foreign = Identity::open(&t.h.ledger, other_hsm, IdentityOptions::default()).await;
        assert!(
            matches!(foreign, Err(IdentityError::Corrupt("identity_data_keys"))),
            "{foreign:?}"
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn the_trail_holds_every_use_and_shows_each_viewer_only_what_is_theirs() {
    for db in BOTH {
        let t = IdHarness::new(db).await;
        let token = t.token().await;
        let signin_holder = t.identity.holder_by_certno(CERTNO).await.unwrap();
        let settled = settle_visit(&t, "outpatient-beijing-310.json").await;
        let setl_id = settled["setlinfo"]["setl_id"].as_str().unwrap().to_owned();
        let setl_date = settled["setlinfo"]["setl_time"]
            .as_str()
            .map(|time| time[..10].to_owned());

        // A card payment approved by the switch (the row as payments writes it).
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        let today = settled["setlinfo"]["setl_time"].as_str().unwrap()[..10].to_owned();
        let insert = "INSERT INTO pay_txns (txn_id, kind, bank_code, terminal_id, merchant_id, \
                      stan, rrn, transmission, pan_masked, pan_sha256, amount_fen, approved_fen, \
                      response_code, status, business_date, created_at_ms) VALUES \
                      ('TXN1', 'purchase', 'ICBC', 'T0000001', '110000000000001', '000001', \
                      '000000000001', '1130120000', '621483*********7653', $1, 1500, 1500, '00', \
                      'approved', $2, $3)";
        let pan_hash = "a".repeat(64);
        let business_date = today.replace('-', "");
        match db {
            Db::Sqlite => {
                let path = t.h.test.sqlite_path().unwrap();
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query(insert)
                    .bind(&pan_hash)
                    .bind(&business_date)
                    .bind(now)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Db::Postgres => {
                let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
                    .unwrap()
                    .options([("search_path", t.h.test.pg_schema().unwrap())]);
                let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
                sqlx::query(insert)
                    .bind(&pan_hash)
                    .bind(&business_date)
                    .bind(now)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }

        // Copying is idempotent: the settlement and the payment once.
        assert_eq!(t.identity.collect_trail().await.unwrap(), 2);
        assert_eq!(t.identity.collect_trail().await.unwrap(), 0);
        t.identity
            .record_use(
                TrailKind::PartnerVerification,
                "req-9",
                &signin_holder,
                120_000,
                Category::Finance,
                "bank-icbc",
            )
            .await
            .unwrap();

        // The holder signed in sees their sign-in and the partner's check, not the settlement
        // of another person nor the payment.
        let (status, trail) = t
            .request(
                "GET",
                "/identity/v1/me/trail",
                &IdHarness::bearer(&token),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let kinds: Vec<&str> = trail["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, vec!["partner_verification", "signin"]);

        // The settled person's own trail (card B10020032 → person 11000000000000000003): the
        // settlement, where it happened (就医地 110000) and by whom.
        let settled_holder = t.identity.data_keys().holder_id("11000000000000000003");
        let theirs = t
            .identity
            .holder_trail(&settled_holder, None, 10)
            .await
            .unwrap();
        assert_eq!(theirs.len(), 1);
        assert_eq!(theirs[0].kind, TrailKind::Settlement);
        assert_eq!(theirs[0].reference, setl_id);
        assert_eq!(theirs[0].admdvs, 110_000);
        assert_eq!(theirs[0].category, "医疗保障");
        assert_eq!(theirs[0].actor, "H11010500001");
        if let Some(date) = setl_date {
            assert_eq!(theirs[0].day, date);
        }

        // Operators: counts only, per day / region / category / kind.
        let counts = t.identity.trail_aggregates(&today, &today).await.unwrap();
        // The sign-in and the payment happen at this node (region 000000 by default).
        let mut cells: Vec<(i64, &str, &str, i64)> = counts
            .iter()
            .map(|c| (c.admdvs, c.category.as_str(), c.kind.as_str(), c.uses))
            .collect();
        cells.sort();
        let mut expected = vec![
            (0, "公共服务", "signin", 1),
            (0, "金融服务", "payment", 1),
            (110_000, "医疗保障", "settlement", 1),
            (120_000, "金融服务", "partner_verification", 1),
        ];
        expected.sort();
        assert_eq!(cells, expected, "{counts:?}");
        assert!(matches!(
            t.identity.trail_aggregates("2026-13", &today).await,
            Err(IdentityError::BadField { .. })
        ));
        t.finish().await;
    }
}

#[tokio::test]
async fn a_read_at_a_terminal_is_one_trail_event_of_the_cards_holder() {
    let t = IdHarness::new(Db::Sqlite).await;
    let token = t.token().await;
    let read = serde_json::json!({ "card_no": CARD_NO, "ref": "r-0001", "category": "社会保险" });
    let (status, first) = t
        .request("POST", "/identity/v1/trail/reads", &[], Some(read.clone()))
        .await;
    assert_eq!(status, 201, "{first}");
    // The same read reported twice is one event.
    let (status, _) = t
        .request("POST", "/identity/v1/trail/reads", &[], Some(read))
        .await;
    assert_eq!(status, 201);
    let (_, trail) = t
        .request(
            "GET",
            "/identity/v1/me/trail",
            &IdHarness::bearer(&token),
            None,
        )
        .await;
    let events = trail["events"].as_array().unwrap();
    let reads: Vec<&Value> = events.iter().filter(|e| e["kind"] == "read").collect();
    assert_eq!(reads.len(), 1, "{events:?}");
    assert_eq!(reads[0]["category"], "社会保险");
    let unknown = serde_json::json!({ "card_no": "NOSUCHCARD", "ref": "r-0002" });
    let (status, refused) = t
        .request("POST", "/identity/v1/trail/reads", &[], Some(unknown))
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (404, Some("holder_unknown"))
    );
    let bad = serde_json::json!({ "card_no": CARD_NO, "ref": "r-3", "category": "没有" });
    let (status, _) = t
        .request("POST", "/identity/v1/trail/reads", &[], Some(bad))
        .await;
    assert_eq!(status, 400);
    t.finish().await;
}
