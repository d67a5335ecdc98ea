//! `GET /events`: the device events as Server-Sent Events, for scripts that
//! watch devices without a webhook.
//!
//! Each event is one SSE message: `event:` names it, `id:` counts up from 1
//! per stream, `data:` is one JSON object. QR payloads and pairing codes are
//! never sent (they link an account; a login's own answer carries them).
//! When the stream falls behind the service, a `resync` event says so: the
//! client reads `GET /devices` again, since events in between were lost.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use utoipa::{IntoParams, ToSchema};
use wa_device_core::{DeviceId, ServiceEvent};

use crate::model::ApiDevice;
use crate::response::{ApiError, NullEnvelope};
use crate::revocations::ApiRevocation;
use crate::routes::{ApiResult, AppState};

/// A comment line this often keeps proxies and the client's read timeout
/// from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this device's events (revocations, which outlive their device,
    /// are always sent).
    #[serde(default)]
    device_id: Option<String>,
}

/// The `data` of one event; the SSE `event` field is its `type`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum StreamEvent {
    /// A device was created or changed: its whole new state, as
    /// `GET /devices/{id}` shows it. `detailed_state` and `state_reason` say
    /// what happened: logged in (`logged_in`), logged out (`disconnected`,
    /// `logged_out`), removed from the phone (`removed_from_phone`), banned
    /// (`offline`, `temporarily_banned`; `account_locked` for good),
    /// replaced (`replaced`), reconnecting (`connecting`).
    #[serde(rename = "device.changed")]
    DeviceChanged { device: ApiDevice },
    /// A device was deleted.
    #[serde(rename = "device.removed")]
    DeviceRemoved { device_id: String },
    /// Something the server did on its own, for an admin's attention.
    #[serde(rename = "device.notice")]
    DeviceNotice {
        device_id: String,
        reason: String,
        message: String,
    },
    /// A pending revocation (an unlink still to be confirmed) was added or
    /// tried.
    #[serde(rename = "revocation.changed")]
    RevocationChanged { revocation: ApiRevocation },
    /// A pending revocation ended: `completed` when WhatsApp confirmed the
    /// unlink (or the link was gone already), otherwise an admin forgot it.
    #[serde(rename = "revocation.removed")]
    RevocationRemoved { jid: String, completed: bool },
    /// `missed` events were lost because this stream fell behind: read
    /// `GET /devices` again.
    #[serde(rename = "resync")]
    Resync { missed: u64 },
}

impl StreamEvent {
    /// The event for the stream, if it is one a stream may carry.
    fn of(event: ServiceEvent) -> Option<StreamEvent> {
        Some(match event {
            ServiceEvent::DeviceChanged { device } => StreamEvent::DeviceChanged {
                device: device.into(),
            },
            ServiceEvent::DeviceRemoved { device_id, .. } => StreamEvent::DeviceRemoved {
                device_id: device_id.to_string(),
            },
            ServiceEvent::Notice {
                device_id,
                reason,
                message,
            } => StreamEvent::DeviceNotice {
                device_id: device_id.to_string(),
                reason: reason.as_str().to_owned(),
                message,
            },
            ServiceEvent::RevocationChanged { revocation } => StreamEvent::RevocationChanged {
                revocation: revocation.into(),
            },
            ServiceEvent::RevocationRemoved { jid, completed } => {
                StreamEvent::RevocationRemoved { jid, completed }
            }
            // Secrets: never on a stream.
            ServiceEvent::QrCode(_) | ServiceEvent::PairingCode(_) => return None,
        })
    }

    fn device_id(&self) -> Option<&str> {
        match self {
            StreamEvent::DeviceChanged { device } => Some(&device.id),
            StreamEvent::DeviceRemoved { device_id }
            | StreamEvent::DeviceNotice { device_id, .. } => Some(device_id),
            _ => None,
        }
    }
}

/// Streams device events as Server-Sent Events until the client hangs up
/// or the server stops.
#[utoipa::path(get, path = "/events", tag = "events",
    security(("basic_auth" = [])), params(EventsQuery),
    responses(
        (status = 200, description = "An endless `text/event-stream`; each message's `data` is one `StreamEvent`, its `event` the event's `type`", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "INVALID_ID; BAD_REQUEST", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
    ))]
pub async fn events(
    State(state): State<AppState>,
    params: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let only = params
        .map_err(crate::routes::query_error)?
        .0
        .device_id
        .filter(|id| !id.is_empty())
        .map(|id| DeviceId::parse(&id).map(|id| id.to_string()))
        .transpose()
        .map_err(ApiError::from)?;
    let stream = event_stream(state.service.subscribe(), state.stopping.clone(), only);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

struct Cursor {
    events: broadcast::Receiver<ServiceEvent>,
    stopping: watch::Receiver<bool>,
    only: Option<String>,
    next_id: u64,
}

fn event_stream(
    events: broadcast::Receiver<ServiceEvent>,
    stopping: watch::Receiver<bool>,
    only: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        events,
        stopping,
        only,
        next_id: 1,
    };
    stream::unfold(cursor, |mut cursor| async move {
        loop {
            let next = tokio::select! {
                received = cursor.events.recv() => received,
                _ = cursor.stopping.wait_for(|stop| *stop) => return None,
            };
            let event = match next {
                Ok(event) => match StreamEvent::of(event) {
                    Some(event) => event,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => StreamEvent::Resync { missed },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            if let (Some(only), Some(id)) = (&cursor.only, event.device_id())
                && only != id
            {
                continue;
            }
            // The SSE event name is the object's own `type`: one source.
            let data = serde_json::to_value(&event).unwrap_or_default();
            let name = data["type"].as_str().unwrap_or_default().to_owned();
            let message = Event::default()
                .event(name)
                .id(cursor.next_id.to_string())
                .data(data.to_string());
            cursor.next_id += 1;
            return Some((Ok(message), cursor));
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn qr_payloads_and_pairing_codes_never_reach_a_stream() {
        let id = DeviceId::parse("d1").unwrap();
        let qr = ServiceEvent::QrCode(wa_device_core::QrCode {
            device_id: id.clone(),
            svg: "<svg/>".to_owned(),
            png: vec![1, 2, 3],
            expires_at: chrono::Utc::now(),
        });
        assert!(StreamEvent::of(qr).is_none());
        let code = ServiceEvent::PairingCode(wa_device_core::PairingCode {
            device_id: id,
            code: "ABCD-EFGH".to_owned(),
            expires_at: chrono::Utc::now(),
        });
        assert!(StreamEvent::of(code).is_none());
    }

    #[test]
    fn each_event_is_named_as_its_type() {
        let event = StreamEvent::DeviceRemoved {
            device_id: "d1".to_owned(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "device.removed");
        assert_eq!(json["device_id"], "d1");
        let resync = StreamEvent::Resync { missed: 3 };
        assert_eq!(serde_json::to_value(&resync).unwrap()["type"], "resync");
    }
}
