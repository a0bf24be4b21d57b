//! The console's partner page (issue 8: "partner applications to approve"), on SQLite and
//! PostgreSQL: applications registered through the partner API (keys made by the independent
//! Python client) appear as pending with the scopes they asked for; a viewer cannot see the page;
//! a decision without the session's CSRF token changes nothing; an operator approves one (it then
//! holds exactly the scopes it asked for, as the partner API's operator route reports) and rejects
//! another (which can then not be approved); each decision is in the console log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod console_support;
mod partner_support;
mod service_support;

use std::sync::Arc;

use common::BOTH;
use console_support::{PASSWORD, log_in, send};
use partner_support::{P256_PRIV, PartnerHarness, SM2_PRIV, USE_MEDICAL, USE_OTHER};
use settlement::console::{Console, ConsoleOptions, Role, router};

#[tokio::test]
async fn operators_approve_and_reject_partner_applications() {
    for db in BOTH {
        let t = PartnerHarness::start(db).await;
        let asked = [
            (USE_MEDICAL, "settlement.status"),
            (USE_OTHER, "card.verify"),
        ];
        let (app_a, _) = t.register("BANK01", "sm2", SM2_PRIV, &asked, None).await;
        let (app_b, _) = t
            .register("APP002", "p256", P256_PRIV, &asked[1..], None)
            .await;

        let console = Arc::new(
            Console::new(t.core.ledger.clone(), None, ConsoleOptions::default())
                .with_partner(t.platform.clone()),
        );
        console.ensure_admin("admin", PASSWORD).await.unwrap();
        for (name, role) in [("op1", Role::Operator), ("view1", Role::Viewer)] {
            console
                .create_user(name, role, PASSWORD, "admin")
                .await
                .unwrap();
        }
        let app = router(console.clone());

        let (viewer, _) = log_in(&app, "view1").await;
        assert_eq!(
            send(&app, "GET", "/console/partners", &viewer, "")
                .await
                .status,
            403
        );
        let (op, csrf) = log_in(&app, "op1").await;
        let page = send(&app, "GET", "/console/partners", &op, "").await;
        assert_eq!(page.status, 200);
        let pending = page.body.split("id=\"pending\"").nth(1).unwrap();
        for (app_id, partner) in [(&app_a, "BANK01"), (&app_b, "APP002")] {
            let row = pending.split(app_id.as_str()).nth(1).unwrap();
            assert!(row.contains(partner), "{row}");
        }
        let row_a = pending.split(app_a.as_str()).nth(1).unwrap();
        assert!(row_a.contains(&format!(
            "{USE_MEDICAL}:settlement.status {USE_OTHER}:card.verify"
        )));

        // Without the session's CSRF token: refused, nothing decided.
        let forged = format!("csrf=forged&app_id={app_a}&action=approve");
        let reply = send(&app, "POST", "/console/partners/decision", &op, &forged).await;
        assert_eq!(reply.status, 403, "{}", reply.body);
        let state = t
            .admin_get("/api/partner/v1/admin/applications?state=pending")
            .await;
        assert_eq!(state.body["items"].as_array().unwrap().len(), 2);

        // Approve A, reject B.
        for (app_id, action) in [(&app_a, "approve"), (&app_b, "reject")] {
            let form = format!("csrf={csrf}&app_id={app_id}&action={action}");
            let reply = send(&app, "POST", "/console/partners/decision", &op, &form).await;
            assert_eq!(
                (reply.status, reply.location.as_str()),
                (303, "/console/partners"),
                "{}",
                reply.body
            );
        }
        let approved = t
            .admin_get("/api/partner/v1/admin/applications?state=approved")
            .await;
        let items = approved.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["app_id"], app_a.as_str());
        let mut granted: Vec<String> = items[0]["granted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}:{}",
                    s["use"].as_str().unwrap(),
                    s["operation"].as_str().unwrap()
                )
            })
            .collect();
        granted.sort();
        assert_eq!(
            granted,
            [
                format!("{USE_MEDICAL}:settlement.status"),
                format!("{USE_OTHER}:card.verify")
            ]
        );
        let rejected = t
            .admin_get("/api/partner/v1/admin/applications?state=rejected")
            .await;
        assert_eq!(rejected.body["items"][0]["app_id"], app_b.as_str());

        // A rejected application cannot be approved afterwards; an unknown id is a 404.
        let form = format!("csrf={csrf}&app_id={app_b}&action=approve");
        let reply = send(&app, "POST", "/console/partners/decision", &op, &form).await;
        assert_eq!(reply.status, 409, "{}", reply.body);
        let form = format!("csrf={csrf}&app_id=app-0000000000000000&action=approve");
        let reply = send(&app, "POST", "/console/partners/decision", &op, &form).await;
        assert_eq!(reply.status, 404, "{}", reply.body);

        let page = send(&app, "GET", "/console/partners", &op, "").await;
        assert!(page.body.contains("id=\"no-pending\""), "{}", page.body);
        let log = console.audit_log(10).await.unwrap();
        let decisions: Vec<String> = log
            .iter()
            .filter(|(user, action, _, _)| user == "op1" && action == "partner_decision")
            .map(|(_, _, detail, _)| detail.clone())
            .collect();
        assert_eq!(
            decisions,
            [format!("reject {app_b}"), format!("approve {app_a}")]
        );
        drop(app);
        drop(console);
        t.finish().await;
    }
}
