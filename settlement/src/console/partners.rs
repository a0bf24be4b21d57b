//! The console's partner page (`/console/partners`, role `operator`): applications waiting for a
//! decision, with their requested scopes, and the recently decided ones; an operator approves
//! (granting every requested scope at the partner's current rate limit) or rejects a pending
//! application, and suspends an approved one. Each decision goes through
//! [`PartnerPlatform::decide`](crate::partner::PartnerPlatform::decide) with the console account
//! as `console:<account>` (the partner platform's own audit) and lands in the console log.
//! Finer grants (a subset of scopes, another rate) stay on the operator API
//! (`POST /api/partner/v1/admin/applications/{app_id}/decision`).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Console;
use super::html::{beijing, escape, page, table};
use super::routes::{PageError, page_session, post_session};
use super::users::Role;
use crate::partner::{AppId, AppState, Application, Decision, Scope};

/// Rows shown per state.
const ROWS_PER_STATE: u32 = 50;

fn unavailable() -> PageError {
    PageError(
        StatusCode::NOT_FOUND,
        "the partner platform is not enabled on this node".into(),
    )
}

fn internal(error: &crate::partner::PartnerError) -> PageError {
    tracing::error!(error = %error, "console: partner platform");
    PageError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the partner platform failed; see the node's log".into(),
    )
}

fn scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One form button deciding `app`.
fn button(csrf: &str, app: &Application, action: &str, label: &str) -> String {
    format!(
        "<form class=\"inline\" method=\"post\" action=\"/console/partners/decision\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"app_id\" value=\"{}\">\
         <input type=\"hidden\" name=\"action\" value=\"{action}\">\
         <button type=\"submit\" id=\"{action}-{}\">{label}</button></form>",
        escape(csrf),
        escape(app.app_id.as_str()),
        escape(app.app_id.as_str()),
    )
}

/// `GET /console/partners`.
pub(super) async fn partners(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match page_session(&console, &headers, Role::Operator).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let body = async {
        let platform = console.partner.as_ref().ok_or_else(unavailable)?;
        let pending = platform
            .applications(Some(AppState::Pending), ROWS_PER_STATE)
            .await
            .map_err(|e| internal(&e))?;
        // The decisions column is HTML (forms), so this table is written here rather than
        // through `table`, which escapes every cell.
        let mut body = String::from(
            "<section><h2>Applications to approve</h2><p>Approving grants every scope the \
             application asked for; it can then sign requests within them.</p>",
        );
        if pending.is_empty() {
            body.push_str("<p id=\"no-pending\">No application is waiting.</p>");
        } else {
            body.push_str(
                "<table id=\"pending\"><thead><tr><th>application</th><th>partner</th>\
                 <th>kind</th><th>name</th><th>scopes asked</th><th>registered</th><th></th>\
                 </tr></thead><tbody>",
            );
            for app in &pending {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                     <td>{}{}</td></tr>",
                    escape(app.app_id.as_str()),
                    escape(app.partner_code.as_str()),
                    escape(&app.partner_name),
                    app.partner_kind.code(),
                    escape(&app.name),
                    escape(&scopes(&app.requested)),
                    beijing(app.created_at_ms),
                    button(&session.csrf, app, "approve", "Approve"),
                    button(&session.csrf, app, "reject", "Reject"),
                ));
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section><section><h2>Approved</h2>");
        let approved = platform
            .applications(Some(AppState::Approved), ROWS_PER_STATE)
            .await
            .map_err(|e| internal(&e))?;
        let rows: Vec<Vec<String>> = approved
            .iter()
            .map(|app| {
                vec![
                    app.app_id.as_str().to_owned(),
                    format!("{} {}", app.partner_code.as_str(), app.partner_name),
                    app.name.clone(),
                    scopes(&app.granted),
                    format!("={}/min", app.rate_per_minute),
                ]
            })
            .collect();
        body.push_str(&table(
            "approved",
            &["application", "partner", "name", "scopes granted", "rate"],
            &rows,
        ));
        body.push_str("</section>");
        Ok::<String, PageError>(body)
    }
    .await;
    match body {
        Ok(body) => Html(page("Partner applications", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct DecisionForm {
    csrf: String,
    app_id: String,
    action: String,
}

/// `POST /console/partners/decision`: approve (every requested scope), reject or suspend.
/// Errors: 400 unknown action or application id, 404 unknown application, 409 a transition the
/// application's state does not allow (e.g. approving a rejected one).
pub(super) async fn decide(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let session = match post_session(&console, &headers, &form.csrf, Role::Operator).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let result = async {
        let platform = console.partner.as_ref().ok_or_else(unavailable)?;
        let app_id = AppId::parse(form.app_id.trim())
            .ok_or_else(|| PageError(StatusCode::BAD_REQUEST, "no such application id".into()))?;
        let app = platform
            .application(&app_id)
            .await
            .map_err(|e| internal(&e))?
            .ok_or_else(|| PageError(StatusCode::NOT_FOUND, "no such application".into()))?;
        let decision = match form.action.as_str() {
            "approve" => Decision::Approve {
                granted: app.requested.clone(),
                rate: None,
            },
            "reject" => Decision::Reject,
            "suspend" => Decision::Suspend,
            _ => {
                return Err(PageError(
                    StatusCode::BAD_REQUEST,
                    "action must be approve, reject or suspend".into(),
                ));
            }
        };
        platform
            .decide(&app_id, &decision, &format!("console:{}", session.username))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| PageError(e.status(), e.message().to_owned()))?;
        console
            .audit(
                &session.username,
                "partner_decision",
                &format!("{} {}", form.action, app_id.as_str()),
            )
            .await?;
        Ok::<(), PageError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/console/partners").into_response(),
        Err(error) => error.into_response(),
    }
}
