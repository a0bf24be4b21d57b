//! The public page (`/directory/`): plain HTML, CSS and JavaScript from settlement/web/directory,
//! embedded in the binary (no build step, nothing read from disk at run time). The page only
//! calls the public API.

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::response::{Redirect, Response};
use axum::routing::get;

use super::cached;
use crate::directory::Directory;

const INDEX_HTML: &str = include_str!("../../../web/directory/index.html");
const APP_JS: &str = include_str!("../../../web/directory/app.js");
const STYLE_CSS: &str = include_str!("../../../web/directory/style.css");

async fn index(headers: HeaderMap) -> Response {
    cached(
        &headers,
        "text/html; charset=utf-8",
        INDEX_HTML.as_bytes().to_vec(),
    )
}

async fn app_js(headers: HeaderMap) -> Response {
    cached(
        &headers,
        "text/javascript; charset=utf-8",
        APP_JS.as_bytes().to_vec(),
    )
}

async fn style_css(headers: HeaderMap) -> Response {
    cached(
        &headers,
        "text/css; charset=utf-8",
        STYLE_CSS.as_bytes().to_vec(),
    )
}

/// `/directory` (redirects to `/directory/`), `/directory/`, `/directory/app.js`,
/// `/directory/style.css`.
pub(crate) fn routes() -> Router<Arc<Directory>> {
    Router::new()
        .route(
            "/directory",
            get(|| async { Redirect::permanent("/directory/") }),
        )
        .route("/directory/", get(index))
        .route("/directory/app.js", get(app_js))
        .route("/directory/style.css", get(style_css))
}
