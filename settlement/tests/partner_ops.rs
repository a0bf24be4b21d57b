//! Partner operations (issue 8): scopes (an operator grants a subset; a partner sees only what
//! its scope allows: ID number and name masked unless `card.identity`), one-time consent tokens
//! (single use, short expiry, bound to the application and the use), settlement status from the
//! medical tables (a real outpatient settlement, the figures of service_visits.rs), rate limits
//! per partner (429 with Retry-After, then let through), and the audit (who, operation, use,
//! scope, result; the person only as SHA-256("ssc-partner-subject-v1\0" ‖ psn_no), never an ID
//! number, name or card number in clear). Signed requests come from the Python client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod partner_support;
mod service_support;

use std::time::Duration;

use common::{BOTH, Db};
use partner_support::{
    CARD_CERTNO, CARD_NAME, CARD_NO, CARD_PSN_NO, P256_PRIV, PartnerHarness, SM2_PRIV, Signed,
    USE_MEDICAL, USE_OTHER, settle_outpatient,
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
