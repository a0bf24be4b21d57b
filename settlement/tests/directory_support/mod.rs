//! Shared by the directory test files: a small hand-written catalogue whose filter and search
//! answers are known by construction (each test states why), a fresh directory on SQLite or
//! PostgreSQL, and a oneshot HTTP helper over `directory::api::router`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use settlement::directory::{Directory, api};
use settlement::{Ledger, LedgerOptions};
use tower::ServiceExt;

use crate::common::{Db, TestDb};

/// Six uses. Facts the tests rely on:
/// - categories: T1, T2 就业创业; T3 社会保险; T4 医疗保障; T5 金融服务; T6 公共服务.
/// - modes: 金融支付 in T4, T5, T6; 就医结算 in T3, T4.
/// - channels: e-card in T2, T4.
/// - regions: T1 national; T2 120000; T3 110000|120000|130000; T4 130100 (a city of 河北);
///   T5 none; T6 120000.
/// - status: T6 illustrative, the rest sourced.
pub const CSV_V1: &str = "\
number,category,name,modes,channels,regions,operations,status,source_url,source_ref,note
T1,就业创业,就业失业登记,身份凭证|信息记录,window,national,,sourced,https://example.org/a,,
T2,就业创业,创业培训补贴申请,身份凭证,window|e-card,120000,,sourced,https://example.org/b,,
T3,社会保险,工伤结算持卡,就医结算,window,110000|120000|130000,,sourced,https://example.org/c,,
T4,医疗保障,电子社保卡就医购药,就医结算|金融支付,e-card,130100,nhsa:2207,sourced,https://example.org/d,,
T5,金融服务,现金存取,金融支付,kiosk,,,sourced,https://example.org/e,,
T6,公共服务,交通出行,身份凭证|金融支付,app,120000,,illustrative,,,示例
";

/// V1 with T2 renamed, T5 removed and T7 added.
pub const CSV_V2: &str = "\
number,category,name,modes,channels,regions,operations,status,source_url,source_ref,note
T1,就业创业,就业失业登记,身份凭证|信息记录,window,national,,sourced,https://example.org/a,,
T2,就业创业,创业培训补贴网上申请,身份凭证,window|e-card,120000,,sourced,https://example.org/b,,
T3,社会保险,工伤结算持卡,就医结算,window,110000|120000|130000,,sourced,https://example.org/c,,
T4,医疗保障,电子社保卡就医购药,就医结算|金融支付,e-card,130100,nhsa:2207,sourced,https://example.org/d,,
T6,公共服务,交通出行,身份凭证|金融支付,app,120000,,illustrative,,,示例
T7,人事人才,人事档案查询,自助查询,web,110000,,sourced,https://example.org/g,,
";

/// A fresh database, its ledger (kept open) and a directory over it.
pub struct Fixture {
    pub db: TestDb,
    pub ledger: Ledger,
    pub directory: Arc<Directory>,
}

impl Fixture {
    pub async fn new(db: Db) -> Fixture {
        let db = TestDb::new(db).await;
        let ledger = db.open(LedgerOptions::default()).await;
        let directory = Arc::new(Directory::from_ledger(&ledger).await.unwrap());
        Fixture {
            db,
            ledger,
            directory,
        }
    }

    pub async fn with_v1(db: Db) -> Fixture {
        let fixture = Fixture::new(db).await;
        fixture
            .directory
            .import_csv(CSV_V1.as_bytes(), "test.admin")
            .await
            .unwrap();
        fixture
    }

    /// GET `uri` with optional If-None-Match; returns (status, ETag, body bytes).
    pub async fn get(&self, uri: &str, if_none_match: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        let response = api::router(Arc::clone(&self.directory))
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            etag,
            location,
            body,
        }
    }

    pub async fn finish(self) {
        drop(self.directory);
        drop(self.ledger);
        self.db.drop_db().await;
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The numbers of a list reply's items, in order.
    pub fn numbers(&self) -> Vec<String> {
        self.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["number"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The error code of an error reply.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap().to_owned()
    }
}

/// Percent-encodes a query value (UTF-8 bytes, RFC 3986 unreserved kept).
pub fn enc(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
