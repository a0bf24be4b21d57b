//! HTTP helpers: JSON GET/POST that fail with the status and body, and the national gateway's
//! `x-tif-*` headers for operator calls (the same signature the HIS computes, `his.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// GET `url` and parse the JSON body; fails on a non-2xx status.
pub fn get_ok(client: &reqwest::blocking::Client, url: &str) -> Result<Value> {
    let response = client
        .get(url)
        .send()
        .with_context(|| format!("GET {url}"))?;
    read(response, "GET", url)
}

/// POST `body` as JSON to `url` and parse the JSON reply; fails on a non-2xx status.
pub fn post_ok(client: &reqwest::blocking::Client, url: &str, body: &Value) -> Result<Value> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .with_context(|| format!("POST {url}"))?;
    read(response, "POST", url)
}

fn read(response: reqwest::blocking::Response, method: &str, url: &str) -> Result<Value> {
    let status = response.status();
    let text = response
        .text()
        .with_context(|| format!("{method} {url}: reading the body"))?;
    if !status.is_success() {
        bail!("{method} {url}: {status} {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON: {text}"))
}

/// A caller of the national gateway: `x-tif-paasid` and its token.
#[derive(Clone)]
pub struct Gateway {
    /// The paas id.
    pub paas_id: String,
    /// Its token (never printed).
    pub token: String,
}

impl Gateway {
    /// The four `x-tif-*` headers for a call now (medical-settlement.md §1.0: signature =
    /// lowercase hex SHA-256 of timestamp + token + nonce + timestamp).
    pub fn headers(&self, nonce_seq: u32) -> Result<Vec<(&'static str, String)>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let timestamp = now.as_secs().to_string();
        let nonce = format!("{:08x}{nonce_seq:04}", now.subsec_nanos());
        let signature = hex::encode(Sha256::digest(
            format!("{timestamp}{}{nonce}{timestamp}", self.token).as_bytes(),
        ));
        Ok(vec![
            ("x-tif-paasid", self.paas_id.clone()),
            ("x-tif-timestamp", timestamp),
            ("x-tif-nonce", nonce),
            ("x-tif-signature", signature),
        ])
    }

    /// An operator GET behind the gateway check.
    pub fn get(&self, client: &reqwest::blocking::Client, url: &str) -> Result<Value> {
        let mut request = client.get(url);
        for (name, value) in self.headers(0)? {
            request = request.header(name, value);
        }
        let response = request.send().with_context(|| format!("GET {url}"))?;
        read(response, "GET", url)
    }

    /// An operator POST (empty JSON body) behind the gateway check.
    pub fn post(&self, client: &reqwest::blocking::Client, url: &str) -> Result<Value> {
        let mut request = client.post(url).json(&serde_json::json!({}));
        for (name, value) in self.headers(1)? {
            request = request.header(name, value);
        }
        let response = request.send().with_context(|| format!("POST {url}"))?;
        read(response, "POST", url)
    }
}
