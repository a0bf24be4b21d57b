//! The public HTTP face of the directory (no key): the JSON read API under [`API_PREFIX`], its
//! OpenAPI document, and the static page under [`PAGE_PREFIX`]. The app is a function of its
//! state ([`router`]), tested with `tower::ServiceExt::oneshot` and served on a loopback port by
//! the browser test.
//!
//! Every 200 reply carries a strong `ETag` (the first 16 bytes of the body's SHA-256, hex) and
//! `Cache-Control: no-cache`; a request whose `If-None-Match` names it gets 304 with no body
//! (RFC 9110 §13.1.2, weak comparison). Errors use the stable catalogue in [`error`].

pub mod error;
mod openapi;
mod page;
pub mod params;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tower_http::trace::TraceLayer;

use super::model::{Category, Channel, Region, Status, UsageMode};
use super::regions::region_label;
use super::{Directory, DirectoryError, Snapshot};
use error::{ApiError, ErrorBody};
use params::Pairs;
use wire::{
    ChangeOut, FacetValue, FacetsOut, ListOut, UseOut, VersionDetailOut, VersionOut, VersionsOut,
    utc,
};

/// Prefix of the JSON API.
pub const API_PREFIX: &str = "/api/directory/v1";
/// Prefix of the public page.
pub const PAGE_PREFIX: &str = "/directory";

/// The directory's routes over `directory`: mount with `Router::merge` into the switch's app.
pub fn router(directory: Arc<Directory>) -> Router {
    Router::new()
        .route("/api/directory/v1/uses", get(list_uses))
        .route("/api/directory/v1/uses/{number}", get(get_use))
        .route("/api/directory/v1/facets", get(facets))
        .route("/api/directory/v1/versions", get(versions))
        .route("/api/directory/v1/versions/{version}", get(version))
        .route("/api/directory/v1/openapi.json", get(openapi::document))
        .merge(page::routes())
        .layer(TraceLayer::new_for_http())
        .with_state(directory)
}

/// Logs an internal failure in the request span; the client sees only `internal`.
fn internal(error: &DirectoryError) -> ApiError {
    tracing::error!(%error, "directory read failed");
    ApiError::Internal
}

/// Whether `If-None-Match` names `etag` (or is `*`), comparing weakly (a `W/` prefix is ignored).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A 200 reply with its ETag, or 304 when the client has it already.
pub(crate) fn cached(headers: &HeaderMap, content_type: &'static str, body: Vec<u8>) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default()));
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let common = [
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if not_modified(headers, &etag) {
        (StatusCode::NOT_MODIFIED, common).into_response()
    } else {
        (
            StatusCode::OK,
            common,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response()
    }
}

fn json<T: Serialize>(headers: &HeaderMap, value: &T) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|error| {
        tracing::error!(%error, "directory reply did not serialise");
        ApiError::Internal
    })?;
    Ok(cached(headers, "application/json", body))
}

async fn snapshot(directory: &Directory) -> Result<Arc<Snapshot>, ApiError> {
    directory.current().await.map_err(|e| internal(&e))
}

/// List uses, filtered and searched, one page at a time.
#[utoipa::path(
    get,
    path = "/api/directory/v1/uses",
    params(
        ("q" = Option<String>, Query, description = "中文全文检索 (jieba tokens; every term must match), at most 64 characters"),
        ("category" = Option<Vec<String>>, Query, description = "类别, repeatable or comma-separated: 就业创业, 社会保险, 劳动关系, 人事人才, 医疗保障, 金融服务, 公共服务"),
        ("mode" = Option<Vec<String>>, Query, description = "用卡方式: 身份凭证, 信息记录, 自助查询, 就医结算, 缴费, 待遇领取, 金融支付"),
        ("channel" = Option<Vec<String>>, Query, description = "window, kiosk, web, app, e-card"),
        ("region" = Option<Vec<String>>, Query, description = "national or a 6-digit division code; national uses serve every region, a province's serve its cities"),
        ("status" = Option<String>, Query, description = "sourced or illustrative"),
        ("limit" = Option<u32>, Query, description = "page size, 1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = ListOut),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "Bad parameter", body = ErrorBody),
        (status = 409, description = "cursor_stale: the directory changed", body = ErrorBody),
    )
)]
async fn list_uses(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    raw: Pairs,
) -> Result<Response, ApiError> {
    let request = params::list_request(raw)?;
    let snapshot = snapshot(&directory).await?;
    let offset = match request.cursor {
        Some(cursor) if cursor.version != snapshot.version_number() => {
            return Err(ApiError::CursorStale);
        }
        Some(cursor) => cursor.offset,
        None => 0,
    };
    let page = snapshot.list(&request.filter, offset, request.limit);
    json(
        &headers,
        &ListOut {
            version: snapshot.version_number(),
            total: page.total,
            items: page.items.into_iter().map(UseOut::from).collect(),
            next_cursor: page.next.map(|cursor| cursor.encode()),
        },
    )
}

/// One use by its number.
#[utoipa::path(
    get,
    path = "/api/directory/v1/uses/{number}",
    params(("number" = String, Path, description = "the use's stable number")),
    responses(
        (status = 200, body = UseOut),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "bad_number", body = ErrorBody),
        (status = 404, description = "use_not_found", body = ErrorBody),
    )
)]
async fn get_use(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    number: Result<Path<String>, PathRejection>,
    raw: Pairs,
) -> Result<Response, ApiError> {
    params::no_params(raw)?;
    let Path(number) = number.map_err(|_| ApiError::BadNumber)?;
    let number = params::use_number(&number)?;
    let snapshot = snapshot(&directory).await?;
    let card_use = snapshot.get(&number).ok_or(ApiError::UseNotFound)?;
    json(&headers, &UseOut::from(card_use))
}

fn facet<T: Copy + PartialEq>(
    values: &[T],
    snapshot: &Snapshot,
    has: impl Fn(&super::CardUse, T) -> bool,
    code: impl Fn(T) -> String,
    label: impl Fn(T) -> String,
) -> Vec<FacetValue> {
    values
        .iter()
        .map(|value| FacetValue {
            code: code(*value),
            label: label(*value),
            count: snapshot.uses.iter().filter(|u| has(u, *value)).count(),
        })
        .collect()
}

/// The filter values with their counts (for a search form).
#[utoipa::path(
    get,
    path = "/api/directory/v1/facets",
    responses((status = 200, body = FacetsOut), (status = 304, description = "Not modified"))
)]
async fn facets(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    raw: Pairs,
) -> Result<Response, ApiError> {
    params::no_params(raw)?;
    let snapshot = snapshot(&directory).await?;
    let mut regions: Vec<Region> = snapshot
        .uses
        .iter()
        .flat_map(|u| u.regions.iter().copied())
        .collect();
    regions.sort();
    regions.dedup();
    let s = &snapshot;
    json(
        &headers,
        &FacetsOut {
            version: s.version_number(),
            updated_at: s.version.as_ref().map(|v| utc(v.at_ms)),
            total: s.uses.len(),
            categories: facet(
                Category::ALL,
                s,
                |u, v| u.category == v,
                |v| v.code().to_owned(),
                |v| v.label().to_owned(),
            ),
            modes: facet(
                UsageMode::ALL,
                s,
                |u, v| u.modes.contains(&v),
                |v| v.code().to_owned(),
                |v| v.label().to_owned(),
            ),
            channels: facet(
                Channel::ALL,
                s,
                |u, v| u.channels.contains(&v),
                |v| v.code().to_owned(),
                |v| v.label().to_owned(),
            ),
            regions: facet(
                &regions,
                s,
                // The same rule as the filter: how many uses serve a person there.
                |u, v| u.regions.iter().any(|live| live.covers(v)),
                Region::code,
                region_label,
            ),
            statuses: facet(
                Status::ALL,
                s,
                |u, v| u.status == v,
                |v| v.code().to_owned(),
                |v| v.label().to_owned(),
            ),
        },
    )
}

/// The directory's versions, newest first: who imported, when (UTC), how many uses changed.
#[utoipa::path(
    get,
    path = "/api/directory/v1/versions",
    params(
        ("limit" = Option<u32>, Query, description = "1-100, default 20"),
        ("before" = Option<i64>, Query, description = "only versions older than this"),
    ),
    responses((status = 200, body = VersionsOut), (status = 400, body = ErrorBody))
)]
async fn versions(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    raw: Pairs,
) -> Result<Response, ApiError> {
    let (before, limit) = params::versions_request(raw)?;
    let found = directory
        .versions(before, limit)
        .await
        .map_err(|e| internal(&e))?;
    let full = u32::try_from(found.len()).is_ok_and(|n| n == limit);
    let next_before = found
        .last()
        .filter(|last| full && last.version > 1)
        .map(|last| last.version);
    json(
        &headers,
        &VersionsOut {
            items: found.iter().map(VersionOut::from).collect(),
            next_before,
        },
    )
}

/// One version with its per-use diff.
#[utoipa::path(
    get,
    path = "/api/directory/v1/versions/{version}",
    params(("version" = i64, Path, description = "version number, from 1")),
    responses(
        (status = 200, body = VersionDetailOut),
        (status = 400, description = "bad_version", body = ErrorBody),
        (status = 404, description = "version_not_found", body = ErrorBody),
    )
)]
async fn version(
    State(directory): State<Arc<Directory>>,
    headers: HeaderMap,
    version: Result<Path<String>, PathRejection>,
    raw: Pairs,
) -> Result<Response, ApiError> {
    params::no_params(raw)?;
    let Path(version) = version.map_err(|_| ApiError::BadVersion)?;
    let version = params::version(&version)?;
    let (info, changes) = directory
        .version(version)
        .await
        .map_err(|e| internal(&e))?
        .ok_or(ApiError::VersionNotFound)?;
    json(
        &headers,
        &VersionDetailOut {
            version: VersionOut::from(&info),
            changes: changes.iter().map(ChangeOut::from).collect(),
        },
    )
}
