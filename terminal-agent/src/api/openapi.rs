//! The OpenAPI document (utoipa), served at `GET /openapi.json`.

use axum::Json;
use utoipa::OpenApi;

/// The agent's API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "terminal-agent",
        description = "Card-reader daemon: social security card reads, PIN, the unified reader interface, events. Local (127.0.0.1) only."
    ),
    paths(
        super::cards::list_readers,
        super::cards::read_card,
        super::cards::read_bank,
        super::cards::verify_pin,
        super::unified::i_read_card_bas,
        super::unified::i_verify_pin,
        super::settle::settle,
        super::payment::purchase,
        super::signin::signin,
        super::events::events,
    ),
    components(schemas(
        crate::reader::ReaderInfo,
        crate::reader::ReaderEvent,
        crate::reader::ReaderEventKind,
        super::settle::SettleBody,
        super::settle::FeeLineBody,
        super::settle::SettleView,
        super::settle::SettleOutcome,
        super::payment::PurchaseBody,
        super::payment::PurchaseView,
        super::payment::PurchaseOutcome,
        super::signin::SigninBody,
        super::signin::SigninView,
        super::ErrorBody,
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
