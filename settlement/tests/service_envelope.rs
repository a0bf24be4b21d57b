//! Envelope, idempotency, cancellation/reversal and bad-input behaviour of the service, each on
//! SQLite and PostgreSQL: a resend returns the first outcome; a msgid reused with another body is
//! refused; 2208 restores the accumulators and the account; 2601 reverses a settlement or voids a
//! msgid that never arrived (a late arrival is refused); bad input is refused with a stable code
//! and NOTHING is written (row counts of every table unchanged); the gateway refuses stale,
//! reused and forged headers. Amounts are hand arithmetic on the fixture prices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::inconsistent_digit_grouping)]

mod common;
mod service_support;

use std::collections::HashMap;

use common::BOTH;
use serde_json::{Value, json};
use service_support::{Harness, envelope, fen, msgid};
use settlement::service::GatewayConfig;
use settlement::service::gateway::signature;

const FIX: &str = "H11010500001";
const BJ: &str = "110000";
/// 陈晓, 职工 在职, 110000, account 12.34 (fixtures/persons/cards.csv).
const PSN: &str = "11000000000000000003";

fn env(infno: &str, n: u32, input: Value) -> Value {
    envelope(infno, &msgid(FIX, n), FIX, BJ, input)
}

/// 2201 + 2204 of one 甲类 line `cnt` × 30.00; returns mdtrt_id.
async fn visit_with_fee(h: &Harness, n: u32, cnt: u32) -> String {
    let reg = h
        .ok(&env(
            "2201",
            n,
            json!({"data": {"psn_no": PSN, "insutype": "310", "begntime": "2026-11-30 09:00:00"}}),
        ))
        .await;
    let mdtrt_id = reg["data"]["mdtrt_id"].as_str().unwrap().to_owned();
    h.ok(&env(
        "2204",
        n + 1,
        json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": mdtrt_id,
        "psn_no": PSN, "chrg_bchno": "B1", "med_list_codg": "XJ01CAA001A000000007919",
        "det_item_fee_sumamt": format!("{}.00", cnt * 30), "cnt": cnt, "pric": "30.00"}]}),
    ))
    .await;
    mdtrt_id
}

fn settle_input(mdtrt_id: &str, medfee: &str) -> Value {
    json!({"data": {"psn_no": PSN, "mdtrt_id": mdtrt_id, "medfee_sumamt": medfee,
        "insutype": "310", "acct_used_flag": "1", "med_type": "11"}})
}

async fn accumulators(h: &Harness, n: u32) -> HashMap<String, i64> {
    let out = h
        .ok(&env("5206", n, json!({"data": {"psn_no": PSN}})))
        .await;
    out["cuminfo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cum_type_code"].as_str().unwrap().to_owned(),
                fen(&c["cum"]),
            )
        })
        .collect()
}

#[tokio::test]
async fn resend_returns_first_outcome_and_reuse_is_refused() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let mdtrt_id = visit_with_fee(&h, 10, 100).await;
        let settle = env("2207", 12, settle_input(&mdtrt_id, "3000.00"));
        let first = h.ok(&settle).await;
        // Same msgid, same body (whitespace and inf_time differ): the same reply, no new posting.
        let mut resend = settle.clone();
        resend["inf_time"] = json!("2026-11-30 10:05:00");
        assert_eq!(h.ok(&resend).await, first);
        // Same msgid, other body: refused.
        let mut other = settle.clone();
        other["input"]["data"]["acct_used_flag"] = json!("0");
        h.refused(&other, "E1006").await;
        // A second settlement of the same visit with a new msgid: refused, names the first.
        let msg = h
            .refused(
                &env("2207", 13, settle_input(&mdtrt_id, "3000.00")),
                "E2303",
            )
            .await;
        assert!(msg.contains(first["setlinfo"]["setl_id"].as_str().unwrap()));
        let settled: i64 = h
            .medical
            .settlements_made_by(&msgid(FIX, 12))
            .await
            .unwrap();
        assert_eq!(settled, 1);
        h.verify().await;
        h.finish().await;
    }
}

/// The msgid is decided inside the serialised write (no look-up before the work): a msgid that
/// already has an outcome, reused by a request that passes every check, is refused by the
/// writer and writes nothing, for the money-free writer (2204) and the ledger's (2207).
#[tokio::test]
async fn msgid_taken_is_refused_inside_the_write_and_writes_nothing() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let first = visit_with_fee(&h, 10, 100).await;
        h.ok(&env("2207", 12, settle_input(&first, "3000.00")))
            .await;
        let second = h
            .ok(&env(
                "2201",
                30,
                json!({"data": {"psn_no": PSN, "insutype": "310",
                    "begntime": "2026-11-30 09:30:00"}}),
            ))
            .await["data"]["mdtrt_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // A valid 2204 for the second visit under the first visit's 2204 msgid (11).
        let before = h.counts().await;
        let fee = json!({"feedetail": [{"feedetl_sn": "1", "mdtrt_id": second,
            "psn_no": PSN, "chrg_bchno": "B1", "med_list_codg": "XJ01CAA001A000000007919",
            "det_item_fee_sumamt": "60.00", "cnt": 2, "pric": "30.00"}]});
        h.refused(&env("2204", 11, fee.clone()), "E1006").await;
        assert_eq!(
            h.counts().await,
            before,
            "nothing written by the refused 2204"
        );
        h.ok(&env("2204", 31, fee)).await;
        // A valid 2207 of the second visit under the first visit's registration msgid (10).
        let before = h.counts().await;
        h.refused(&env("2207", 10, settle_input(&second, "60.00")), "E1006")
            .await;
        assert_eq!(
            h.counts().await,
            before,
            "nothing written by the refused 2207"
        );
        assert_eq!(
            h.medical
                .settlements_made_by(&msgid(FIX, 10))
                .await
                .unwrap(),
            0
        );
        h.ok(&env("2207", 32, settle_input(&second, "60.00"))).await;
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn cancellation_restores_accumulators_and_account() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let before = accumulators(&h, 1).await;
        assert!(before.is_empty());
        let mdtrt_id = visit_with_fee(&h, 10, 100).await;
        let out = h
            .ok(&env("2207", 12, settle_input(&mdtrt_id, "3000.00")))
            .await;
        let s = &out["setlinfo"];
        // 3000.00 in scope, deductible 1800 (110000.toml, B): fund (3000 - 1800) × 0.70 = 840.00.
        assert_eq!(fen(&s["hifp_pay"]), 840_00);
        assert_eq!(fen(&s["acct_pay"]), 12_34);
        let after = accumulators(&h, 2).await;
        assert_eq!(after["outpatient.deductible_used"], 1800_00);
        assert_eq!(after["outpatient.hifp_paid"], 840_00);
        let cancel = env(
            "2208",
            20,
            json!({"data": {"setl_id": s["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": PSN}}),
        );
        let reply = h.ok(&cancel).await;
        assert_eq!(fen(&reply["setlinfo"]["medfee_sumamt"]), -3000_00);
        assert_eq!(h.ok(&cancel).await, reply, "2208 is idempotent");
        let restored = accumulators(&h, 3).await;
        assert!(restored.values().all(|v| *v == 0), "{restored:?}");
        // A second cancellation with a new msgid: refused.
        let again = env(
            "2208",
            21,
            json!({"data": {"setl_id": s["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": PSN}}),
        );
        h.refused(&again, "E2305").await;
        // The account holds 12.34 again, and the visit can be settled anew.
        let info = h
            .ok(&env(
                "1101",
                22,
                json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": "B10020032"}}),
            ))
            .await;
        assert_eq!(fen(&info["insuinfo"][0]["balc"]), 12_34);
        let resettle = h
            .ok(&env("2207", 23, settle_input(&mdtrt_id, "3000.00")))
            .await;
        assert_eq!(fen(&resettle["setlinfo"]["hifp_pay"]), 840_00);
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn reversal_by_msgid_reverses_or_voids() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let mdtrt_id = visit_with_fee(&h, 10, 100).await;
        h.ok(&env("2207", 12, settle_input(&mdtrt_id, "3000.00")))
            .await;
        let rev = env(
            "2601",
            30,
            json!({"data": {"psn_no": PSN, "omsgid": msgid(FIX, 12), "oinfno": "2207"}}),
        );
        let out = h.ok(&rev).await;
        assert_eq!(out["data"]["rslt"], "reversed");
        assert_eq!(h.ok(&rev).await, out, "2601 is idempotent");
        // The msgid of a settlement that never arrived is voided; its late arrival is refused.
        let void = env(
            "2601",
            31,
            json!({"data": {"psn_no": PSN, "omsgid": msgid(FIX, 40), "oinfno": "2207"}}),
        );
        assert_eq!(h.ok(&void).await["data"]["rslt"], "voided");
        let late = env("2207", 40, settle_input(&mdtrt_id, "3000.00"));
        h.refused(&late, "E1007").await;
        assert_eq!(
            h.medical
                .settlements_made_by(&msgid(FIX, 40))
                .await
                .unwrap(),
            0
        );
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_written() {
    for db in BOTH {
        let h = Harness::new(db).await;
        let mdtrt_id = visit_with_fee(&h, 10, 100).await;
        let before = h.counts().await;
        let fee = |n: u32, code: &str, amount: Value| {
            env(
                "2204",
                n,
                json!({"feedetail": [{"feedetl_sn": format!("{n}"), "mdtrt_id": mdtrt_id,
                "psn_no": PSN, "chrg_bchno": "B2", "med_list_codg": code,
                "det_item_fee_sumamt": amount, "cnt": 1, "pric": amount}]}),
            )
        };
        let (status, reply) = h.raw("{not json", &[]).await;
        assert_eq!(
            (status, reply.infcode, reply.err_code.as_deref()),
            (200, -1, Some("E1001"))
        );
        let mut missing = env("2207", 50, json!({}));
        missing.as_object_mut().unwrap().remove("msgid");
        h.refused(&missing, "E1001").await;
        h.refused(&env("9999", 51, json!({})), "E1005").await;
        h.refused(&fee(52, "XJ01CAA001A000000007919", json!("-5.00")), "E2002")
            .await;
        h.refused(&fee(53, "XJ01CAA001A000000007919", json!("abc")), "E1004")
            .await;
        h.refused(&fee(54, "XJ01CAA001A000000007919", json!(1.005)), "E2002")
            .await;
        h.refused(&fee(55, "XZ99ZZZ999Z999999999999", json!("5.00")), "E2001")
            .await;
        h.refused(&env("2207", 56, settle_input(&mdtrt_id, "-1.00")), "E1004")
            .await;
        h.refused(
            &env("2207", 57, settle_input(&mdtrt_id, "2999.99")),
            "E2301",
        )
        .await;
        let nobody = json!({"data": {"psn_no": "99999999999999999999", "insutype": "310", "begntime": "2026-11-30 09:00:00"}});
        h.refused(&env("2201", 58, nobody), "E2101").await;
        h.refused(
            &env(
                "1101",
                59,
                json!({"data": {"mdtrt_cert_type": "02", "certno": "110101190001010000"}}),
            ),
            "E2101",
        )
        .await;
        h.refused(&env("2207", 60, json!({"data": {"psn_no": PSN}})), "E1003")
            .await;
        assert_eq!(
            h.counts().await,
            before,
            "{db:?}: a refusal wrote something"
        );
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn gateway_refuses_stale_reused_and_forged() {
    let gateway = GatewayConfig {
        callers: HashMap::from([("his1".to_owned(), "token-1".to_owned())]),
        timestamp_window_s: 60,
        nonces_max: 1_000,
    };
    let h = Harness::with_gateway(common::Db::Sqlite, gateway).await;
    let body = env("9001", 1, json!({"signIn": {"opter_no": "OP001"}})).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let headers = |ts: &str, nonce: &str, sig: String| {
        vec![
            ("x-tif-paasid", "his1".to_owned()),
            ("x-tif-timestamp", ts.to_owned()),
            ("x-tif-nonce", nonce.to_owned()),
            ("x-tif-signature", sig),
        ]
    };
    let good = headers(&now, "n-1", signature(&now, "token-1", "n-1"));
    assert_eq!(h.raw(&body, &good).await.1.infcode, 0);
    let (status, reply) = h.raw(&body, &good).await;
    assert_eq!((status, reply.err_code.as_deref()), (401, Some("E1008")));
    assert!(reply.err_msg.unwrap().contains("nonce"));
    let stale = "1000000000";
    let (status, _) = h
        .raw(
            &body,
            &headers(stale, "n-2", signature(stale, "token-1", "n-2")),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = h
        .raw(
            &body,
            &headers(&now, "n-3", signature(&now, "wrong", "n-3")),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = h.raw(&body, &[]).await;
    assert_eq!(status, 401);
    h.finish().await;
}

#[tokio::test]
async fn totals_reconciliation_and_fee_and_visit_cancellation() {
    for db in BOTH {
        let h = Harness::new(db).await;
        // Two visits of 100 × 30.00 and 10 × 30.00, both settled; the second cancelled.
        let a = visit_with_fee(&h, 10, 100).await;
        let first = h.ok(&env("2207", 12, settle_input(&a, "3000.00"))).await;
        let b = visit_with_fee(&h, 20, 10).await;
        let second = h.ok(&env("2207", 22, settle_input(&b, "300.00"))).await;
        let cancel = json!({"data": {"setl_id": second["setlinfo"]["setl_id"], "mdtrt_id": b, "psn_no": PSN}});
        h.ok(&env("2208", 23, cancel)).await;
        let today = first["setlinfo"]["setl_time"].as_str().unwrap()[..10].to_owned();
        let s = &first["setlinfo"];
        let totals = |n: u32, medfee: &Value, count: u32| {
            env(
                "3201",
                n,
                json!({"data": {"insutype": "310", "clr_type": "11", "setl_optins": "110000",
                "stmt_begndate": today, "stmt_enddate": today, "medfee_sumamt": medfee,
                "fund_pay_sumamt": s["fund_pay_sumamt"], "acct_pay": s["acct_pay"],
                "fixmedins_setl_cnt": count}}),
            )
        };
        // Only the live settlement counts: balanced with its own figures, unbalanced otherwise.
        let out = h.ok(&totals(30, &s["medfee_sumamt"], 1)).await;
        assert_eq!(out["stmtinfo"]["stmt_rslt"], "0");
        let out = h.ok(&totals(31, &json!("3300.00"), 2)).await;
        assert_eq!(out["stmtinfo"]["stmt_rslt"], "1");
        assert_eq!(fen(&out["stmtinfo"]["medfee_sumamt"]), 3000_00);

        // 2205 cancels a line of an unsettled visit; 2202 then cancels the visit; a settlement of
        // a cancelled visit is refused.
        let c = visit_with_fee(&h, 40, 5).await;
        h.ok(&env(
            "2205",
            42,
            json!({"data": {"mdtrt_id": c, "chrg_bchno": "B1", "feedetl_sn": "1", "psn_no": PSN}}),
        ))
        .await;
        h.refused(&env("2207", 43, settle_input(&c, "150.00")), "E2302")
            .await;
        h.ok(&env(
            "2202",
            44,
            json!({"data": {"mdtrt_id": c, "psn_no": PSN}}),
        ))
        .await;
        h.refused(&env("2207", 45, settle_input(&c, "150.00")), "E2202")
            .await;
        // A settled visit cannot be cancelled or get more fees before its settlement is cancelled.
        h.refused(
            &env("2202", 46, json!({"data": {"mdtrt_id": a, "psn_no": PSN}})),
            "E2202",
        )
        .await;
        h.verify().await;
        h.finish().await;
    }
}

#[tokio::test]
async fn health_ready_and_openapi() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    let h = Harness::new(common::Db::Sqlite).await;
    for (path, status) in [("/health", 200), ("/ready", 200), ("/openapi.json", 200)] {
        let response = settlement::service::app(h.state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{path}");
        if path == "/openapi.json" {
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(doc["paths"][settlement::service::CALL_SERVICE_PATH]["post"].is_object());
        }
    }
    h.state
        .ready
        .store(false, std::sync::atomic::Ordering::Release);
    let response = settlement::service::app(h.state.clone())
        .oneshot(Request::get("/ready").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    // While not ready (shutting down) envelopes are refused as retryable, nothing written.
    h.refused(
        &env("9001", 1, json!({"signIn": {"opter_no": "OP001"}})),
        "E9001",
    )
    .await;
    h.finish().await;
}
