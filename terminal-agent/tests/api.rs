//! The HTTP API without a socket (`tower::ServiceExt::oneshot`) over in-process virtual cards
//! (`VirtualReaders`), and the HSM reached in process and over `hsm serve`'s HTTP API on
//! loopback. Expected values come from the card image files (plain TOML).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use card_core::vcard::{CardImage, VirtualCard};
use common::{authority_for, field, hsm_for, hsm_with_masters, image, image_path, keys, settings};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use terminal_agent::api::{self, AppState};
use terminal_agent::authority::{Authority, AuthorityKeys, Token};
use terminal_agent::reader::virtual_backend::VirtualReaders;
use terminal_agent::reader::{
    BackendFactory, ReaderEvent, ReaderEventKind, Readers, ReadersConfig, Watcher,
};
use tower::ServiceExt;

const VR: &str = "VR 1";

fn card(name: &str) -> VirtualCard {
    let text = std::fs::read_to_string(image_path(name)).unwrap();
    VirtualCard::new(CardImage::from_toml_str(&text).unwrap(), 7)
}

fn event(kind: ReaderEventKind, atr: Option<&str>) -> ReaderEvent {
    ReaderEvent {
        kind,
        reader: VR.into(),
        atr: atr.map(str::to_owned),
        at_unix_ms: 0,
    }
}

/// An app over one virtual reader holding `image_name` (or empty).
fn app_with(
    image_name: Option<&str>,
    authority: Authority,
    queue_max: usize,
) -> (axum::Router, VirtualReaders, Arc<Readers>) {
    let table = VirtualReaders::new([VR]);
    let watcher = Watcher::detached();
    watcher.apply(event(ReaderEventKind::ReaderAdded, None));
    if let Some(name) = image_name {
        let c = card(name);
        let atr = hex::encode_upper(c.atr());
        table.insert(VR, c);
        watcher.apply(event(ReaderEventKind::CardInserted, Some(&atr)));
    }
    let backend_table = table.clone();
    let factory: Arc<dyn BackendFactory> = Arc::new(move || backend_table.backend());
    let readers = Arc::new(Readers::new(
        factory,
        ReadersConfig {
            queue_max,
            readers_max: 4,
        },
        Some(watcher),
    ));
    let state = AppState {
        readers: Arc::clone(&readers),
        authority,
        settings: settings(2_000),
    };
    (api::app(state), table, readers)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_card_and_openapi() {
    let (_dir, authority) = authority_for("tianjin-3g.toml");
    let (app, _table, _) = app_with(Some("tianjin-3g.toml"), authority, 4);
    let t = image("tianjin-3g.toml");
    let (status, readers) = call(&app, "GET", "/v1/readers", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(readers[0]["name"], VR);
    assert_eq!(readers[0]["card_present"], true);
    let (status, view) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["identity"]["card_id"], field(&t, "ssse", "card_id"));
    assert_eq!(view["card_authenticated"], true);
    // Masked by default: 120101198805121236 → 120101********1236.
    assert_eq!(view["holder"]["ssn"], "120101********1236");
    assert_eq!(view["holder"]["name"], "赵**");
    let (status, doc) = call(&app, "GET", "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/readers",
        "/v1/readers/{name}/card",
        "/v1/readers/{name}/verify-pin",
        "/v1/iReadCardBas",
        "/v1/iVerifyPIN",
        "/v1/events",
        "/v1/readers/{name}/settle",
        "/v1/readers/{name}/purchase",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    // This process never configures the settlement route: it refuses before touching the card.
    let (status, body) = call(
        &app,
        "POST",
        "/v1/readers/VR%201/settle",
        Some(
            serde_json::json!({"chrg_bchno": "B1", "use_personal_account": true, "feedetail": []}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let (status, body) = call(&app, "GET", "/v1/readers/Nope/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("reader_not_found"))
    );
    let big = json!({"pin": "1".repeat(10_000)});
    let (status, _) = call(&app, "POST", "/v1/readers/VR%201/verify-pin", Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_reader_answers_no_card_and_minus_two() {
    let (app, _table, _) = app_with(None, Authority::none(), 4);
    let (status, body) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("no_card"))
    );
    assert_eq!(body["action"], "insert the card, chip first");
    let (status, reply) = call(
        &app,
        "POST",
        "/v1/iReadCardBas",
        Some(json!({"iType": 1, "reader": VR})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // ssc-card.md §6: −2 no card.
    assert_eq!(reply["ret"], -2);
    // Without a reader name and no card anywhere: also −2.
    let (_, reply) = call(&app, "POST", "/v1/iReadCardBas", Some(json!({"iType": 3}))).await;
    assert_eq!(reply["ret"], -2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_with_other_keys_fails_internal_then_external_authentication() {
    // The HSM holds another issuer's masters (made up here, not the fixtures' national pair).
    let (_dir, hsm) = hsm_with_masters(
        "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",
        "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF",
    );
    let hsm = Arc::new(Mutex::new(hsm));
    let authority = Authority::in_process(Arc::clone(&hsm), "test", keys());
    let (app, _table, _) = app_with(Some("tianjin-3g.toml"), authority, 4);
    let (status, body) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("card_not_genuine")),
        "{body}"
    );
    let (_, reply) = call(&app, "POST", "/v1/iReadCardBas", Some(json!({"iType": 1}))).await;
    assert_eq!(reply["ret"], -21, "internal auth failed (ssc-card.md §6)");
    // Without the internal check, the card refuses the terminal's cryptogram: 63CX, X = tries
    // left of the image's external_auth_tries_max (5) minus one.
    let no_internal = AuthorityKeys {
        external_auth_alias: "ssc-ext-auth".into(),
        internal_auth_alias: None,
    };
    let (app, _table, _) = app_with(
        Some("tianjin-3g.toml"),
        Authority::in_process(hsm, "test", no_internal),
        4,
    );
    let tries_max = image("tianjin-3g.toml")["pin"]["external_auth_tries_max"]
        .as_integer()
        .unwrap();
    let (status, body) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("terminal_rejected")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{} tries left", tries_max - 1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hsm_over_http_authenticates_a_third_generation_card() {
    let (_dir, hsm) = hsm_for("tianjin-3g.toml");
    let callers = hsm::server::Callers::parse("terminal-agent:agent-token-0123456789").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            hsm::server::app(hsm::server::AppState::new(hsm, callers)),
        )
        .await
        .unwrap();
    });
    let handle = tokio::runtime::Handle::current();
    let authority = Authority::http(
        &url,
        Token::new("agent-token-0123456789"),
        keys(),
        2_000,
        handle.clone(),
    )
    .unwrap();
    let (app, _table, _) = app_with(Some("tianjin-3g.toml"), authority, 4);
    let (status, view) = call(&app, "GET", "/v1/readers/VR%201/card?reveal=true", None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["card_authenticated"], true);
    assert_eq!(
        view["holder"]["ssn"],
        field(&image("tianjin-3g.toml"), "ssse", "ssn")
    );
    // A wrong token: the HSM refuses.
    let authority = Authority::http(
        &url,
        Token::new("wrong-token-0123456789"),
        keys(),
        2_000,
        handle.clone(),
    )
    .unwrap();
    assert!(
        !format!("{authority:?}").contains("wrong-token"),
        "the token never shows"
    );
    let (app, _table, _) = app_with(Some("tianjin-3g.toml"), authority, 4);
    let (status, body) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("hsm_failed")),
        "{body}"
    );
    // The HSM is down: unavailable, −2201 for the unified interface.
    server.abort();
    let _ = server.await;
    let authority = Authority::http(
        &url,
        Token::new("agent-token-0123456789"),
        keys(),
        500,
        handle,
    )
    .unwrap();
    let (app, _table, _) = app_with(Some("tianjin-3g.toml"), authority, 4);
    let (status, body) = call(&app, "GET", "/v1/readers/VR%201/card", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("hsm_unavailable")),
        "{body}"
    );
    let (_, reply) = call(&app, "POST", "/v1/iReadCardBas", Some(json!({"iType": 1}))).await;
    assert_eq!(reply["ret"], -2201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_card_insertions() {
    let (app, table, readers) = app_with(None, Authority::none(), 4);
    let response = app
        .clone()
        .oneshot(Request::get("/v1/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    let c = card("beijing-2g.toml");
    let atr = hex::encode_upper(c.atr());
    table.insert(VR, c);
    readers
        .watcher()
        .unwrap()
        .apply(event(ReaderEventKind::CardInserted, Some(&atr)));
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: card_inserted\n"), "{text}");
    assert!(text.contains(&format!("\"atr\":\"{atr}\"")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reader_queue_answers_busy_and_queued_jobs_are_all_answered() {
    let (_app, table, readers) = app_with(Some("beijing-2g.toml"), Authority::none(), 1);
    let _ = table;
    let slow = |ms: u64| {
        move |_: &mut terminal_agent::reader::CardLink<'_>| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok::<u64, terminal_agent::AgentError>(ms)
        }
    };
    // One job runs, one waits in the queue (queue_max 1), the third is refused at once.
    let (a, b, c) = tokio::join!(
        readers.run(VR, 5_000, slow(300)),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            readers.run(VR, 5_000, slow(10)).await
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            readers.run(VR, 5_000, slow(10)).await
        }
    );
    assert_eq!(a.unwrap(), 300);
    assert_eq!(b.unwrap(), 10);
    assert_eq!(c.unwrap_err(), terminal_agent::AgentError::ReaderBusy);
    // A job past its timeout answers card_timeout; the next job gets a fresh worker.
    let late = readers.run(VR, 100, slow(400)).await;
    assert_eq!(
        late.unwrap_err(),
        terminal_agent::AgentError::CardTimeout { timeout_ms: 100 }
    );
}
