//! The JSON shapes of the API: go-whatsapp-web-multidevice's device fields
//! first, ours after them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use wa_device_core::{Device, DeviceState, HistoryEntry};

/// A device's state in go-whatsapp-web-multidevice's words, for clients that
/// switch on them. Our five states map as follows (ours in `detailed_state`):
///
/// | ours (`detailed_state`) | `state`        |
/// |-------------------------|----------------|
/// | `disconnected`          | `disconnected` |
/// | `pairing`               | `connected`    |
/// | `connecting`            | `connecting`   |
/// | `logged_in`             | `logged_in`    |
/// | `offline`               | `disconnected` |
///
/// `pairing` is `connected` because, as there, the socket to WhatsApp is open
/// but no account is logged in; `offline` (replaced, banned, outdated client)
/// has no connection and will not retry, which is `disconnected` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompatState {
    Disconnected,
    Connecting,
    Connected,
    LoggedIn,
}

impl From<DeviceState> for CompatState {
    fn from(state: DeviceState) -> CompatState {
        match state {
            DeviceState::Disconnected | DeviceState::Offline => CompatState::Disconnected,
            DeviceState::Pairing => CompatState::Connected,
            DeviceState::Connecting => CompatState::Connecting,
            DeviceState::LoggedIn => CompatState::LoggedIn,
        }
    }
}

/// [`DetailedState`]'s description in the OpenAPI document.
const DETAILED_STATE_DOC: &str = "Our own five states, as the desktop app shows them.";

/// The core's [`DeviceState`] in the API: its names come from the core's one
/// table (`DeviceState::ALL`, `as_str`), so the API cannot drift from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DetailedState(pub DeviceState);

impl From<DeviceState> for DetailedState {
    fn from(state: DeviceState) -> DetailedState {
        DetailedState(state)
    }
}

impl PartialSchema for DetailedState {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(DETAILED_STATE_DOC))
            .enum_values(Some(DeviceState::ALL.iter().map(|state| state.as_str())))
            .into()
    }
}

impl ToSchema for DetailedState {}

/// RFC 3339 in UTC with a `Z`, seconds precision or finer as needed.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A device. The first six fields are go-whatsapp-web-multidevice's; the
/// identity fields are `""` (never absent, never `null`) while the device has
/// no credentials, e.g. after a logout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiDevice {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Digits only, country code first; `""` without credentials.
    pub phone_number: String,
    /// The account's push name; `""` while unknown or without credentials.
    pub display_name: String,
    pub state: CompatState,
    /// The companion JID; `""` without credentials.
    pub jid: String,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The admin's label (may be `""`).
    pub label: String,
    pub detailed_state: DetailedState,
    /// Why the device is in its state, e.g. `logged_out`, `qr_expired`.
    pub state_reason: String,
    pub has_credentials: bool,
    /// When `connecting` after a failure: the next attempt (RFC 3339).
    #[schema(format = DateTime)]
    pub next_retry_at: Option<String>,
    /// When `offline` because of a temporary ban: its end (RFC 3339).
    #[schema(format = DateTime)]
    pub ban_expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_connected_at: Option<String>,
}

impl From<Device> for ApiDevice {
    fn from(device: Device) -> ApiDevice {
        ApiDevice {
            id: device.id.to_string(),
            phone_number: device.phone_number.unwrap_or_default(),
            display_name: device.display_name.unwrap_or_default(),
            state: device.state.into(),
            jid: device.jid.unwrap_or_default(),
            created_at: rfc3339(device.created_at),
            label: device.label,
            detailed_state: device.state.into(),
            state_reason: device.state_reason.as_str().to_owned(),
            has_credentials: device.has_credentials,
            next_retry_at: device.next_retry_at.map(rfc3339),
            ban_expires_at: device.ban_expires_at.map(rfc3339),
            last_connected_at: device.last_connected_at.map(rfc3339),
        }
    }
}

/// Body of `POST /devices`, with go-whatsapp-web-multidevice's webhook
/// fields (see `PATCH /devices/{device_id}/webhook`); other fields are
/// ignored.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateDevice {
    /// The id to give the device; a random `device-…` id when absent.
    #[serde(default)]
    pub device_id: Option<String>,
    /// The admin's label (at most 100 characters, no control characters).
    #[serde(default)]
    pub label: Option<String>,
    #[serde(flatten)]
    pub webhook: crate::webhook_routes::CreateWebhookFields,
}

/// `results` of `POST /devices`: the device, and the webhook as set when
/// one was asked for (its secret as `********`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedDevice {
    #[serde(flatten)]
    pub device: ApiDevice,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_events: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_insecure_skip_verify: Option<bool>,
}

/// The optional body of `POST /devices/{device_id}/login/code`; a `phone`
/// query parameter takes precedence.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PhoneBody {
    /// The account's phone number, country code first.
    #[serde(default)]
    #[schema(example = "628912344551")]
    pub phone: Option<String>,
}

/// `results` of `GET /devices/{device_id}/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QrLogin {
    pub device_id: String,
    /// The current QR code as a PNG image (authenticated like every route:
    /// it links an account to this machine; `/login/qr.svg` beside it serves
    /// the SVG).
    /// Built from the server's `--public-url` when set, otherwise from its
    /// listen address; never from the request's `Host` header.
    pub qr_link: String,
    /// The same code as an SVG image in a `data:image/svg+xml;base64,…` URL.
    pub qr_data_url: String,
    /// Seconds until this QR code expires; later codes replace it at the same
    /// `qr_link` until the login ends.
    pub qr_duration: u64,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `results` of `POST /devices/{device_id}/login/code`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CodeLogin {
    pub device_id: String,
    /// `XXXX-XXXX`, to type on the phone.
    pub pair_code: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// One item of `GET /app/devices`: go-whatsapp-web-multidevice's
/// `{name, device, jid}`, then every field of [`ApiDevice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppDevice {
    /// The display name, else the phone number, else the label (GOWA's).
    pub name: String,
    /// The device id (GOWA's).
    pub device: String,
    #[serde(flatten)]
    pub details: ApiDevice,
}

impl From<Device> for AppDevice {
    fn from(device: Device) -> AppDevice {
        let name = [&device.display_name, &device.phone_number]
            .into_iter()
            .flatten()
            .find(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| device.label.clone());
        AppDevice {
            name,
            device: device.id.to_string(),
            details: device.into(),
        }
    }
}

/// `results` of `GET /devices/{device_id}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceStatus {
    pub device_id: String,
    /// A connection to WhatsApp is open (`pairing` or `logged_in`).
    pub is_connected: bool,
    /// Connected and authenticated (`logged_in`).
    pub is_logged_in: bool,
    pub state: CompatState,
    pub detailed_state: DetailedState,
    /// The companion JID; `""` without credentials (GOWA's field).
    pub jid: String,
}

impl From<Device> for DeviceStatus {
    fn from(device: Device) -> DeviceStatus {
        DeviceStatus {
            device_id: device.id.to_string(),
            jid: device.jid.clone().unwrap_or_default(),
            is_connected: matches!(device.state, DeviceState::Pairing | DeviceState::LoggedIn),
            is_logged_in: device.state == DeviceState::LoggedIn,
            state: device.state.into(),
            detailed_state: device.state.into(),
        }
    }
}

/// One row of a device's audit history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiHistoryEntry {
    #[schema(format = DateTime)]
    pub at: String,
    pub device_id: String,
    /// e.g. `create`, `login_qr`, `logout`, `delete`.
    pub action: String,
    /// `desktop`, `api:<user>`, `whatsapp` or `system`.
    pub actor: String,
    /// `ok` or `failed`.
    pub outcome: String,
    pub detail: String,
}

impl From<HistoryEntry> for ApiHistoryEntry {
    fn from(entry: HistoryEntry) -> ApiHistoryEntry {
        ApiHistoryEntry {
            at: rfc3339(entry.at),
            device_id: entry.device_id,
            action: entry.action.as_str().to_owned(),
            actor: entry.actor.to_string(),
            outcome: entry.outcome.as_str().to_owned(),
            detail: entry.detail,
        }
    }
}

/// `results` of `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_states_are_the_cores_names() {
        for &state in DeviceState::ALL {
            assert_eq!(
                serde_json::to_value(DetailedState(state)).expect("serializes"),
                serde_json::json!(state.as_str())
            );
        }
        let schema = serde_json::to_value(DetailedState::schema()).expect("serializes");
        let names: Vec<&str> = DeviceState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(schema["enum"], serde_json::json!(names));
    }
}
