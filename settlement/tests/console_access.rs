//! The operators' console without a browser (driven with `oneshot`), on SQLite and PostgreSQL:
//! login, cookie attributes, roles per page, CSRF, lockout after repeated failures, and the
//! audited holder lookup that the holder then sees through the identity API with their token.
//! Figures come from fixtures (cards.csv: 赵文博, ID 120101198805121236, card T00012345).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod console_support;
mod identity_support;
mod service_support;

use std::sync::Arc;

use common::BOTH;
use console_support::{PASSWORD, log_in, send};
use identity_support::{CERTNO, IdHarness, NAME};
use settlement::console::{Console, ConsoleOptions, Role, router};

#[tokio::test]
async fn roles_csrf_lockout_and_the_audited_lookup() {
    for db in BOTH {
        let t = IdHarness::new(db).await;
        let holder_token = t.token().await;
        let console = Arc::new(Console::new(
            t.h.ledger.clone(),
            Some(t.identity.clone()),
            ConsoleOptions::default(),
        ));
        console.ensure_admin("admin", PASSWORD).await.unwrap();
        console
            .create_user("op1", Role::Operator, PASSWORD, "admin")
            .await
            .unwrap();
        console
            .create_user("view1", Role::Viewer, PASSWORD, "admin")
            .await
            .unwrap();
        let app = router(console.clone());

        // No session: pages send to the login page, forms are refused.
        let reply = send(&app, "GET", "/console/", "", "").await;
        assert_eq!(
            (reply.status, reply.location.as_str()),
            (303, "/console/login")
        );
        let reply = send(
            &app,
            "POST",
            "/console/cards/lost",
            "",
            "csrf=x&card_no=T00012345",
        )
        .await;
        assert_eq!(reply.status, 401);
        let reply = send(&app, "GET", "/console/admin", "0".repeat(64).as_str(), "").await;
        assert_eq!(reply.status, 303);

        // A wrong password is one message for unknown and known accounts.
        let wrong = send(
            &app,
            "POST",
            "/console/login",
            "",
            "username=op1&password=nope",
        )
        .await;
        let unknown = send(
            &app,
            "POST",
            "/console/login",
            "",
            "username=ghost&password=nope",
        )
        .await;
        assert_eq!((wrong.status, unknown.status), (401, 401));
        assert!(wrong.body.contains("wrong name or password"));
        assert!(unknown.body.contains("wrong name or password"));

        // Viewer: dashboards only; no person data on them.
        let (viewer, viewer_csrf) = log_in(&app, "view1").await;
        let dashboard = send(&app, "GET", "/console/", &viewer, "").await;
        assert!(dashboard.body.contains("Card uses (aggregates)"));
        assert!(dashboard.body.contains("<svg class=\"chart\""));
        assert!(!dashboard.body.contains("/console/holders"));
        assert!(!dashboard.body.contains(NAME) && !dashboard.body.contains(CERTNO));
        assert_eq!(
            send(&app, "GET", "/console/operations", &viewer, "")
                .await
                .status,
            403
        );
        assert_eq!(
            send(&app, "GET", "/console/holders", &viewer, "")
                .await
                .status,
            403
        );
        let form = format!("csrf={viewer_csrf}&certno={CERTNO}&reason=curious");
        assert_eq!(
            send(&app, "POST", "/console/holders/lookup", &viewer, &form)
                .await
                .status,
            403
        );

        // Operator: operations and holders, not accounts.
        let (operator, csrf) = log_in(&app, "op1").await;
        let operations = send(&app, "GET", "/console/operations", &operator, "").await;
        assert_eq!(operations.status, 200);
        assert!(
            operations.body.contains("0 mismatches"),
            "{}",
            operations.body
        );
        assert_eq!(
            send(&app, "GET", "/console/admin", &operator, "")
                .await
                .status,
            403
        );
        // A stale CSRF token is refused; a lookup without a reason reads nothing.
        let stale = format!("csrf={}&certno={CERTNO}&reason=x", "0".repeat(32));
        assert_eq!(
            send(&app, "POST", "/console/holders/lookup", &operator, &stale)
                .await
                .status,
            403
        );
        let no_reason = format!("csrf={csrf}&certno={CERTNO}&reason=+");
        assert_eq!(
            send(
                &app,
                "POST",
                "/console/holders/lookup",
                &operator,
                &no_reason
            )
            .await
            .status,
            400
        );
        let form = format!("csrf={csrf}&certno={CERTNO}&reason=ticket+12333-0042");
        let lookup = send(&app, "POST", "/console/holders/lookup", &operator, &form).await;
        assert_eq!(lookup.status, 200, "{}", lookup.body);
        assert!(lookup.body.contains(NAME) && lookup.body.contains("120101********1236"));
        assert!(lookup.body.contains("signin"));

        // The holder sees exactly that read (and the trail read) with the reason, nothing else.
        let (status, reads) = t
            .request(
                "GET",
                "/identity/v1/me/reads",
                &IdHarness::bearer(&holder_token),
                None,
            )
            .await;
        assert_eq!(status, 200);
        let reads = reads["reads"].as_array().unwrap();
        assert_eq!(reads.len(), 2, "{reads:?}");
        for read in reads {
            assert_eq!(read["reader"], "console:op1");
            assert_eq!(read["reason"], "ticket 12333-0042");
        }

        // Admin: accounts; the log shows the lookup.
        let (admin, admin_csrf) = log_in(&app, "admin").await;
        let page = send(&app, "GET", "/console/admin", &admin, "").await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("holder_lookup") && page.body.contains("view1"));
        let create = format!("csrf={admin_csrf}&username=view2&role=viewer&password=short");
        assert_eq!(
            send(&app, "POST", "/console/admin/users", &admin, &create)
                .await
                .status,
            400
        );

        // Log out ends the session.
        let out = send(
            &app,
            "POST",
            "/console/logout",
            &viewer,
            &format!("csrf={viewer_csrf}"),
        )
        .await;
        assert_eq!(out.status, 303);
        assert_eq!(
            send(&app, "GET", "/console/", &viewer, "").await.status,
            303
        );

        // Five wrong passwords lock the account, even against the right one.
        for _ in 0..5 {
            send(
                &app,
                "POST",
                "/console/login",
                "",
                "username=view1&password=wrong",
            )
            .await;
        }
        let locked = send(
            &app,
            "POST",
            "/console/login",
            "",
            &format!("username=view1&password={}", PASSWORD.replace(' ', "+")),
        )
        .await;
        assert_eq!(locked.status, 401);
        assert!(locked.body.contains("locked"));
        drop(app);
        drop(console);
        t.finish().await;
    }
}
