//! Query-string parsing of the directory API into the domain [`Filter`] and paging, with the
//! catalogue's error for every bad parameter (never axum's plain-text rejection).
//!
//! Multi-valued filters take repeated parameters or comma-separated values
//! (`category=就业创业&category=社会保险` = `category=就业创业,社会保险`).

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use crate::directory::model::{Category, Channel, Region, Status, UsageMode, UseNumber};
use crate::directory::query::{Cursor, Filter, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use crate::directory::search::QUERY_CHARS_MAX;
use crate::directory::{FieldError, VERSIONS_PAGE_MAX};

use super::error::ApiError;

/// Most parameters in one query string.
pub const QUERY_PARAMS_MAX: usize = 64;

/// The raw pairs, or `bad_param` when the query string does not decode.
pub type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

fn pairs(raw: Pairs, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = raw.map_err(|_| ApiError::BadQueryString)?;
    if pairs.len() > QUERY_PARAMS_MAX {
        return Err(ApiError::BadQueryString);
    }
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, _)| !allowed.contains(&name.as_str()))
    {
        return Err(ApiError::UnknownParam(name.clone()));
    }
    Ok(pairs)
}

fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::RepeatedParam(name.to_owned()));
    }
    Ok(first.map(String::as_str))
}

fn many<T: Ord>(
    pairs: &[(String, String)],
    name: &str,
    parse: impl Fn(&str) -> Result<T, FieldError>,
    error: ApiError,
) -> Result<Vec<T>, ApiError> {
    let mut values = Vec::new();
    for (_, value) in pairs.iter().filter(|(n, _)| n == name) {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            values.push(parse(part).map_err(|_| error.clone())?);
        }
    }
    values.sort();
    values.dedup();
    Ok(values)
}

fn limit(text: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or(ApiError::BadLimit(max)),
    }
}

/// A parsed list request.
#[derive(Debug)]
pub struct ListRequest {
    /// Filters and query.
    pub filter: Filter,
    /// Page size.
    pub limit: u32,
    /// Where to start, if not at the beginning.
    pub cursor: Option<Cursor>,
}

/// Parses `GET /uses`: q, category, mode, channel, region, status, limit, cursor.
pub fn list_request(raw: Pairs) -> Result<ListRequest, ApiError> {
    let pairs = pairs(
        raw,
        &[
            "q", "category", "mode", "channel", "region", "status", "limit", "cursor",
        ],
    )?;
    let query = match single(&pairs, "q")?.map(str::trim) {
        Some(q) if q.chars().count() > QUERY_CHARS_MAX => return Err(ApiError::QueryTooLong),
        Some("") | None => None,
        Some(q) => Some(q.to_owned()),
    };
    let status = single(&pairs, "status")?
        .map(|s| Status::parse(s).map_err(|_| ApiError::BadStatus))
        .transpose()?;
    let cursor = single(&pairs, "cursor")?
        .map(|c| Cursor::decode(c).ok_or(ApiError::BadCursor))
        .transpose()?;
    Ok(ListRequest {
        filter: Filter {
            categories: many(&pairs, "category", Category::parse, ApiError::BadCategory)?,
            modes: many(&pairs, "mode", UsageMode::parse, ApiError::BadMode)?,
            channels: many(&pairs, "channel", Channel::parse, ApiError::BadChannel)?,
            regions: many(&pairs, "region", Region::parse, ApiError::BadRegion)?,
            status,
            query,
        },
        limit: limit(single(&pairs, "limit")?, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)?,
        cursor,
    })
}

/// Parses `GET /versions`: limit, before. Returns (before, limit).
pub fn versions_request(raw: Pairs) -> Result<(Option<i64>, u32), ApiError> {
    let pairs = pairs(raw, &["limit", "before"])?;
    let before = single(&pairs, "before")?
        .map(|b| {
            b.parse::<i64>()
                .ok()
                .filter(|b| *b >= 1)
                .ok_or(ApiError::BadVersion)
        })
        .transpose()?;
    let limit = limit(single(&pairs, "limit")?, 20, VERSIONS_PAGE_MAX)?;
    Ok((before, limit))
}

/// Parses a route without parameters: any parameter is `unknown_param`.
pub fn no_params(raw: Pairs) -> Result<(), ApiError> {
    pairs(raw, &[]).map(|_| ())
}

/// Parses a use number from the path.
pub fn use_number(text: &str) -> Result<UseNumber, ApiError> {
    UseNumber::parse(text).map_err(|_| ApiError::BadNumber)
}

/// Parses a version from the path.
pub fn version(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or(ApiError::BadVersion)
}
