//! Card sign-in (issue 8) through the identity API on SQLite and PostgreSQL: the node's
//! challenge answered by card-core's virtual card (its own image keys), checked by the hsm; the
//! token verified by the node and, independently, by Python's pycryptodome from the published
//! JWK; refusals of a wrong answer, a replayed or expired or unknown challenge, a tampered or
//! foreign token; sign-out, expiry and a lost card revoking every token of the card.
//!
//! Expected values come from fixtures (cards.csv: T00012345 is person 12000000000000000001,
//! 参保地 120000) and from the RFC 7515/7518 rules, not from the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod identity_support;
mod service_support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{BOTH, Db};
use identity_support::{CARD, CARD_NO, IdHarness, answer, card, card_id};
use serde_json::{Value, json};
use settlement::identity::IdentityOptions;
use settlement::service::GatewayConfig;

fn claims_of(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// Verifies an ES256 compact JWS with pycryptodome (an implementation we did not write):
/// prints "ok" or "bad".
fn python_verifies(token: &str, jwk: &Value) -> bool {
    let script = r#"
import base64, json, sys
from Crypto.PublicKey import ECC
from Crypto.Signature import DSS
from Crypto.Hash import SHA256
def b64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
token, jwk = sys.argv[1], json.loads(sys.argv[2])
header, claims, sig = token.split(".")
assert json.loads(b64(header)) == {"alg": "ES256", "typ": "JWT", "kid": jwk["kid"]}
key = ECC.construct(curve="P-256", point_x=int.from_bytes(b64(jwk["x"]), "big"),
                    point_y=int.from_bytes(b64(jwk["y"]), "big"))
try:
    DSS.new(key, "fips-186-3").verify(SHA256.new((header + "." + claims).encode()), b64(sig))
    print("ok")
except ValueError:
    print("bad")
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, token, &jwk.to_string()])
        .output()
        .expect("python3 with pycryptodome (scripts/ensure-python-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim() == "ok"
}

#[tokio::test]
async fn card_signin_gives_a_token_every_service_and_an_outside_verifier_accept() {
    for db in BOTH {
        let t = IdHarness::new(db).await;
        let (status, issued) = t.sign_in(CARD, CARD_NO, true).await;
        assert_eq!(status, 201, "{db:?} {issued}");
        assert_eq!(issued["token_type"], "Bearer");
        assert_eq!(issued["acr"], "card+pin");
        let token = issued["token"].as_str().unwrap();

        // The claims as RFC 7519 names them; 参保地 from cards.csv; life 900 s (the default).
        let claims = claims_of(token);
        assert_eq!(claims["iss"], "ssc-platform");
        assert_eq!(claims["sub"], issued["holder_id"]);
        assert_eq!(claims["admdvs"], "120000");
        assert_eq!(claims["amr"], json!(["card", "pin"]));
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );
        // The pseudonym is not the person number, the card number or the ID number.
        let sub = claims["sub"].as_str().unwrap();
        assert_eq!(sub.len(), 32);
        assert!(!token.contains("12000000000000000001") && !sub.contains(CARD_NO));

        // The node's introspection and the holder routes accept it.
        let (status, verified) = t
            .request(
                "POST",
                "/identity/v1/verify",
                &[],
                Some(json!({ "token": token })),
            )
            .await;
        assert_eq!(status, 200, "{verified}");
        assert_eq!(verified["active"], true);
        assert_eq!(verified["sid"], claims["sid"]);
        let (status, me) = t
            .request("GET", "/identity/v1/me", &IdHarness::bearer(token), None)
            .await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["profile"]["name_masked"], "赵**");
        assert_eq!(me["profile"]["certno_masked"], "120101********1236");

        // An outside verifier with only the published key accepts it, and refuses a change.
        let (status, jwks) = t.request("GET", "/identity/v1/jwks", &[], None).await;
        assert_eq!(status, 200);
        let jwk = &jwks["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert!(python_verifies(token, jwk));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims.clone();
        forged["acr"] = json!("card");
        parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
        let tampered = parts.join(".");
        assert!(!python_verifies(&tampered, jwk));
        let (status, refused) = t
            .request(
                "GET",
                "/identity/v1/me",
                &IdHarness::bearer(&tampered),
                None,
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("token_invalid"))
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn wrong_answer_replay_expired_and_unknown_challenges_are_refused() {
    for db in BOTH {
        let options = IdentityOptions {
            challenge_ttl_ms: 300,
            ..IdentityOptions::default()
        };
        let t = IdHarness::with(db, options, GatewayConfig::default()).await;
        let id = card_id(CARD);
        let body = |challenge: &Value, answer: &str| {
            json!({
                "challenge_id": challenge["challenge_id"], "card_id": id, "card_no": CARD_NO,
                "answer": answer,
            })
        };

        // A wrong answer (one bit flipped) is refused by the hsm, and burns the challenge.
        let challenge = t.challenge().await;
        let good = answer(&mut card(CARD), &id, challenge["random"].as_str().unwrap());
        let mut bytes = hex::decode(&good).unwrap();
        bytes[0] ^= 0x01;
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &hex::encode(bytes))),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("card_not_genuine"))
        );
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &good)),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (409, Some("challenge_used"))
        );

        // A genuine answer to another card's 卡识别码 (hebei-3g's card answering for tianjin's
        // id) is not genuine for the id claimed.
        let challenge = t.challenge().await;
        let other = answer(
            &mut card("hebei-3g.toml"),
            &card_id("hebei-3g.toml"),
            challenge["random"].as_str().unwrap(),
        );
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &other)),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("card_not_genuine"))
        );

        // A replay of a successful sign-in's exact request.
        let challenge = t.challenge().await;
        let good = answer(&mut card(CARD), &id, challenge["random"].as_str().unwrap());
        let (status, issued) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &good)),
            )
            .await;
        assert_eq!(status, 201, "{issued}");
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &good)),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (409, Some("challenge_used"))
        );

        // An answer after the challenge's 300 ms.
        let challenge = t.challenge().await;
        let good = answer(&mut card(CARD), &id, challenge["random"].as_str().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, &good)),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (410, Some("challenge_expired"))
        );

        // A challenge never issued; a malformed answer.
        let unknown = json!({ "challenge_id": "0".repeat(32), "random": "00" });
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&unknown, &good)),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("challenge_unknown"))
        );
        let challenge = t.challenge().await;
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/signin",
                &[],
                Some(body(&challenge, "zz")),
            )
            .await;
        assert_eq!((status, refused["code"].as_str()), (400, Some("bad_field")));

        // A genuine card with a card number it was never used with is refused once bound.
        let (status, refused) = t.sign_in(CARD, "B10020030", false).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (403, Some("card_mismatch"))
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn signout_expiry_and_a_lost_card_end_tokens() {
    for db in BOTH {
        let t = IdHarness::new(db).await;
        let first = t.token().await;
        let second = t.token().await;
        let me = |token: String| {
            let t = &t;
            async move {
                let (status, body) = t
                    .request("GET", "/identity/v1/me", &IdHarness::bearer(&token), None)
                    .await;
                (status, body["code"].as_str().map(str::to_owned))
            }
        };
        assert_eq!(me(first.clone()).await.0, 200);

        // Sign-out ends that token only.
        let (status, _) = t
            .request(
                "POST",
                "/identity/v1/signout",
                &IdHarness::bearer(&first),
                None,
            )
            .await;
        assert_eq!(status, 204);
        assert_eq!(me(first.clone()).await, (401, Some("token_revoked".into())));
        assert_eq!(me(second.clone()).await.0, 200);
        let third = t.token().await;

        // The card reported lost (by its 卡号, as the holder knows it): every live token of the
        // card dies, the outbox has the event, the card cannot sign in again.
        let (status, outcome) = t
            .request(
                "POST",
                "/identity/v1/cards/lost",
                &[],
                Some(json!({ "card_no": CARD_NO })),
            )
            .await;
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(outcome["newly_reported"], true);
        assert_eq!(outcome["sessions_revoked"], 2);
        assert_eq!(me(second).await, (401, Some("token_revoked".into())));
        assert_eq!(me(third).await, (401, Some("token_revoked".into())));
        let events = t.identity.events_after(None, 10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "card_lost");
        assert_eq!(
            Some(events[0].event_id.clone()),
            outcome["event_id"].as_str().map(str::to_owned)
        );
        assert!(!events[0].detail.to_string().contains(CARD_NO));
        let (status, refused) = t.sign_in(CARD, CARD_NO, true).await;
        assert_eq!((status, refused["code"].as_str()), (403, Some("card_lost")));
        let (status, again) = t
            .request(
                "POST",
                "/identity/v1/cards/lost",
                &[],
                Some(json!({ "card_no": CARD_NO })),
            )
            .await;
        assert_eq!(
            (status, again["newly_reported"].as_bool()),
            (200, Some(false))
        );
        let (status, refused) = t
            .request(
                "POST",
                "/identity/v1/cards/lost",
                &[],
                Some(json!({ "card_no": "NOSUCHCARD" })),
            )
            .await;
        assert_eq!((status, refused["code"].as_str()), (404, Some("not_found")));
        t.finish().await;

        // Expiry: a node whose tokens live 0 s issues tokens already expired.
        let options = IdentityOptions {
            token_ttl_s: 0,
            ..IdentityOptions::default()
        };
        let t = IdHarness::with(db, options, GatewayConfig::default()).await;
        let token = t.token().await;
        let (status, refused) = t
            .request("GET", "/identity/v1/me", &IdHarness::bearer(&token), None)
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("token_expired"))
        );
        let (status, refused) = t.request("GET", "/identity/v1/me", &[], None).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (401, Some("token_missing"))
        );
        t.finish().await;
    }
}

#[tokio::test]
async fn pin_requirement_terminal_check_and_foreign_tokens() {
    let db = Db::Sqlite;
    // A service that needs the PIN refuses a sign-in without it.
    let t = IdHarness::new(db).await;
    let challenge = t.challenge().await;
    let id = card_id(CARD);
    let good = answer(&mut card(CARD), &id, challenge["random"].as_str().unwrap());
    let (status, refused) = t
        .request(
            "POST",
            "/identity/v1/signin",
            &[],
            Some(json!({
                "challenge_id": challenge["challenge_id"], "card_id": id, "card_no": CARD_NO,
                "answer": good, "pin_verified": false, "require_pin": true,
            })),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (403, Some("pin_required"))
    );
    let (status, issued) = t.sign_in(CARD, CARD_NO, false).await;
    assert_eq!((status, issued["acr"].as_str()), (201, Some("card")));

    // A token from another node (another hsm key, same claims layout) is refused here.
    let other = IdHarness::new(db).await;
    let foreign = other.token().await;
    let (status, refused) = t
        .request("GET", "/identity/v1/me", &IdHarness::bearer(&foreign), None)
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("token_invalid"))
    );
    // `alg: none` with the same claims.
    let claims = foreign.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{claims}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let (status, refused) = t
        .request("GET", "/identity/v1/me", &IdHarness::bearer(&none), None)
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("token_invalid"))
    );
    other.finish().await;
    t.finish().await;

    // With gateway callers configured, a terminal without x-tif-* headers gets no challenge.
    let mut callers = std::collections::HashMap::new();
    callers.insert("kiosk01".to_owned(), "kiosk01-test-token".to_owned());
    let gateway = GatewayConfig {
        callers,
        ..GatewayConfig::default()
    };
    let t = IdHarness::with(db, IdentityOptions::default(), gateway).await;
    let (status, refused) = t
        .request("POST", "/identity/v1/challenges", &[], None)
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (401, Some("terminal_unauthenticated"))
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = settlement::service::gateway::signature(&now, "kiosk01-test-token", "n1");
    let headers = [
        ("x-tif-paasid", "kiosk01".to_owned()),
        ("x-tif-timestamp", now),
        ("x-tif-nonce", "n1".to_owned()),
        ("x-tif-signature", signature),
    ];
    let (status, _) = t
        .request("POST", "/identity/v1/challenges", &headers, None)
        .await;
    assert_eq!(status, 201);
    t.finish().await;
}
