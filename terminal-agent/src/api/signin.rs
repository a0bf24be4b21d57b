//! `POST /v1/readers/{name}/signin`: card sign-in (实名认证) for the holder at a kiosk (issue 8).
//!
//! 1. The agent asks the settlement node for a challenge (`POST /identity/v1/challenges`, the
//!    gateway's `x-tif-*` headers authenticate this terminal).
//! 2. On the reader's worker, in one exclusive card transaction: SELECT SSSE, EF05 (卡识别码,
//!    卡号), VERIFY when the kiosk gave the holder's PIN, then INTERNAL AUTHENTICATE over
//!    `过程因子 ‖ random` (过程因子 = the last 8 bytes of the 卡识别码, docs/ssc-auth-model.md).
//!    The agent holds no key and checks nothing: the node's hsm checks the answer.
//! 3. The agent sends the answer (`POST /identity/v1/signin`) and returns the node's token.
//!
//! The node's refusals come back with the node's status and code (`card_not_genuine`,
//! `challenge_expired`, `card_lost`, ...); a node that cannot be reached is 503
//! `node_unreachable`. The PIN never leaves the card session and is never logged.
//!
//! Settings ([`SigninContext`]): given with [`configure`]; without them the route answers 400.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use card_core::Session;
use card_core::auth::{self, Pin};
use card_core::ssc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::error::AgentError;
use crate::journal::switch::{GatewayCredentials, gateway_signature};

/// Where the node is and how this terminal authenticates to it.
#[derive(Debug, Clone)]
pub struct SigninContext {
    /// The node's base URL (`http://127.0.0.1:8080`).
    pub node_url: String,
    /// The gateway credentials (none: the node's gateway check is off).
    pub credentials: Option<GatewayCredentials>,
    /// Bound on each call to the node, ms.
    pub timeout_ms: u64,
}

static CONTEXT: RwLock<Option<Arc<SigninContext>>> = RwLock::new(None);

/// Sets (or replaces) the route's settings.
pub fn configure(context: SigninContext) {
    let mut slot = CONTEXT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *slot = Some(Arc::new(context));
}

fn context() -> Option<Arc<SigninContext>> {
    CONTEXT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The request. The PIN is never logged.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SigninBody {
    /// The holder's PIN (4 to 12 digits), verified at the card; absent: card only.
    #[serde(default)]
    pub pin: Option<String>,
    /// The service needs the PIN (the node refuses a sign-in without it).
    #[serde(default)]
    pub require_pin: bool,
}

impl std::fmt::Debug for SigninBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigninBody")
            .field("require_pin", &self.require_pin)
            .finish_non_exhaustive()
    }
}

/// The node's token, as the node answered it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SigninView {
    /// The compact JWS (ES256) every service of the platform accepts.
    pub token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The holder pseudonym.
    pub holder_id: String,
    /// `card` or `card+pin`.
    pub acr: String,
    /// APDUs the card part cost.
    #[serde(default)]
    pub apdus: u32,
}

/// What the card said.
struct CardAnswer {
    card_id: [u8; 16],
    card_no: String,
    answer: [u8; 16],
    pin_verified: bool,
    apdus: u32,
}

/// A reply of the node that is not a success: passed through.
fn node_refusal(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let code = body["code"].as_str().unwrap_or("node_refused").to_owned();
    let message = body["message"]
        .as_str()
        .unwrap_or("the settlement node refused the sign-in")
        .to_owned();
    tracing::info!(%code, "sign-in refused by the node");
    let action = "show the holder the message; take the card back";
    (
        status,
        Json(json!({ "code": code, "message": message, "action": action })),
    )
        .into_response()
}

fn unreachable_node() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "code": "node_unreachable",
            "message": "the settlement node did not answer; nothing was signed in",
            "action": "try again later",
        })),
    )
        .into_response()
}

/// `x-tif-*` headers for one call.
fn gateway_headers(
    credentials: &GatewayCredentials,
) -> Result<Vec<(&'static str, String)>, AgentError> {
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| AgentError::Internal("no system randomness".into()))?;
    let nonce = hex::encode(nonce);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string();
    let signature = gateway_signature(&timestamp, &credentials.token, &nonce);
    Ok(vec![
        ("x-tif-paasid", credentials.paas_id.clone()),
        ("x-tif-timestamp", timestamp),
        ("x-tif-nonce", nonce),
        ("x-tif-signature", signature),
    ])
}

/// POSTs `body` to the node; `None` when there is no usable reply.
async fn post(
    context: &SigninContext,
    client: &reqwest::Client,
    path: &str,
    body: Option<Value>,
) -> Result<Option<(u16, Value)>, AgentError> {
    let mut request = client.post(format!("{}{path}", context.node_url.trim_end_matches('/')));
    if let Some(credentials) = &context.credentials {
        for (name, value) in gateway_headers(credentials)? {
            request = request.header(name, value);
        }
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let Ok(response) = request.send().await else {
        return Ok(None);
    };
    let status = response.status().as_u16();
    Ok(response
        .json::<Value>()
        .await
        .ok()
        .map(|body| (status, body)))
}

/// The card part, on the reader's worker: EF05, [VERIFY], INTERNAL AUTHENTICATE.
fn card_answer(
    link: &mut crate::reader::CardLink<'_>,
    random: [u8; 8],
    pin: Option<&Pin>,
) -> Result<CardAnswer, AgentError> {
    let mut counting = crate::card::CountingTransport::new(link.transport.as_mut());
    let answer = {
        let mut session = Session::new(&mut counting);
        let identity = ssc::read_identity(&mut session)?;
        let pin_verified = match pin {
            Some(pin) => match auth::verify_pin(&mut session, pin) {
                Ok(()) => true,
                Err(auth::AuthError::PinWrong { tries_left: 0 }) => {
                    return Err(AgentError::PinBlocked);
                }
                Err(other) => return Err(other.into()),
            },
            None => false,
        };
        let factor = identity.card_id.diversification_factor();
        let answer = auth::internal_authenticate(&mut session, &factor, &random)?;
        CardAnswer {
            card_id: *identity.card_id.as_bytes(),
            card_no: identity.card_number.clone(),
            answer,
            pin_verified,
            apdus: 0,
        }
    };
    Ok(CardAnswer {
        apdus: counting.apdus(),
        ..answer
    })
}

/// Signs the holder of the card in `name` in at the node (module doc).
#[utoipa::path(post, path = "/v1/readers/{name}/signin",
    params(("name" = String, Path, description = "PC/SC reader name")),
    request_body = SigninBody,
    responses(
        (status = 201, body = SigninView),
        (status = 400, body = super::ErrorBody, description = "not configured, pin_format"),
        (status = 401, body = super::ErrorBody, description = "card_not_genuine (from the node)"),
        (status = 403, body = super::ErrorBody, description = "card_lost, pin_required (from the node)"),
        (status = 409, body = super::ErrorBody, description = "challenge_used (from the node)"),
        (status = 410, body = super::ErrorBody, description = "challenge_expired (from the node)"),
        (status = 422, body = super::ErrorBody, description = "pin_wrong"),
        (status = 503, body = super::ErrorBody, description = "node_unreachable"),
    ))]
pub async fn signin(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<SigninBody>>,
) -> Result<Response, ApiError> {
    let Some(context) = context() else {
        return Err(AgentError::BadRequest(
            "card sign-in is not configured on this agent ([switch] url)".into(),
        )
        .into());
    };
    let body = body.map(|Json(body)| body).unwrap_or_default();
    let pin = body
        .pin
        .as_deref()
        .map(Pin::new)
        .transpose()
        .map_err(AgentError::from)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(context.timeout_ms))
        .build()
        .map_err(|e| AgentError::Internal(format!("HTTP client: {e}")))?;
    let Some((status, challenge)) =
        post(&context, &client, "/identity/v1/challenges", None).await?
    else {
        return Ok(unreachable_node());
    };
    if status != 201 {
        return Ok(node_refusal(status, &challenge));
    }
    let random: [u8; 8] = challenge["random"]
        .as_str()
        .and_then(|text| hex::decode(text).ok())
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| AgentError::Internal("the node's challenge is malformed".into()))?;
    let card = state
        .readers
        .run(&name, state.settings.card_timeout_ms, move |link| {
            card_answer(link, random, pin.as_ref())
        })
        .await?;
    let request = json!({
        "challenge_id": challenge["challenge_id"],
        "card_id": hex::encode_upper(card.card_id),
        "card_no": card.card_no,
        "answer": hex::encode_upper(card.answer),
        "pin_verified": card.pin_verified,
        "require_pin": body.require_pin,
    });
    let Some((status, issued)) =
        post(&context, &client, "/identity/v1/signin", Some(request)).await?
    else {
        return Ok(unreachable_node());
    };
    if status != 201 {
        return Ok(node_refusal(status, &issued));
    }
    let mut view: SigninView = serde_json::from_value(issued)
        .map_err(|_| AgentError::Internal("the node's token reply is malformed".into()))?;
    view.apdus = card.apdus;
    tracing::info!(reader = %name, acr = %view.acr, apdus = view.apdus, "card sign-in");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}
