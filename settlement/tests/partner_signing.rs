//! Signed partner requests (issue 8, Must show): requests signed by an independent
//! implementation (Python `gmssl` for SM2, `cryptography` for ECDSA P-256, in
//! partner_client/partner_client.py, written from the scheme's description) are accepted;
//! tampered, expired, future-dated and replayed ones, unknown keys, malformed headers and
//! unapproved applications are refused with the precise code of the catalogue
//! (partner/error.rs); each call leaves an audit row with that code. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod partner_support;
mod service_support;

use common::{BOTH, Db};
use partner_support::{
    P256_PRIV, PartnerHarness, SM2_PRIV, SM2_PRIV_OTHER, Signed, USE_MEDICAL, public_key,
};

fn me(alg: &'static str, private: &'static str, key_id: &str) -> Signed {
    Signed {
        alg,
        private,
        key_id: key_id.to_owned(),
        method: "GET",
        path: "/api/partner/v1/me".to_owned(),
        ..Signed::default()
    }
}

#[test]
fn python_public_keys_match_the_published_p256_vector() {
    // RFC 6979 A.2.5: the public key of x = C9AFA9D8... is Ux = 60FED4BA..., Uy = 7903FE10...
    let public = public_key("p256", P256_PRIV);
    assert_eq!(
        public,
        "0460FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6\
         7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_an_independent_client() {
    for db in BOTH {
        signatures(db).await;
    }
}

async fn signatures(db: Db) {
    let h = PartnerHarness::start(db).await;
    let scopes = [(USE_MEDICAL, "settlement.status")];
    let (sm2_app, sm2_key) = h.register("BANK-SM2", "sm2", SM2_PRIV, &scopes, None).await;
    let (p256_app, p256_key) = h
        .register("BANK-P256", "p256", P256_PRIV, &scopes, None)
        .await;

    // Pending: the signature checks, the application is not approved yet.
    let reply = h.signed_one(&me("sm2", SM2_PRIV, &sm2_key)).await;
    assert_eq!((reply.status, reply.code()), (403, "app_not_approved"));

    assert_eq!(h.approve(&sm2_app, None, None).await.status, 200);
    assert_eq!(h.approve(&p256_app, None, None).await.status, 200);

    // Accepted: SM2 (gmssl) and P-256 (cryptography).
    let reply = h.signed_one(&me("sm2", SM2_PRIV, &sm2_key)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["app_id"], sm2_app.as_str());
    assert_eq!(reply.body["state"], "approved");
    assert_eq!(reply.body["granted"][0]["use"], USE_MEDICAL);
    let reply = h.signed_one(&me("p256", P256_PRIV, &p256_key)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["app_id"], p256_app.as_str());

    // A query and a body are covered too (a settlement that does not exist: the signature
    // passed, the operation answered).
    let lookup = Signed {
        path: "/api/partner/v1/settlements/S0001".to_owned(),
        query: Some(format!("use={USE_MEDICAL}")),
        ..me("sm2", SM2_PRIV, &sm2_key)
    };
    let reply = h.signed_one(&lookup).await;
    assert_eq!((reply.status, reply.code()), (404, "settlement_not_found"));

    // Tampered path: signed for S0001, sent to S0002.
    let reply = h
        .signed_one(&Signed {
            extra: vec![
                "--send-path".into(),
                "/api/partner/v1/settlements/S0002".into(),
            ],
            ..lookup.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (401, "signature_invalid"));

    // Tampered body: signed one JSON, sent another.
    let verify = Signed {
        method: "POST",
        path: "/api/partner/v1/cards/verify".to_owned(),
        body: Some(format!(r#"{{"use":"{USE_MEDICAL}","consent_token":"aa"}}"#)),
        ..me("p256", P256_PRIV, &p256_key)
    };
    let reply = h
        .signed_one(&Signed {
            extra: vec![
                "--send-body".into(),
                format!(r#"{{"use":"{USE_MEDICAL}","consent_token":"ab"}}"#),
            ],
            ..verify.clone()
        })
        .await;
    assert_eq!((reply.status, reply.code()), (401, "signature_invalid"));
    // The same request untampered passes the signature (and is refused by scope).
    let reply = h.signed_one(&verify).await;
    assert_eq!((reply.status, reply.code()), (403, "scope_denied"));

    // Signed by another key under this key id.
    let reply = h.signed_one(&me("sm2", SM2_PRIV_OTHER, &sm2_key)).await;
    assert_eq!((reply.status, reply.code()), (401, "signature_invalid"));

    // Expired (6 minutes old) and from the future (6 minutes ahead): the window is 300 s.
    for offset in ["-360000", "360000"] {
        let reply = h
            .signed_one(&Signed {
                extra: vec![format!("--ts-offset-ms={offset}")],
                ..me("sm2", SM2_PRIV, &sm2_key)
            })
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, "timestamp_expired"),
            "{offset}"
        );
    }
    // Inside the window (4 minutes old) it is accepted.
    let reply = h
        .signed_one(&Signed {
            extra: vec!["--ts-offset-ms=-240000".into()],
            ..me("sm2", SM2_PRIV, &sm2_key)
        })
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    // Replayed: the identical signed request twice.
    let replies = h
        .signed(&Signed {
            extra: vec!["--repeat=2".into()],
            ..me("p256", P256_PRIV, &p256_key)
        })
        .await;
    assert_eq!(replies[0].status, 200);
    assert_eq!(
        (replies[1].status, replies[1].code()),
        (401, "nonce_replayed")
    );
    // The same nonce under the other key is that key's first use.
    let nonce = "fixed-nonce-0123456789";
    for (alg, private, key) in [("sm2", SM2_PRIV, &sm2_key), ("p256", P256_PRIV, &p256_key)] {
        let reply = h
            .signed_one(&Signed {
                extra: vec![format!("--nonce={nonce}")],
                ..me(alg, private, key)
            })
            .await;
        assert_eq!(reply.status, 200, "{alg}: {:?}", reply.body);
    }

    // Unknown key, malformed key id, short nonce.
    let unknown = "key-00000000000000000000";
    let reply = h.signed_one(&me("sm2", SM2_PRIV, unknown)).await;
    assert_eq!((reply.status, reply.code()), (401, "unknown_key"));
    let reply = h.signed_one(&me("sm2", SM2_PRIV, "KEY-1")).await;
    assert_eq!((reply.status, reply.code()), (401, "bad_key_id"));
    let reply = h
        .signed_one(&Signed {
            extra: vec!["--nonce=short".into()],
            ..me("sm2", SM2_PRIV, &sm2_key)
        })
        .await;
    assert_eq!((reply.status, reply.code()), (401, "bad_nonce"));

    // No signature at all; a signature that is not r||s hex; a timestamp that is not ms.
    let reply = h.get("/api/partner/v1/me", &[]).await;
    assert_eq!((reply.status, reply.code()), (401, "missing_signature"));
    let headers = |sig: &str, ts: &str| {
        vec![
            ("x-ssc-key-id", sm2_key.clone()),
            ("x-ssc-timestamp", ts.to_owned()),
            ("x-ssc-nonce", "0123456789abcdef0123".to_owned()),
            ("x-ssc-signature", sig.to_owned()),
        ]
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let reply = h.get("/api/partner/v1/me", &headers("zz", &now)).await;
    assert_eq!((reply.status, reply.code()), (401, "bad_signature_format"));
    let reply = h
        .get(
            "/api/partner/v1/me",
            &headers(&"00".repeat(64), "yesterday"),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (401, "bad_timestamp"));
    // A well-formed signature of zeros: refused by the hsm's check.
    let reply = h
        .get("/api/partner/v1/me", &headers(&"00".repeat(64), &now))
        .await;
    assert_eq!((reply.status, reply.code()), (401, "signature_invalid"));

    // Every call above is in the audit with its code: the SM2 application's rows in order
    // (refusals after its key was found are attributed to it).
    let rows = h.audit(&sm2_app).await;
    let results: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("register", "ok"),
            ("app.read", "app_not_approved"),
            ("admin.decision", "ok"),
            ("app.read", "ok"),
            ("settlement.status", "settlement_not_found"),
            ("settlement.status", "signature_invalid"), // tampered path
            ("app.read", "signature_invalid"),          // another key
            ("app.read", "timestamp_expired"),
            ("app.read", "timestamp_expired"),
            ("app.read", "ok"),                // inside the window
            ("app.read", "ok"),                // fixed nonce
            ("app.read", "signature_invalid"), // zeros
        ],
        "{rows:#?}"
    );
    for row in &rows {
        let expected = match row["operation"].as_str().unwrap() {
            "register" => "public".to_owned(),
            "admin.decision" => "operator:ops1".to_owned(),
            _ => sm2_key.clone(),
        };
        assert_eq!(row["caller"], expected.as_str());
    }
    assert_eq!(rows[3]["partner_code"], "BANK-SM2");
    assert_eq!(rows[3]["http_status"], 200);
    assert_eq!(rows[1]["http_status"], 403);
    // Refusals before the key was known carry the claimed key id as caller and no application.
    let all = h.admin_get("/api/partner/v1/admin/audit?limit=500").await;
    let items = all.body["items"].as_array().unwrap();
    let refused = |code: &str| {
        items
            .iter()
            .filter(|r| r["result"] == code)
            .map(|r| {
                (
                    r["caller"].as_str().unwrap().to_owned(),
                    r["http_status"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(refused("unknown_key"), [(unknown.to_owned(), 401)]);
    assert_eq!(refused("bad_key_id"), [("-".to_owned(), 401)]);
    assert_eq!(refused("nonce_replayed"), [(p256_key.clone(), 401)]);
    assert_eq!(refused("timestamp_expired").len(), 2);
    assert_eq!(refused("signature_invalid").len(), 4);

    // A revoked key is refused with key_revoked; the other application's key still works.
    let revoked = h
        .post(
            &format!("/api/partner/v1/admin/keys/{p256_key}/revoke"),
            &serde_json::json!({}),
            &[(
                "authorization",
                format!("Bearer {}", partner_support::OPERATOR.1),
            )],
        )
        .await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    assert_eq!(revoked.body["app_id"], p256_app.as_str());
    let reply = h.signed_one(&me("p256", P256_PRIV, &p256_key)).await;
    assert_eq!((reply.status, reply.code()), (401, "key_revoked"));
    assert_eq!(
        h.signed_one(&me("sm2", SM2_PRIV, &sm2_key)).await.status,
        200
    );
    h.finish().await;
}
