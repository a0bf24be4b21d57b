//! The HTTP app driven with `tower::ServiceExt::oneshot`, without a socket: authentication,
//! routing, JSON errors with codes, and a success path.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use hsm::lmk::Lmk;
use hsm::ops::Hsm;
use hsm::server::{AppState, Callers, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const LMK: &str = "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0";
const TOKEN: &str = "teller-token-0123456789";

fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let hsm = Hsm::open(dir.path(), Lmk::from_hex(LMK).unwrap()).unwrap();
    let callers = Callers::parse(&format!("teller:{TOKEN},ops:another-token-abcdefgh")).unwrap();
    (dir, AppState::new(hsm, callers))
}

async fn call(
    state: &AppState,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app(state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let (_dir, state) = state();
    let (status, body) = call(&state, "/v1/Ping", None, "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHORIZED");
    let (status, _) = call(&state, "/v1/Ping", Some("teller-token-0123456788"), "{}").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&state, "/v1/Ping", Some(TOKEN), "{}").await;
    assert_eq!((status, body["ok"].clone()), (StatusCode::OK, json!(true)));
}

#[tokio::test]
async fn unknown_operation_and_route_are_404() {
    let (_dir, state) = state();
    let (status, body) = call(&state, "/v1/FormatDisk", Some(TOKEN), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "UNKNOWN_OPERATION");
    let (status, body) = call(&state, "/v2/Ping", Some(TOKEN), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
}

#[tokio::test]
async fn bad_json_and_bad_fields_are_400_with_codes() {
    let (_dir, state) = state();
    let (status, body) = call(&state, "/v1/GetKey", Some(TOKEN), "{\"alias\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BAD_JSON");
    let (status, body) = call(&state, "/v1/GetKey", Some(TOKEN), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (body["code"].as_str(), body["message"].as_str()),
        (Some("INVALID_REQUEST"), Some("field 'alias': is required"))
    );
    let (status, body) = call(&state, "/v1/GetKey", Some(TOKEN), "{\"alias\":\"none\"}").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("KEY_NOT_FOUND"))
    );
}

#[tokio::test]
async fn create_key_then_mac_round_trip() {
    let (dir, state) = state();
    let (status, meta) = call(
        &state,
        "/v1/CreateKey",
        Some(TOKEN),
        r#"{"alias":"mac","algorithm":"AES_128","usage":"M6","mode_of_use":"C"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["usage"], "M6");
    assert_eq!(meta["kcv"].as_str().unwrap().len(), 6);
    let (status, mac) = call(
        &state,
        "/v1/GenerateMac",
        Some(TOKEN),
        r#"{"alias":"mac","message_data":"0011223344"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mac["kcv"], meta["kcv"]);
    let body = json!({"alias": "mac", "message_data": "0011223344", "mac": mac["mac"]}).to_string();
    let (status, ok) = call(&state, "/v1/VerifyMac", Some(TOKEN), &body).await;
    assert_eq!(
        (status, ok["verified"].clone()),
        (StatusCode::OK, json!(true))
    );
    let body = json!({"alias": "mac", "message_data": "0011223345", "mac": mac["mac"]}).to_string();
    let (status, err) = call(&state, "/v1/VerifyMac", Some(TOKEN), &body).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("VERIFICATION_FAILED"))
    );
    // The caller is named in the audit log; the token is not.
    let audit = std::fs::read_to_string(dir.path().join(hsm::audit::AUDIT_FILE)).unwrap();
    assert!(audit.contains("\"caller\":\"teller\""));
    assert!(!audit.contains(TOKEN));
}

#[test]
fn callers_configuration_is_validated() {
    assert!(Callers::parse("").is_err());
    assert!(Callers::parse("teller:short").is_err());
    assert!(Callers::parse("bad name:0123456789abcdefgh").is_err());
    let c = Callers::parse("# comment\na:0123456789abcdefgh\nb:hgfedcba9876543210").unwrap();
    assert_eq!(c.authenticate(b"hgfedcba9876543210"), Some("b"));
    assert_eq!(c.authenticate(b"0123456789abcdefgi"), None);
    assert!(!format!("{c:?}").contains("0123456789"));
}
