//! Partner operations (issue 8): scopes (an operator grants a subset; a partner sees only what
//! its scope allows: ID number and name masked unless `card.identity`), one-time consent tokens
//! (single use, short expiry, bound to the application and the use), settlement status from the
//! medical tables (a real outpatient settlement, the figures of service_visits.rs), rate limits
//! per partner (429 with Retry-After, then let through), and the audit (who, operation, use,
//! scope, result; the person only as SHA-256("ssc-partner-subject-v1\0" ‖ psn_no), never an ID
//! number, name or card number in clear). Signed requests come from the Python client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod identity_support;
mod partner_support;
mod service_support;

use std::time::Duration;

use common::{BOTH, Db};
use partner_support::{
    CARD_CERTNO, CARD_NAME, CARD_NO, CARD_PSN_NO, OPERATOR, P256_PRIV, PartnerHarness, SM2_PRIV,
    Signed, USE_MEDICAL, USE_OTHER, settle_outpatient,
};
use serde_json::json;
use sha2::{Digest, Sha256};

fn verify_call(
    private: &'static str,
    alg: &'static str,
    key_id: &str,
    use_number: &str,
    token: &str,
) -> Signed {
    Signed {
        alg,
        private,
        key_id: key_id.to_owned(),
        method: "POST",
        path: "/api/partner/v1/cards/verify".to_owned(),
        body: Some(
            json!({"use": use_number, "consent_token": token, "certno": CARD_CERTNO, "name": "陈晓晓"})
                .to_string(),
        ),
        ..Signed::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_consent_settlement_status_and_audit() {
    for db in BOTH {
        operations(db).await;
    }
}

async fn operations(db: Db) {
    let h = PartnerHarness::start(db).await;
    // Bank A asks for settlement status and card verification, is granted settlement status
    // only. Department B is granted card verification; C also card.identity.
    let (app_a, key_a) = h
        .register(
            "BANK-A",
            "sm2",
            SM2_PRIV,
            &[
                (USE_MEDICAL, "settlement.status"),
                (USE_MEDICAL, "card.verify"),
            ],
            None,
        )
        .await;
    let approved = h
        .approve(&app_a, Some(&[(USE_MEDICAL, "settlement.status")]), None)
        .await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    assert_eq!(
        approved.body["granted"],
        json!([{"use": USE_MEDICAL, "operation": "settlement.status"}])
    );
    assert_eq!(approved.body["requested"].as_array().unwrap().len(), 2);
    // A scope that was not requested cannot be granted.
    let (app_x, _) = h
        .register(
            "BANK-X",
            "sm2",
            SM2_PRIV,
            &[(USE_MEDICAL, "card.verify")],
            None,
        )
        .await;
    let refused = h
        .approve(&app_x, Some(&[(USE_MEDICAL, "card.identity")]), None)
        .await;
    assert_eq!((refused.status, refused.code()), (400, "bad_scope"));

    let (app_b, key_b) = h
        .register(
            "DEPT-B",
            "p256",
            P256_PRIV,
            &[(USE_MEDICAL, "card.verify")],
            None,
        )
        .await;
    h.approve(&app_b, None, None).await;
    let (app_c, key_c) = h
        .register(
            "DEPT-C",
            "sm2",
            SM2_PRIV,
            &[(USE_MEDICAL, "card.verify"), (USE_MEDICAL, "card.identity")],
            None,
        )
        .await;
    h.approve(&app_c, None, None).await;

    // Settlement status of a real outpatient settlement (service_visits.rs checks these
    // figures against the policy table): 3150.00 total, fund 915.60, account 12.34, cash
    // 2222.06.
    let setlinfo = settle_outpatient(&h.core).await;
    let setl_id = setlinfo["setl_id"].as_str().unwrap().to_owned();
    let status = Signed {
        alg: "sm2",
        private: SM2_PRIV,
        key_id: key_a.clone(),
        method: "GET",
        path: format!("/api/partner/v1/settlements/{setl_id}"),
        query: Some(format!("use={USE_MEDICAL}")),
        ..Signed::default()
    };
    let reply = h.signed_one(&status).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({
            "setl_id": setl_id,
            "status": "settled",
            "fixmedins_code": "H11010500001",
            "insuplc_admdvs": "110000",
            "setl_date": setlinfo["setl_time"].as_str().unwrap()[..10],
            "medfee_sumamt": "3150.00",
            "fund_pay_sumamt": "915.60",
            "acct_pay": "12.34",
            "psn_cash_pay": "2222.06",
        })
    );
    // Under a use it holds no grant for, and by an application without the scope.
    let reply = h
        .signed_one(&Signed {
            query: Some(format!("use={USE_OTHER}")),
            ..status.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (403, "scope_denied"));
    let reply = h
        .signed_one(&Signed {
            alg: "p256",
            private: P256_PRIV,
            key_id: key_b.clone(),
            ..status.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (403, "scope_denied"));
    // A use that is not in the directory; a query parameter the route does not take.
    let reply = h
        .signed_one(&Signed {
            query: Some("use=Z999".to_owned()),
            ..status.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (400, "bad_use"));
    let reply = h
        .signed_one(&Signed {
            query: Some(format!("use={USE_MEDICAL}&x=1")),
            ..status.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (400, "bad_query"));

    // Consent issuing: not for an application without the scope, not without the PIN, not
    // without the issuer's headers, not for an unknown card, not longer than 300 s.
    let reply = h.consent(CARD_NO, &app_a, USE_MEDICAL, json!({})).await;
    assert_eq!((reply.status, reply.code()), (403, "scope_denied"));
    let reply = h
        .consent(CARD_NO, &app_b, USE_MEDICAL, json!({"pin_verified": false}))
        .await;
    assert_eq!((reply.status, reply.code()), (400, "bad_consent_request"));
    let reply = h
        .consent(CARD_NO, &app_b, USE_MEDICAL, json!({"ttl_s": 301}))
        .await;
    assert_eq!((reply.status, reply.code()), (400, "bad_consent_request"));
    let reply = h
        .post(
            "/api/partner/v1/consents",
            &json!({"card_no": CARD_NO, "app_id": app_b, "use": USE_MEDICAL, "channel": "kiosk", "pin_verified": true}),
            &[],
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (401, "issuer_unauthenticated")
    );
    let reply = h.consent("B99999999", &app_b, USE_MEDICAL, json!({})).await;
    assert_eq!((reply.status, reply.code()), (404, "card_not_found"));

    // B verifies with a consent: masked identity, the claimed ID number matches, the claimed
    // name does not.
    let consent = h.consent(CARD_NO, &app_b, USE_MEDICAL, json!({})).await;
    assert_eq!(consent.status, 201, "{:?}", consent.body);
    let token = consent.body["consent_token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 64);
    // C cannot use B's consent.
    let reply = h
        .signed_one(&verify_call(SM2_PRIV, "sm2", &key_c, USE_MEDICAL, &token))
        .await;
    assert_eq!((reply.status, reply.code()), (403, "consent_invalid"));
    let verify_b = verify_call(P256_PRIV, "p256", &key_b, USE_MEDICAL, &token);
    let reply = h.signed_one(&verify_b).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    // The card reference: first 16 bytes of SHA-256("ssc-partner-card-v1\0" app "\0" card).
    let card_ref = |app: &str| {
        let digest = Sha256::digest(format!("ssc-partner-card-v1\0{app}\0{CARD_NO}").as_bytes());
        hex::encode(&digest[..16])
    };
    assert_eq!(
        reply.body,
        json!({
            "card_ref": card_ref(&app_b),
            "card_no_masked": "B*******2",
            "card_status": "normal",
            "insuplc_admdvs": "110000",
            "certno_match": true,
            "name_match": false,
            "certno": "1****************3",
            "name": "陈*",
            "identity_disclosed": false,
        })
    );
    // Single use.
    let reply = h.signed_one(&verify_b).await;
    assert_eq!((reply.status, reply.code()), (403, "consent_used"));

    // C holds card.identity: the ID number and name in clear; a consent is bound to its use.
    let consent = h.consent(CARD_NO, &app_c, USE_MEDICAL, json!({})).await;
    let token_c = consent.body["consent_token"].as_str().unwrap().to_owned();
    let reply = h
        .signed_one(&verify_call(SM2_PRIV, "sm2", &key_c, USE_OTHER, &token_c))
        .await;
    assert_eq!((reply.status, reply.code()), (403, "scope_denied"));
    let reply = h
        .signed_one(&verify_call(SM2_PRIV, "sm2", &key_c, USE_MEDICAL, &token_c))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["certno"], CARD_CERTNO);
    assert_eq!(reply.body["name"], CARD_NAME);
    assert_eq!(reply.body["identity_disclosed"], true);
    assert_eq!(reply.body["card_ref"], card_ref(&app_c));

    // Short expiry: a 1-second consent used after 1.5 s.
    let consent = h
        .consent(CARD_NO, &app_b, USE_MEDICAL, json!({"ttl_s": 1}))
        .await;
    let short = consent.body["consent_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let reply = h
        .signed_one(&verify_call(P256_PRIV, "p256", &key_b, USE_MEDICAL, &short))
        .await;
    assert_eq!((reply.status, reply.code()), (403, "consent_expired"));
    // An unknown token.
    let reply = h
        .signed_one(&verify_call(
            P256_PRIV,
            "p256",
            &key_b,
            USE_MEDICAL,
            &"ab".repeat(32),
        ))
        .await;
    assert_eq!((reply.status, reply.code()), (403, "consent_invalid"));

    // A lost card gives no consent.
    let lost = h
        .post(
            "/api/partner/v1/admin/cards/status",
            &json!({"card_no": CARD_NO, "status": "lost"}),
            &[(
                "authorization",
                format!("Bearer {}", partner_support::OPERATOR.1),
            )],
        )
        .await;
    assert_eq!(lost.status, 200, "{:?}", lost.body);
    let reply = h.consent(CARD_NO, &app_b, USE_MEDICAL, json!({})).await;
    assert_eq!((reply.status, reply.code()), (409, "card_lost"));

    // The audit: B's verification rows name the use, the scope and the person's hashed
    // reference, computed here from the psn_no.
    let subject = hex::encode(Sha256::digest(
        format!("ssc-partner-subject-v1\0{CARD_PSN_NO}").as_bytes(),
    ));
    let rows = h.audit(&app_b).await;
    let verifications: Vec<_> = rows
        .iter()
        .filter(|r| r["operation"] == "card.verify")
        .map(|r| {
            (
                r["result"].as_str().unwrap(),
                r["use"].as_str().unwrap(),
                r["scope"].as_str().unwrap(),
                r["subject_ref"].as_str(),
                r["http_status"].as_u64().unwrap(),
            )
        })
        .collect();
    let scope = format!("{USE_MEDICAL}:card.verify");
    assert_eq!(
        verifications,
        [
            (
                "ok",
                USE_MEDICAL,
                scope.as_str(),
                Some(subject.as_str()),
                200
            ),
            (
                "consent_used",
                USE_MEDICAL,
                scope.as_str(),
                Some(subject.as_str()),
                403
            ),
            (
                "consent_expired",
                USE_MEDICAL,
                scope.as_str(),
                Some(subject.as_str()),
                403
            ),
            ("consent_invalid", USE_MEDICAL, scope.as_str(), None, 403),
        ]
    );
    // (The call without issuer headers is audited without an application: its body is not
    // read before the issuer is authenticated.)
    let issued: Vec<_> = rows
        .iter()
        .filter(|r| r["operation"] == "consent.issue")
        .map(|r| (r["caller"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        issued,
        [
            ("issuer:kiosk1", "bad_consent_request"),
            ("issuer:kiosk1", "bad_consent_request"),
            ("issuer:kiosk1", "card_not_found"),
            ("issuer:kiosk1", "ok"),
            ("issuer:kiosk1", "ok"),
            ("issuer:kiosk1", "card_lost"),
        ]
    );
    // A's settlement status row.
    let rows_a = h.audit(&app_a).await;
    let ok = rows_a
        .iter()
        .find(|r| r["operation"] == "settlement.status" && r["result"] == "ok")
        .unwrap();
    assert_eq!(ok["scope"], format!("{USE_MEDICAL}:settlement.status"));
    assert_eq!(ok["subject_ref"], subject.as_str());

    // No ID number, name or card number in clear anywhere in the audit table.
    let everything = h
        .admin_get("/api/partner/v1/admin/audit?limit=500")
        .await
        .body
        .to_string();
    for secret in [CARD_CERTNO, CARD_NAME, CARD_NO, CARD_PSN_NO] {
        assert!(!everything.contains(secret), "{secret} in the audit");
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_partner_with_retry_after() {
    let h = PartnerHarness::start(Db::Sqlite).await;
    // Two applications of one partner share its limit: 6 calls per minute (one every 10 s),
    // burst 3.
    let (app1, key1) = h
        .register(
            "BANK-R",
            "sm2",
            SM2_PRIV,
            &[(USE_MEDICAL, "settlement.status")],
            None,
        )
        .await;
    let (app2, key2) = h
        .register(
            "BANK-R",
            "p256",
            P256_PRIV,
            &[(USE_MEDICAL, "settlement.status")],
            None,
        )
        .await;
    assert_eq!(h.approve(&app1, None, Some((6, 3))).await.status, 200);
    assert_eq!(h.approve(&app2, None, None).await.status, 200);
    let me = |alg: &'static str, private: &'static str, key: &str, count: u32| Signed {
        alg,
        private,
        key_id: key.to_owned(),
        method: "GET",
        path: "/api/partner/v1/me".to_owned(),
        extra: vec![format!("--count={count}")],
        ..Signed::default()
    };
    // Two calls of each application, distinct nonces: the burst lets three through.
    let mut replies = h.signed(&me("sm2", SM2_PRIV, &key1, 2)).await;
    replies.extend(h.signed(&me("p256", P256_PRIV, &key2, 2)).await);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "{replies:?}");
    let refused = &replies[3];
    assert_eq!(refused.code(), "rate_limited");
    // The next token is at most 10 s away (one per 10 s), rounded up to whole seconds.
    let wait: u64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    // Waiting Retry-After seconds lets the partner through again.
    tokio::time::sleep(Duration::from_millis(wait * 1_000 + 100)).await;
    assert_eq!(
        h.signed_one(&me("sm2", SM2_PRIV, &key1, 1)).await.status,
        200
    );
    let rows = h.audit(&app2).await;
    assert!(
        rows.iter()
            .any(|r| r["result"] == "rate_limited" && r["http_status"] == 429),
        "{rows:#?}"
    );
    h.finish().await;
}

/// The card keys of the partner tables once the personal-data keys are installed (`settlement
/// serve` with its hsm, issue 8: "keyed hashes where only matching is needed"). A card number (a
/// letter and 8 digits) is short enough to enumerate, so neither the reference an application
/// is given nor the key under which `card_status_events` and `partner_card_links` store a card
/// may then be a plain SHA-256 of it. Sealing the persons (`seal_persons`) moves the card's
/// partner rows written before the keys to the keyed key; what came before still holds: an
/// application keeps the reference it was given, a loss reported before still counts, and so
/// does one a node without the keys writes later under the legacy key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_keys_are_keyed_once_the_personal_data_keys_are_installed() {
    for db in BOTH {
        card_keys(db).await;
    }
}

/// The legacy reference, from its published layout: the first 16 bytes of
/// SHA-256("ssc-partner-card-v1\0" ‖ app ‖ "\0" ‖ card_no), hex.
fn unkeyed_ref(app: &str) -> String {
    hex::encode(&Sha256::digest(format!("ssc-partner-card-v1\0{app}\0{CARD_NO}").as_bytes())[..16])
}

/// The legacy (unkeyed) lookup key of the card: SHA-256("nhsa-person-v1\0card\0" ‖ card_no).
fn unkeyed_card_key() -> Vec<u8> {
    Sha256::digest(format!("nhsa-person-v1\0card\0{CARD_NO}").as_bytes()).to_vec()
}

/// A connection past the code: the SQLite file or the test's PostgreSQL schema.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

async fn raw_connection(h: &PartnerHarness) -> Raw {
    use sqlx::Connection;
    use std::str::FromStr;
    match h.core.test.db {
        Db::Sqlite => {
            let path = h.core.test.sqlite_path().unwrap();
            Raw::Sqlite(
                sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
                    .await
                    .unwrap(),
            )
        }
        Db::Postgres => {
            let options = sqlx::postgres::PgConnectOptions::from_str(&common::pg_url())
                .unwrap()
                .options([("search_path", h.core.test.pg_schema().unwrap())]);
            Raw::Postgres(sqlx::PgConnection::connect_with(&options).await.unwrap())
        }
    }
}

/// Rows of `sql`, read past the code.
async fn raw<T>(h: &PartnerHarness, sql: &'static str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match raw_connection(h).await {
        Raw::Sqlite(mut conn) => sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap(),
        Raw::Postgres(mut conn) => sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap(),
    }
}

/// A `lost` status row under the card's legacy key, as a node without the keys writes it.
async fn raw_legacy_lost(h: &PartnerHarness) {
    const SQL: &str = "INSERT INTO card_status_events (card_no_sha256, status, at_ms, by_account) \
                       VALUES ($1, 'lost', 0, 'keyless-node')";
    let key = unkeyed_card_key();
    match raw_connection(h).await {
        Raw::Sqlite(mut conn) => {
            sqlx::query(SQL).bind(key).execute(&mut conn).await.unwrap();
        }
        Raw::Postgres(mut conn) => {
            sqlx::query(SQL).bind(key).execute(&mut conn).await.unwrap();
        }
    }
}

/// A consent for `app`, then its verification: the reply's `card_ref`.
async fn verified_ref(
    h: &PartnerHarness,
    app: &str,
    alg: &'static str,
    private: &'static str,
    key: &str,
) -> String {
    let consent = h.consent(CARD_NO, app, USE_MEDICAL, json!({})).await;
    assert_eq!(consent.status, 201, "{:?}", consent.body);
    let token = consent.body["consent_token"].as_str().unwrap();
    let reply = h
        .signed_one(&verify_call(private, alg, key, USE_MEDICAL, token))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body["card_ref"].as_str().unwrap().to_owned()
}

async fn set_status(h: &PartnerHarness, status: &str) -> serde_json::Value {
    let reply = h
        .post(
            "/api/partner/v1/admin/cards/status",
            &json!({"card_no": CARD_NO, "status": status}),
            &[("authorization", format!("Bearer {}", OPERATOR.1))],
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

async fn card_keys(db: Db) {
    let h = PartnerHarness::start(db).await;
    let scopes = [(USE_MEDICAL, "card.verify"), (USE_MEDICAL, "webhook.card")];
    let hook = Some("http://127.0.0.1:9/hook");
    let (bank, bank_key) = h.register("BANK-K", "sm2", SM2_PRIV, &scopes, hook).await;
    h.approve(&bank, None, None).await;
    let (dept, dept_key) = h.register("DEPT-K", "p256", P256_PRIV, &scopes, hook).await;
    h.approve(&dept, None, None).await;

    // Before the keys: the bank is given the legacy reference; the department is given a
    // consent it will use only after the keys; then the card is reported lost.
    let bank_ref = verified_ref(&h, &bank, "sm2", SM2_PRIV, &bank_key).await;
    assert_eq!(bank_ref, unkeyed_ref(&bank));
    let early = h.consent(CARD_NO, &dept, USE_MEDICAL, json!({})).await;
    assert_eq!(early.status, 201, "{:?}", early.body);
    let early_token = early.body["consent_token"].as_str().unwrap().to_owned();
    assert_eq!(
        set_status(&h, "lost").await,
        json!({"status": "lost", "notices_queued": 1})
    );

    // The keys are installed, as `settlement serve --hsm-dir` does at start.
    let (_hsm_dir, hsm) = identity_support::hsm_with_master();
    let identity = settlement::identity::Identity::open(
        &h.core.ledger,
        hsm,
        settlement::identity::IdentityOptions::default(),
    )
    .await
    .unwrap();
    let keys = identity.shared_data_keys();
    settlement::medical::seal_persons(&h.core.ledger, keys.clone())
        .await
        .unwrap();

    // The loss reported before the keys still stands.
    let reply = h.consent(CARD_NO, &bank, USE_MEDICAL, json!({})).await;
    assert_eq!((reply.status, reply.code()), (409, "card_lost"));
    // The department's consent from before the keys: the card is lost, and its reference is
    // new, so keyed: the first 16 bytes of HMAC-SHA-256 under the data key of
    // "partner-card-ref" ‖ 0 ‖ app ‖ 0 ‖ card_no.
    let reply = h
        .signed_one(&verify_call(
            P256_PRIV,
            "p256",
            &dept_key,
            USE_MEDICAL,
            &early_token,
        ))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["card_status"], "lost");
    let dept_ref = reply.body["card_ref"].as_str().unwrap().to_owned();
    let keyed_ref =
        hex::encode(&keys.keyed_hash("partner-card-ref", &format!("{dept}\0{CARD_NO}"))[..16]);
    assert_eq!(dept_ref, keyed_ref);
    assert_ne!(dept_ref, unkeyed_ref(&dept));
    // Found again.
    assert_eq!(
        set_status(&h, "normal").await,
        json!({"status": "normal", "notices_queued": 0})
    );
    // Each application keeps the reference it was given.
    assert_eq!(
        verified_ref(&h, &bank, "sm2", SM2_PRIV, &bank_key).await,
        bank_ref
    );
    assert_eq!(
        verified_ref(&h, &dept, "p256", P256_PRIV, &dept_key).await,
        dept_ref
    );
    // A node without the keys sharing the database writes under the legacy key: its report
    // counts (the latest row under any key wins), and so does a later one under the keyed key.
    raw_legacy_lost(&h).await;
    let reply = h.consent(CARD_NO, &bank, USE_MEDICAL, json!({})).await;
    assert_eq!((reply.status, reply.code()), (409, "card_lost"));
    assert_eq!(
        set_status(&h, "normal").await,
        json!({"status": "normal", "notices_queued": 0})
    );
    assert_eq!(
        verified_ref(&h, &bank, "sm2", SM2_PRIV, &bank_key).await,
        bank_ref
    );
    // Lost again: one notice per application, each with the reference it holds.
    assert_eq!(
        set_status(&h, "lost").await,
        json!({"status": "lost", "notices_queued": 2})
    );
    let bodies: Vec<(String, String)> = raw(
        &h,
        "SELECT app_id, body FROM partner_webhooks WHERE event_type = 'card.lost' \
         ORDER BY created_at_ms, app_id",
    )
    .await;
    let mut got: Vec<(String, String)> = bodies
        .iter()
        .map(|(app, body)| {
            let body: serde_json::Value = serde_json::from_str(body).unwrap();
            (app.clone(), body["card_ref"].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    let mut expected = vec![
        (bank.clone(), bank_ref.clone()),
        (bank.clone(), bank_ref.clone()),
        (dept.clone(), dept_ref.clone()),
    ];
    expected.sort();
    assert_eq!(got, expected, "{bodies:?}");

    // At rest: sealing moved the rows written before the keys to the keyed key (the status
    // rows in their order); only the keyless node's row holds the legacy one.
    let events: Vec<(Vec<u8>, String)> = raw(
        &h,
        "SELECT card_no_sha256, status FROM card_status_events ORDER BY seq",
    )
    .await;
    let statuses: Vec<&str> = events.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["lost", "normal", "lost", "normal", "lost"]);
    let keyed = events[0].0.clone();
    assert_ne!(keyed, unkeyed_card_key());
    let legacy_rows: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].0 == unkeyed_card_key())
        .collect();
    assert_eq!(legacy_rows, [2]);
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, (key, _))| i == 2 || *key == keyed)
    );
    let links: Vec<(String, Vec<u8>, String)> = raw(
        &h,
        "SELECT app_id, card_no_sha256, card_ref FROM partner_card_links ORDER BY first_at_ms",
    )
    .await;
    assert_eq!(
        links,
        [
            (bank.clone(), keyed.clone(), bank_ref.clone()),
            (dept.clone(), keyed.clone(), dept_ref.clone())
        ]
    );
    let consents: Vec<(Vec<u8>,)> = raw(&h, "SELECT card_no_sha256 FROM partner_consents").await;
    assert!(!consents.is_empty());
    assert!(consents.iter().all(|(key,)| *key == keyed));
    h.finish().await;
}
