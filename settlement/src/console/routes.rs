//! The console's routes under `/console/`. GET pages without a session redirect to the login
//! page (303); POSTs without one answer 401; a role below the page's answers 403. Every POST
//! carries the session's CSRF token (besides the `SameSite=Strict` cookie).

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Router, extract::DefaultBodyLimit};
use serde::Deserialize;

use super::Console;
use super::chart::bars;
use super::html::{beijing, escape, page, table, yuan};
use super::users::{ConsoleError, Role, SessionInfo};
use crate::identity::{business_day, now_ms};

/// The session cookie's name.
pub const COOKIE: &str = "ssc_console";
/// Largest form body, bytes.
const FORM_BYTES_MAX: usize = 16 * 1024;

/// The console's routes over `console`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(dashboard))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/operations", get(operations))
        .route("/console/holders", get(holders))
        .route("/console/partners", get(super::partners::partners))
        .route("/console/partners/decision", post(super::partners::decide))
        .route("/console/holders/lookup", post(holder_lookup))
        .route("/console/cards/lost", post(card_lost))
        .route("/console/admin", get(admin))
        .route("/console/admin/users", post(create_user))
        .layer(DefaultBodyLimit::max(FORM_BYTES_MAX))
        .with_state(console)
}

/// A refusal or failure as a page.
pub(super) struct PageError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!("<p class=\"error\" id=\"error\">{}</p>", escape(&self.1));
        (self.0, Html(page("Console", None, &body))).into_response()
    }
}

impl From<ConsoleError> for PageError {
    fn from(error: ConsoleError) -> PageError {
        match error {
            ConsoleError::Database(e) => {
                tracing::warn!(error = %e, "console database error");
                PageError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
            ConsoleError::Crypto(_) => {
                PageError(StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
            other => PageError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

impl From<crate::identity::IdentityError> for PageError {
    fn from(error: crate::identity::IdentityError) -> PageError {
        let (_, status) = error.catalogue();
        PageError(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error.public_message(),
        )
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The session of a GET page: none redirects to the login page, a low role is 403.
pub(super) async fn page_session(
    console: &Console,
    headers: &HeaderMap,
    needs: Role,
) -> Result<SessionInfo, Response> {
    let session = match cookie_token(headers) {
        Some(token) => console
            .session(&token)
            .await
            .map_err(|e| PageError::from(e).into_response())?,
        None => None,
    };
    let Some(session) = session else {
        return Err(Redirect::to("/console/login").into_response());
    };
    if session.role < needs {
        return Err(forbidden(&session, needs));
    }
    Ok(session)
}

fn forbidden(session: &SessionInfo, needs: Role) -> Response {
    let body = format!(
        "<p class=\"error\" id=\"error\">This page needs the role {}; you are {}.</p>",
        needs.code(),
        session.role.code()
    );
    (
        StatusCode::FORBIDDEN,
        Html(page("Not allowed", Some(session), &body)),
    )
        .into_response()
}

/// The session of a POST: none is 401, a wrong CSRF token 403, a low role 403.
pub(super) async fn post_session(
    console: &Console,
    headers: &HeaderMap,
    csrf: &str,
    needs: Role,
) -> Result<SessionInfo, Response> {
    let session = match cookie_token(headers) {
        Some(token) => console
            .session(&token)
            .await
            .map_err(|e| PageError::from(e).into_response())?,
        None => None,
    };
    let Some(session) = session else {
        return Err(PageError(StatusCode::UNAUTHORIZED, "log in first".into()).into_response());
    };
    if session.csrf != csrf {
        return Err(
            PageError(StatusCode::FORBIDDEN, "stale form; reload the page".into()).into_response(),
        );
    }
    if session.role < needs {
        return Err(forbidden(&session, needs));
    }
    Ok(session)
}

async fn login_page() -> Html<String> {
    Html(page("Log in", None, LOGIN_FORM))
}

const LOGIN_FORM: &str = "<form method=\"post\" action=\"/console/login\" id=\"login\">\
    <label>Account <input name=\"username\" autocomplete=\"username\" required></label><br>\
    <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" \
    required></label><br><button type=\"submit\">Log in</button></form>";

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(console): State<Arc<Console>>, Form(form): Form<LoginForm>) -> Response {
    match console.login(&form.username, &form.password).await {
        Ok((token, _)) => {
            let cookie = format!(
                "{COOKIE}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                console.options.session_ttl_ms / 1_000
            );
            let mut response = Redirect::to("/console/").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(error @ (ConsoleError::BadLogin | ConsoleError::Locked)) => {
            let body = format!(
                "<p class=\"error\" id=\"error\">{}</p>{LOGIN_FORM}",
                escape(&error.to_string())
            );
            (StatusCode::UNAUTHORIZED, Html(page("Log in", None, &body))).into_response()
        }
        Err(other) => PageError::from(other).into_response(),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(response) = post_session(&console, &headers, &form.csrf, Role::Viewer).await {
        return response;
    }
    if let Some(token) = cookie_token(&headers)
        && let Err(error) = console.logout(&token).await
    {
        return PageError::from(error).into_response();
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "ssc_console=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

async fn dashboard(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match page_session(&console, &headers, Role::Viewer).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match dashboard_body(&console).await {
        Ok(body) => Html(page("Dashboard", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn dashboard_body(console: &Console) -> Result<String, PageError> {
    let mut body = String::new();
    let per_day = console.settlements_per_day().await?;
    let count: i64 = per_day.iter().map(|(_, n, _)| n).sum();
    let amount: i64 = per_day.iter().map(|(_, _, fen)| fen).sum();
    body.push_str(&format!(
        "<section id=\"settlements-section\"><h2>Medical settlements</h2>\
         <p id=\"settlement-kpi\">{count} settlements, {} yuan over the last {} days with any</p>{}",
        yuan(amount),
        console.options.chart_days,
        bars(
            "settlements per day",
            &per_day.iter().map(|(day, n, _)| (day.clone(), *n)).collect::<Vec<_>>()
        )
    ));
    let rows: Vec<Vec<String>> = console
        .recent_settlements()
        .await?
        .into_iter()
        .map(|s| {
            vec![
                s.setl_id,
                s.setl_date,
                s.fixmedins_code,
                s.insuplc_admdvs.to_string(),
                format!("={}", yuan(s.medfee_sumamt_fen)),
                format!("={}", yuan(s.fund_pay_sumamt_fen)),
                format!("={}", yuan(s.acct_pay_fen)),
                format!("={}", yuan(s.psn_cash_pay_fen)),
                match s.cancel_kind.as_str() {
                    "C" => "cancelled".into(),
                    "R" => "reversed".into(),
                    _ => "settled".into(),
                },
            ]
        })
        .collect();
    body.push_str(&table(
        "settlements",
        &[
            "setl_id",
            "date",
            "institution",
            "参保地",
            "medfee",
            "fund",
            "account",
            "cash",
            "state",
        ],
        &rows,
    ));
    body.push_str("</section><section><h2>Card payments</h2>");
    let rows: Vec<Vec<String>> = console
        .recent_payments()
        .await?
        .into_iter()
        .map(|p| {
            vec![
                p.txn_id,
                p.business_date,
                p.kind,
                p.bank_code,
                p.merchant_id,
                p.pan_masked,
                format!("={}", yuan(p.amount_fen)),
                p.status,
            ]
        })
        .collect();
    body.push_str(&table(
        "payments",
        &[
            "txn_id", "date", "kind", "bank", "merchant", "PAN", "amount", "status",
        ],
        &rows,
    ));
    body.push_str("</section><section><h2>Inter-region positions</h2>");
    let rows: Vec<Vec<String>> = console
        .positions()
        .await?
        .into_iter()
        .map(|p| {
            vec![
                format!("={}", p.window_id),
                p.counter_admdvs.to_string(),
                p.fund_pay_type.to_string(),
                format!("={}", yuan(p.amount_fen)),
            ]
        })
        .collect();
    body.push_str(&table(
        "positions",
        &["window", "toward region", "fund", "position (+ receivable)"],
        &rows,
    ));
    let rows: Vec<Vec<String>> = console
        .window_closes()
        .await?
        .into_iter()
        .map(|(window, at)| vec![format!("={window}"), beijing(at)])
        .collect();
    body.push_str("<h3>Window closes</h3>");
    body.push_str(&table(
        "windows",
        &["window", "closed (Beijing time)"],
        &rows,
    ));
    body.push_str("</section>");
    body.push_str(&trail_section(console).await?);
    Ok(body)
}

async fn trail_section(console: &Console) -> Result<String, PageError> {
    let mut body = String::from("<section id=\"trail-section\"><h2>Card uses (aggregates)</h2>");
    let Some(identity) = &console.identity else {
        body.push_str(
            "<p>card sign-in and the trail are not enabled on this node (--hsm-dir)</p></section>",
        );
        return Ok(body);
    };
    let now = now_ms();
    let from = business_day(now - (console.options.chart_days - 1) * 86_400_000);
    let to = business_day(now + 86_400_000);
    let counts = identity.trail_aggregates(&from, &to).await?;
    let mut per_category: std::collections::BTreeMap<String, i64> = Default::default();
    for count in &counts {
        *per_category.entry(count.category.clone()).or_default() += count.uses;
    }
    body.push_str(&bars(
        "card uses per category",
        &per_category.into_iter().collect::<Vec<_>>(),
    ));
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|c| {
            vec![
                c.day,
                c.admdvs.to_string(),
                c.category,
                c.kind,
                format!("={}", c.uses),
            ]
        })
        .collect();
    body.push_str(&table(
        "trail",
        &["day", "region", "category", "kind", "uses"],
        &rows,
    ));
    body.push_str("<p>No person appears here; one person's uses are shown only with a reason, which is logged and shown to the holder.</p></section>");
    Ok(body)
}

async fn operations(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match page_session(&console, &headers, Role::Operator).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let body = async {
        let mut body = String::from("<section><h2>Reversals waiting</h2>");
        let rows: Vec<Vec<String>> = console
            .reversals_waiting()
            .await?
            .into_iter()
            .map(|r| vec![r.what.to_owned(), r.id, r.counterpart, r.state, format!("={}", r.attempts)])
            .collect();
        body.push_str(&table("reversals", &["what", "id", "toward", "state", "attempts"], &rows));
        body.push_str("</section><section><h2>Reconciliation</h2>");
        let (accounts, postings, problems) = console.ledger_check().await?;
        body.push_str(&format!(
            "<p id=\"ledger-check\" class=\"{}\">ledger: {accounts} accounts, {postings} postings replayed, {} mismatches</p>",
            if problems.is_empty() { "ok" } else { "error" },
            problems.len()
        ));
        let rows: Vec<Vec<String>> = problems.into_iter().map(|p| vec![p]).collect();
        body.push_str(&table("mismatches", &["mismatch"], &rows));
        let rows: Vec<Vec<String>> = console
            .payments_unposted()
            .await?
            .into_iter()
            .map(|id| vec![id])
            .collect();
        body.push_str("<h3>Approved payments without a ledger posting</h3>");
        body.push_str(&table("unposted", &["txn_id"], &rows));
        body.push_str("</section>");
        Ok::<String, PageError>(body)
    }
    .await;
    match body {
        Ok(body) => Html(page("Operations", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn holder_forms(session: &SessionInfo) -> String {
    let csrf = escape(&session.csrf);
    format!(
        "<section><h2>Look a holder up</h2><p>Give the ID number and why you need it. The read \
         is logged with your account and reason, and the holder sees it.</p>\
         <form method=\"post\" action=\"/console/holders/lookup\" id=\"lookup\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>ID number <input name=\"certno\" required maxlength=\"18\"></label>\
         <label>Reason <input name=\"reason\" required maxlength=\"400\"></label>\
         <button type=\"submit\">Look up</button></form></section>\
         <section><h2>Report a card lost</h2>\
         <form method=\"post\" action=\"/console/cards/lost\" id=\"lost\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Card number (卡号) <input name=\"card_no\" required maxlength=\"20\"></label>\
         <button type=\"submit\">Report lost</button></form></section>"
    )
}

async fn holders(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match page_session(&console, &headers, Role::Operator).await {
        Ok(session) => {
            Html(page("Holders", Some(&session), &holder_forms(&session))).into_response()
        }
        Err(response) => response,
    }
}

#[derive(Deserialize)]
struct LookupForm {
    csrf: String,
    certno: String,
    reason: String,
}

async fn holder_lookup(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LookupForm>,
) -> Response {
    let session = match post_session(&console, &headers, &form.csrf, Role::Operator).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let result = async {
        let identity = console
            .identity
            .as_ref()
            .ok_or_else(|| PageError(StatusCode::NOT_FOUND, "card sign-in is not enabled on this node".into()))?;
        if form.reason.trim().is_empty() {
            return Err(crate::identity::IdentityError::ReasonRequired.into());
        }
        let holder_id = identity.holder_by_certno(form.certno.trim()).await?;
        let operator = format!("console:{}", session.username);
        let record = identity.operator_read(&holder_id, &operator, &form.reason).await?;
        let trail = identity.operator_trail(&holder_id, &operator, &form.reason, 50).await?;
        console
            .audit(&session.username, "holder_lookup", &format!("holder {holder_id}"))
            .await?;
        let rows: Vec<Vec<String>> = trail
            .into_iter()
            .map(|e| vec![beijing(e.at_ms), e.kind.code().to_owned(), e.category, e.admdvs.to_string(), e.actor])
            .collect();
        Ok::<String, PageError>(format!(
            "<section id=\"holder\"><p>This read was logged with your reason; the holder sees it.</p>\
             <dl><dt>Holder</dt><dd>{}</dd><dt>人员编号</dt><dd>{}</dd><dt>姓名</dt><dd id=\"holder-name\">{}</dd>\
             <dt>证件号码</dt><dd>{}</dd><dt>参保地</dt><dd>{}</dd></dl><h2>Card uses</h2>{}</section>",
            escape(&record.holder_id),
            escape(&record.psn_no),
            escape(&record.name),
            escape(&record.certno_masked),
            record.insuplc_admdvs,
            table("holder-trail", &["time", "kind", "category", "region", "by"], &rows)
        ))
    }
    .await;
    match result {
        Ok(body) => Html(page("Holder", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct LostForm {
    csrf: String,
    card_no: String,
}

async fn card_lost(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LostForm>,
) -> Response {
    let session = match post_session(&console, &headers, &form.csrf, Role::Operator).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let result = async {
        let identity = console.identity.as_ref().ok_or_else(|| {
            PageError(
                StatusCode::NOT_FOUND,
                "card sign-in is not enabled on this node".into(),
            )
        })?;
        let outcome = identity
            .report_lost(
                form.card_no.trim(),
                &format!("console:{}", session.username),
            )
            .await?;
        console
            .audit(&session.username, "card_lost", "card reported lost")
            .await?;
        Ok::<String, PageError>(format!(
            "<p class=\"ok\" id=\"lost-result\">{}; {} sign-in tokens revoked.</p>",
            if outcome.newly_reported {
                "Card reported lost"
            } else {
                "Card was already reported lost"
            },
            outcome.sessions_revoked
        ))
    }
    .await;
    match result {
        Ok(body) => Html(page("Card reported lost", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn admin(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = match page_session(&console, &headers, Role::Admin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let body = async {
        let rows: Vec<Vec<String>> = console
            .users()
            .await?
            .into_iter()
            .map(|(name, role)| vec![name, role.code().to_owned()])
            .collect();
        let mut body = String::from("<section><h2>Accounts</h2>");
        body.push_str(&table("users", &["account", "role"], &rows));
        body.push_str(&format!(
            "<form method=\"post\" action=\"/console/admin/users\" id=\"new-user\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label>Account <input name=\"username\" required></label>\
             <label>Role <select name=\"role\"><option>viewer</option><option>operator</option>\
             <option>admin</option></select></label>\
             <label>Password <input name=\"password\" type=\"password\" required minlength=\"12\"></label>\
             <button type=\"submit\">Create</button></form></section>",
            escape(&session.csrf)
        ));
        let rows: Vec<Vec<String>> = console
            .audit_log(50)
            .await?
            .into_iter()
            .map(|(user, action, detail, at)| vec![beijing(at), user, action, detail])
            .collect();
        body.push_str("<section><h2>Console log</h2>");
        body.push_str(&table("audit", &["time", "account", "action", "detail"], &rows));
        body.push_str("</section>");
        Ok::<String, PageError>(body)
    }
    .await;
    match body {
        Ok(body) => Html(page("Administration", Some(&session), &body)).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct UserForm {
    csrf: String,
    username: String,
    role: String,
    password: String,
}

async fn create_user(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    let session = match post_session(&console, &headers, &form.csrf, Role::Admin).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let Some(role) = Role::parse(&form.role) else {
        return PageError(
            StatusCode::BAD_REQUEST,
            "role must be viewer, operator or admin".into(),
        )
        .into_response();
    };
    match console
        .create_user(
            form.username.trim(),
            role,
            &form.password,
            &session.username,
        )
        .await
    {
        Ok(()) => Redirect::to("/console/admin").into_response(),
        Err(error) => PageError::from(error).into_response(),
    }
}
