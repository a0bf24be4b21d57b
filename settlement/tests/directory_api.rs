//! Public directory API over `directory::api::router` (oneshot, no socket), on SQLite and
//! PostgreSQL: filters, Chinese search (multi-character words), paging with cursors, ETag/304,
//! the error catalogue, one use by number, OpenAPI, the page's routes. Expected answers follow
//! from the hand-written catalogue in directory_support (its doc lists the facts used).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod directory_support;

use axum::http::StatusCode;
use common::BOTH;
use directory_support::{CSV_V2, Fixture, enc};

const USES: &str = "/api/directory/v1/uses";

#[tokio::test]
async fn filters_combine_or_within_and_across() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let numbers = |r: directory_support::Reply| r.numbers();
        // No filter: every use, in number order.
        let all = f.get(USES, None).await;
        assert_eq!(all.status, StatusCode::OK);
        assert_eq!(all.json()["total"], 6);
        assert_eq!(all.json()["version"], 1);
        assert_eq!(numbers(all), ["T1", "T2", "T3", "T4", "T5", "T6"]);
        let cases: &[(&str, &[&str])] = &[
            (&format!("category={}", enc("就业创业")), &["T1", "T2"]),
            // OR within a filter, comma-separated or repeated.
            (
                &format!("category={},{}", enc("就业创业"), enc("社会保险")),
                &["T1", "T2", "T3"],
            ),
            (
                &format!("category={}&category={}", enc("医疗保障"), enc("公共服务")),
                &["T4", "T6"],
            ),
            (&format!("mode={}", enc("金融支付")), &["T4", "T5", "T6"]),
            (&format!("mode={}", enc("就医结算")), &["T3", "T4"]),
            ("channel=e-card", &["T2", "T4"]),
            // A channel by its Chinese label too.
            (&format!("channel={}", enc("自助终端")), &["T5"]),
            // 120000: national T1, and T2, T3, T6 live there.
            ("region=120000", &["T1", "T2", "T3", "T6"]),
            // 130100 (a city of 河北): national T1, province-wide T3, the city's own T4.
            ("region=130100", &["T1", "T3", "T4"]),
            ("region=national", &["T1"]),
            ("status=illustrative", &["T6"]),
            // AND across filters.
            (
                &format!("category={}&mode={}", enc("公共服务"), enc("金融支付")),
                &["T6"],
            ),
            (&format!("region=110000&mode={}", enc("就医结算")), &["T3"]),
            (&format!("category={}", enc("劳动关系")), &[]),
        ];
        for (query, expected) in cases {
            let reply = f.get(&format!("{USES}?{query}"), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{query}");
            assert_eq!(reply.numbers(), *expected, "{db:?} {query}");
            assert_eq!(reply.json()["total"], expected.len(), "{query}");
        }
        f.finish().await;
    }
}

#[tokio::test]
async fn chinese_search_words_labels_and_ranking() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let cases: &[(&str, &[&str])] = &[
            // A multi-character word inside a longer name (就业失业登记).
            ("失业登记", &["T1"]),
            ("补贴", &["T2"]),
            // 就医结算 is T3's mode and T4's mode; T4's name also has 就医 → T4 ranks first.
            ("就医", &["T4", "T3"]),
            // 电子社保卡: T4's name (weight 8) and T2's channel label (weight 2).
            ("电子社保卡", &["T4", "T2"]),
            // Region labels: 天津市 is 120000 (T2, T3, T6).
            ("天津", &["T2", "T3", "T6"]),
            // Two words: both must match (工伤 in T3's name, 持卡 too).
            ("工伤 持卡", &["T3"]),
            ("工伤 补贴", &[]),
            // The number is searchable.
            ("t5", &["T5"]),
            // Only a stopword: no terms, nothing matches.
            ("的", &[]),
            ("不存在的用途", &[]),
        ];
        for (q, expected) in cases {
            let reply = f.get(&format!("{USES}?q={}", enc(q)), None).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}");
            assert_eq!(reply.numbers(), *expected, "{db:?} q={q}");
        }
        // Search and filters together.
        let reply = f
            .get(&format!("{USES}?q={}&channel=window", enc("天津")), None)
            .await;
        assert_eq!(reply.numbers(), ["T2", "T3"]);
        f.finish().await;
    }
}

#[tokio::test]
async fn paging_follows_cursors_and_refuses_stale_ones() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let mut seen = Vec::new();
        let mut uri = format!("{USES}?limit=4");
        let mut pages = 0;
        loop {
            let reply = f.get(&uri, None).await;
            assert_eq!(reply.status, StatusCode::OK);
            let json = reply.json();
            assert_eq!(json["total"], 6);
            seen.extend(reply.numbers());
            pages += 1;
            match json["next_cursor"].as_str() {
                Some(cursor) => uri = format!("{USES}?limit=4&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(seen, ["T1", "T2", "T3", "T4", "T5", "T6"]);
        // Exactly one page: no cursor.
        let reply = f.get(&format!("{USES}?limit=6"), None).await;
        assert!(reply.json().get("next_cursor").is_none());

        // A cursor of version 1 after version 2 was imported: 409 cursor_stale.
        let first = f.get(&format!("{USES}?limit=2"), None).await;
        let cursor = first.json()["next_cursor"].as_str().unwrap().to_owned();
        f.directory
            .import_csv(CSV_V2.as_bytes(), "test.admin")
            .await
            .unwrap();
        let stale = f
            .get(&format!("{USES}?limit=2&cursor={cursor}"), None)
            .await;
        assert_eq!(stale.status, StatusCode::CONFLICT);
        assert_eq!(stale.code(), "cursor_stale");
        f.finish().await;
    }
}

#[tokio::test]
async fn etag_gives_304_until_the_content_changes() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        for uri in [
            USES.to_owned(),
            format!("{USES}/T2"),
            "/api/directory/v1/facets".to_owned(),
            "/directory/".to_owned(),
        ] {
            let first = f.get(&uri, None).await;
            assert_eq!(first.status, StatusCode::OK, "{uri}");
            let etag = first.etag.clone().expect("ETag");
            assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34);
            let again = f.get(&uri, Some(&etag)).await;
            assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
            assert!(again.body.is_empty());
            assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
            // Weak comparison and lists (RFC 9110 §13.1.2).
            let weak = f.get(&uri, Some(&format!("\"x\", W/{etag}"))).await;
            assert_eq!(weak.status, StatusCode::NOT_MODIFIED, "{uri}");
            let other = f.get(&uri, Some("\"0000\"")).await;
            assert_eq!(other.status, StatusCode::OK, "{uri}");
        }
        // A change to T2 changes the list's and T2's ETag.
        let list = f.get(USES, None).await.etag.unwrap();
        let one = f.get(&format!("{USES}/T2"), None).await.etag.unwrap();
        f.directory
            .import_csv(CSV_V2.as_bytes(), "test.admin")
            .await
            .unwrap();
        let list_after = f.get(USES, Some(&list)).await;
        assert_eq!(list_after.status, StatusCode::OK);
        assert_ne!(list_after.etag.unwrap(), list);
        let one_after = f.get(&format!("{USES}/T2"), Some(&one)).await;
        assert_eq!(one_after.status, StatusCode::OK);
        assert_eq!(one_after.json()["name"], "创业培训补贴网上申请");
        f.finish().await;
    }
}

#[tokio::test]
async fn bad_parameters_get_400_with_a_stable_code() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let long_q = "社".repeat(65);
        let cases: &[(String, StatusCode, &str, Option<&str>)] = &[
            (
                format!("{USES}?category=x"),
                StatusCode::BAD_REQUEST,
                "bad_category",
                Some("category"),
            ),
            (
                format!("{USES}?mode=x"),
                StatusCode::BAD_REQUEST,
                "bad_mode",
                Some("mode"),
            ),
            (
                format!("{USES}?channel=bus"),
                StatusCode::BAD_REQUEST,
                "bad_channel",
                Some("channel"),
            ),
            (
                format!("{USES}?region=12"),
                StatusCode::BAD_REQUEST,
                "bad_region",
                Some("region"),
            ),
            (
                format!("{USES}?status=official"),
                StatusCode::BAD_REQUEST,
                "bad_status",
                Some("status"),
            ),
            (
                format!("{USES}?limit=0"),
                StatusCode::BAD_REQUEST,
                "bad_limit",
                Some("limit"),
            ),
            (
                format!("{USES}?limit=101"),
                StatusCode::BAD_REQUEST,
                "bad_limit",
                Some("limit"),
            ),
            (
                format!("{USES}?limit=abc"),
                StatusCode::BAD_REQUEST,
                "bad_limit",
                Some("limit"),
            ),
            (
                format!("{USES}?cursor=zz"),
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                Some("cursor"),
            ),
            (
                format!("{USES}?q={}", enc(&long_q)),
                StatusCode::BAD_REQUEST,
                "query_too_long",
                Some("q"),
            ),
            (
                format!("{USES}?q=a&q=b"),
                StatusCode::BAD_REQUEST,
                "repeated_param",
                Some("q"),
            ),
            (
                format!("{USES}?foo=1"),
                StatusCode::BAD_REQUEST,
                "unknown_param",
                Some("foo"),
            ),
            (
                format!("{USES}?{}", "limit=1&".repeat(65)),
                StatusCode::BAD_REQUEST,
                "bad_query_string",
                None,
            ),
            (
                format!("{USES}/bad!num"),
                StatusCode::BAD_REQUEST,
                "bad_number",
                None,
            ),
            (
                format!("{USES}/T9"),
                StatusCode::NOT_FOUND,
                "use_not_found",
                None,
            ),
            (
                format!("{USES}/T1?x=1"),
                StatusCode::BAD_REQUEST,
                "unknown_param",
                Some("x"),
            ),
            (
                "/api/directory/v1/versions/0".to_owned(),
                StatusCode::BAD_REQUEST,
                "bad_version",
                None,
            ),
            (
                "/api/directory/v1/versions/99".to_owned(),
                StatusCode::NOT_FOUND,
                "version_not_found",
                None,
            ),
            (
                "/api/directory/v1/versions?before=-1".to_owned(),
                StatusCode::BAD_REQUEST,
                "bad_version",
                None,
            ),
            (
                "/api/directory/v1/versions?limit=101".to_owned(),
                StatusCode::BAD_REQUEST,
                "bad_limit",
                Some("limit"),
            ),
        ];
        for (uri, status, code, param) in cases {
            let reply = f.get(uri, None).await;
            assert_eq!(reply.status, *status, "{uri}");
            let json = reply.json();
            assert_eq!(json["code"], *code, "{uri}");
            assert!(!json["message"].as_str().unwrap().is_empty());
            assert_eq!(json["param"].as_str(), *param, "{uri}");
        }
        // The limit boundary itself is accepted.
        assert_eq!(
            f.get(&format!("{USES}?limit=100"), None).await.status,
            StatusCode::OK
        );
        f.finish().await;
    }
}

#[tokio::test]
async fn one_use_by_number_with_labels() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let reply = f.get(&format!("{USES}/T4"), None).await;
        assert_eq!(reply.status, StatusCode::OK);
        let json = reply.json();
        assert_eq!(json["name"], "电子社保卡就医购药");
        assert_eq!(json["category"], "医疗保障");
        assert_eq!(json["modes"], serde_json::json!(["就医结算", "金融支付"]));
        assert_eq!(
            json["channels"],
            serde_json::json!([{ "code": "e-card", "label": "电子社保卡" }])
        );
        // 130100 is a city of 河北省 (GB/T 2260).
        assert_eq!(
            json["regions"],
            serde_json::json!([{ "code": "130100", "label": "河北省 130100" }])
        );
        assert_eq!(json["operations"], serde_json::json!(["nhsa:2207"]));
        assert_eq!(json["status"], "sourced");
        assert_eq!(json["source_url"], "https://example.org/d");
        let national = f.get(&format!("{USES}/T1"), None).await.json();
        assert_eq!(
            national["regions"],
            serde_json::json!([{ "code": "national", "label": "全国" }])
        );
        f.finish().await;
    }
}

#[tokio::test]
async fn facets_count_every_value() {
    for db in BOTH {
        let f = Fixture::with_v1(db).await;
        let json = f.get("/api/directory/v1/facets", None).await.json();
        assert_eq!(json["version"], 1);
        assert_eq!(json["total"], 6);
        let count = |list: &str, code: &str| {
            json[list]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["code"] == code)
                .map(|v| v["count"].as_u64().unwrap())
        };
        assert_eq!(json["categories"].as_array().unwrap().len(), 7);
        assert_eq!(count("categories", "就业创业"), Some(2));
        assert_eq!(count("categories", "劳动关系"), Some(0));
        assert_eq!(count("modes", "金融支付"), Some(3));
        assert_eq!(count("channels", "e-card"), Some(2));
        // Counted as the region filter selects: T2, T3, T6 live in 120000, T1 is national.
        assert_eq!(count("regions", "120000"), Some(4));
        // 130100 is named by T4 only; T3 (province 130000) and T1 (national) serve it too.
        assert_eq!(count("regions", "130100"), Some(3));
        assert_eq!(count("regions", "national"), Some(1));
        assert_eq!(count("statuses", "illustrative"), Some(1));
        assert!(json["updated_at"].as_str().unwrap().ends_with('Z'));
        f.finish().await;
    }
}

#[tokio::test]
async fn empty_directory_lists_nothing() {
    let f = Fixture::new(common::Db::Sqlite).await;
    let reply = f.get(USES, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["version"], 0);
    assert_eq!(reply.json()["total"], 0);
    f.finish().await;
}

#[tokio::test]
async fn openapi_and_page_routes() {
    let f = Fixture::with_v1(common::Db::Sqlite).await;
    let doc = f.get("/api/directory/v1/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/directory/v1/uses",
        "/api/directory/v1/uses/{number}",
        "/api/directory/v1/facets",
        "/api/directory/v1/versions",
        "/api/directory/v1/versions/{version}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in OpenAPI");
    }
    assert!(doc["components"]["schemas"].get("UseOut").is_some());

    let page = f.get("/directory/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("<title>社会保障卡应用目录</title>"));
    let redirect = f.get("/directory", None).await;
    assert_eq!(redirect.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.location.as_deref(), Some("/directory/"));
    for asset in ["/directory/app.js", "/directory/style.css"] {
        assert_eq!(f.get(asset, None).await.status, StatusCode::OK, "{asset}");
    }
    f.finish().await;
}
