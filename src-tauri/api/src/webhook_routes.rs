//! `GET` and `PATCH /devices/{device_id}/webhook`, and the webhook fields of
//! `POST /devices`, in go-whatsapp-web-multidevice's shapes. The secret is
//! never answered: a set secret shows as `********`, which sent back keeps
//! it.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wa_device_core::webhooks::settings::SECRET_MASK;
use wa_device_core::webhooks::{SecretChange, Webhook, WebhookChange, WebhookEvent};
use wa_device_core::{ErrorCode, ServiceError};

use crate::AppState;
use crate::auth::ApiUser;
use crate::response::{ApiError, Envelope, NullEnvelope};
use crate::routes::{ApiResult, actor, body_bytes, detached, device_id, json_body_error};

/// A device's webhook, as go-whatsapp-web-multidevice answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiWebhook {
    pub device_id: String,
    /// `""` when the device has no webhook.
    pub webhook_url: String,
    /// `""` without a secret, `********` with one (never the secret).
    pub webhook_secret: String,
    /// Comma-separated events; `""` means every event: `device.logged_in`,
    /// `device.logged_out`, `device.removed_from_phone`, `device.banned`,
    /// `device.replaced`, `device.reconnecting`, `device.revocation_finished`.
    pub webhook_events: String,
    /// Always `false`: deliveries always verify TLS certificates.
    pub webhook_insecure_skip_verify: bool,
}

impl From<Webhook> for ApiWebhook {
    fn from(webhook: Webhook) -> ApiWebhook {
        ApiWebhook {
            device_id: webhook.device_id.to_string(),
            webhook_url: webhook.url,
            webhook_secret: if webhook.has_secret {
                SECRET_MASK.to_owned()
            } else {
                String::new()
            },
            webhook_events: WebhookEvent::list_text(&webhook.events),
            webhook_insecure_skip_verify: false,
        }
    }
}

/// Body of `PATCH /devices/{device_id}/webhook`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct WebhookBody {
    /// `http://` or `https://` URL the events are POSTed to; `""` removes
    /// the webhook and its secret.
    #[schema(example = "https://example.com/webhook")]
    pub webhook_url: String,
    /// Signs each delivery (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256
    /// of the body>`). Absent or `********`: kept; `""`: removed.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Comma-separated events to send; `""` for every event; absent: kept.
    #[serde(default)]
    #[schema(example = "device.logged_in,device.logged_out")]
    pub webhook_events: Option<String>,
    /// Only `false` is accepted: this app always verifies certificates.
    #[serde(default)]
    pub webhook_insecure_skip_verify: Option<bool>,
}

/// The webhook fields of `POST /devices`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct CreateWebhookFields {
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub webhook_events: Option<String>,
    #[serde(default)]
    pub webhook_insecure_skip_verify: Option<bool>,
}

fn refuse_insecure(skip: Option<bool>) -> Result<(), ServiceError> {
    if skip == Some(true) {
        return Err(ServiceError::new(
            ErrorCode::InvalidSetting,
            "webhook_insecure_skip_verify cannot be true: this app always verifies the webhook's TLS certificate",
        ));
    }
    Ok(())
}

impl CreateWebhookFields {
    /// The webhook asked for on create, checked before the device exists,
    /// or `None` when no URL was given.
    pub fn change(&self) -> Result<Option<WebhookChange>, ServiceError> {
        refuse_insecure(self.webhook_insecure_skip_verify)?;
        let Some(url) = self.webhook_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let change = WebhookChange {
            url: url.to_owned(),
            events: Some(WebhookEvent::parse_list(
                self.webhook_events.as_deref().unwrap_or_default(),
            )?),
            secret: match self.webhook_secret.as_deref() {
                None | Some("") => SecretChange::Remove,
                Some(secret) => SecretChange::Set(secret.to_owned()),
            },
        };
        change.check()?;
        Ok(Some(change))
    }
}

/// A device's webhook configuration.
#[utoipa::path(get, path = "/devices/{device_id}/webhook", tag = "devices",
    security(("basic_auth" = [])), params(crate::routes::DevicePath),
    responses(
        (status = 200, description = "The webhook (empty values when there is none)", body = Envelope<ApiWebhook>),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn get_webhook(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Envelope<ApiWebhook>> {
    let id = device_id(path)?;
    let webhook = state.service.webhook(&id)?;
    Ok(Envelope::success(
        "Device webhook retrieved",
        webhook.into(),
    ))
}

/// Sets or removes a device's webhook. Its events are POSTed as JSON in
/// go-whatsapp-web-multidevice's envelope (`event`, `device_id` = the JID,
/// `session_id` = the device id, `timestamp`, `payload`), signed when a
/// secret is set, with up to five tries 1, 2, 4 and 8 s apart; a delivery
/// that fails them all is written to the device's history.
#[utoipa::path(patch, path = "/devices/{device_id}/webhook", tag = "devices",
    security(("basic_auth" = [])), params(crate::routes::DevicePath),
    request_body(content = WebhookBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The webhook as set", body = Envelope<ApiWebhook>),
        (status = 400, description = "Malformed body, INVALID_ID or INVALID_SETTING (URL, events, secret)", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 413, description = "Body over the size limit", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE: the secret could not be stored", body = NullEnvelope),
    ))]
pub async fn set_webhook(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Envelope<ApiWebhook>> {
    let id = device_id(path)?;
    let body = body_bytes(body, state.body_limit)?;
    let request: WebhookBody = serde_json::from_slice(&body).map_err(|e| {
        json_body_error(
            &e,
            r#"{"webhook_url": "…", "webhook_secret": "…", "webhook_events": "…"} (webhook_url required)"#,
        )
    })?;
    refuse_insecure(request.webhook_insecure_skip_verify).map_err(ApiError::from)?;
    let events = request
        .webhook_events
        .as_deref()
        .map(WebhookEvent::parse_list)
        .transpose()?;
    let change = WebhookChange {
        url: request.webhook_url,
        events,
        secret: SecretChange::from_field(request.webhook_secret.as_deref()),
    };
    let service = state.service.clone();
    let who = actor(&user);
    let webhook = detached(async move { service.set_webhook(&id, change, who).await }).await?;
    Ok(Envelope::success("Device webhook updated", webhook.into()))
}
