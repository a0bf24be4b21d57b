//! Drives the operators' console without a browser (`oneshot` on its router): one request with
//! the session cookie and a form body, and a login that checks the cookie's attributes and
//! returns the session's CSRF token.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

/// The password of every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// A reply: status, `Location`, `Set-Cookie` and the body.
pub struct Reply {
    pub status: u16,
    pub location: String,
    pub cookie: String,
    pub body: String,
}

/// One request; `cookie` is the session token (empty: none), `form` a urlencoded body.
pub async fn send(app: &Router, method: &str, path: &str, cookie: &str, form: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if !cookie.is_empty() {
        request = request.header("cookie", format!("ssc_console={cookie}"));
    }
    if !form.is_empty() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(form.to_owned())).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (location, cookie) = (header("location"), header("set-cookie"));
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    Reply {
        status,
        location,
        cookie,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Logs in; returns (cookie token, csrf token of the session).
pub async fn log_in(app: &Router, user: &str) -> (String, String) {
    let reply = send(
        app,
        "POST",
        "/console/login",
        "",
        &format!("username={user}&password={}", PASSWORD.replace(' ', "+")),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.location, "/console/");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
        assert!(reply.cookie.contains(attribute), "{}", reply.cookie);
    }
    let token = reply
        .cookie
        .strip_prefix("ssc_console=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = send(app, "GET", "/console/", &token, "").await;
    assert_eq!(page.status, 200);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (token, csrf)
}
