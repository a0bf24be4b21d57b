//! `GET /v1/events`: server-sent events of readers and cards coming and going, for kiosk
//! screens. Each event is `event: <kind>` with the JSON [`ReaderEvent`] as data. A slow client
//! loses the oldest events (the channel is bounded) and is told with a `lagged` event.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};

use super::{ApiError, AppState};
use crate::error::AgentError;
use crate::reader::ReaderEvent;

fn to_sse(event: &ReaderEvent) -> Event {
    let kind = serde_json::to_value(event.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let data = serde_json::to_string(event).unwrap_or_default();
    Event::default().event(kind).data(data)
}

fn event_stream(
    receiver: broadcast::Receiver<ReaderEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        match receiver.recv().await {
            Ok(event) => Some((Ok(to_sse(&event)), receiver)),
            Err(RecvError::Lagged(missed)) => Some((
                Ok(Event::default().event("lagged").data(missed.to_string())),
                receiver,
            )),
            Err(RecvError::Closed) => None,
        }
    })
}

/// The event stream.
#[utoipa::path(get, path = "/v1/events", responses(
    (status = 200, description = "text/event-stream of ReaderEvent", body = ReaderEvent),
    (status = 503, body = super::ErrorBody),
))]
pub async fn events(State(state): State<AppState>) -> Response {
    let Some(watcher) = state.readers.watcher() else {
        return ApiError(AgentError::ReaderFailure("no reader watcher runs".into()))
            .into_response();
    };
    Sse::new(event_stream(watcher.subscribe()))
        .keep_alive(KeepAlive::default())
        .into_response()
}
