//! Pending revocations: links whose logout WhatsApp did not confirm, which
//! the service keeps retrying (see the core's `service::revocation`). Not a
//! go-whatsapp-web-multidevice route; scripts that never call it lose
//! nothing.

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wa_device_core::{PendingRevocation, RevocationTry};

use crate::auth::ApiUser;
use crate::model::rfc3339;
use crate::response::{ApiError, Envelope, NullEnvelope};
use crate::routes::{ApiResult, AppState, actor, detached};

/// A pending revocation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiRevocation {
    /// The companion JID of the link, e.g. `15551234567:3@s.whatsapp.net`.
    pub jid: String,
    /// The device the link belonged to.
    pub device_id: String,
    /// Digits, `""` when unknown.
    pub phone_number: String,
    /// When the logout that left it pending ran.
    #[schema(format = DateTime)]
    pub since: String,
    pub attempts: u32,
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    /// What the last try ran into; `""` when nothing is known.
    pub last_error: String,
}

impl From<PendingRevocation> for ApiRevocation {
    fn from(r: PendingRevocation) -> ApiRevocation {
        ApiRevocation {
            jid: r.jid,
            device_id: r.device_id,
            phone_number: r.phone_number.unwrap_or_default(),
            since: rfc3339(r.since),
            attempts: r.attempts,
            next_attempt_at: rfc3339(r.next_attempt_at),
            last_error: r.last_error.unwrap_or_default(),
        }
    }
}

/// `results` of `POST /revocations/{jid}/retry`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiRevocationTry {
    pub jid: String,
    /// `true`: WhatsApp confirmed the unlink, or said the link was gone;
    /// the revocation ended.
    pub completed: bool,
    pub message: String,
    /// The revocation as it is now, `null` when it ended.
    pub revocation: Option<ApiRevocation>,
}

impl From<RevocationTry> for ApiRevocationTry {
    fn from(t: RevocationTry) -> ApiRevocationTry {
        ApiRevocationTry {
            jid: t.jid,
            completed: t.completed,
            message: t.message,
            revocation: t.revocation.map(Into::into),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JidPath {
    /// The companion JID, percent-encoded (`:` and `@` may be sent as is).
    #[param(
        example = "15551234567:3@s.whatsapp.net",
        min_length = 1,
        max_length = 128
    )]
    pub jid: String,
}

fn jid(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    match path {
        Ok(Path(jid)) if !jid.is_empty() && jid.len() <= 128 => Ok(jid),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_JID",
            "invalid JID: give the companion JID of a pending revocation",
        )),
    }
}

/// Every pending revocation, the next due first.
#[utoipa::path(get, path = "/revocations", tag = "revocations",
    security(("basic_auth" = [])),
    responses(
        (status = 200, description = "The pending revocations", body = Envelope<Vec<ApiRevocation>>),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Envelope<Vec<ApiRevocation>>> {
    let revocations = state.service.revocations()?;
    Ok(Envelope::success(
        "Pending revocations",
        revocations.into_iter().map(Into::into).collect(),
    ))
}

/// Tries a pending revocation now.
#[utoipa::path(post, path = "/revocations/{jid}/retry", tag = "revocations",
    security(("basic_auth" = [])), params(JidPath),
    responses(
        (status = 200, description = "Tried; `results.completed` tells whether it ended", body = Envelope<ApiRevocationTry>),
        (status = 400, description = "INVALID_JID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Envelope<ApiRevocationTry>> {
    let jid = jid(path)?;
    let service = state.service.clone();
    let tried = detached(async move { service.retry_revocation(&jid, actor(&user)).await }).await?;
    Ok(Envelope::success(tried.message.clone(), tried.into()))
}

/// Forgets a pending revocation without unlinking: its keys are deleted, and
/// the link may remain in the phone's Linked devices until removed there.
#[utoipa::path(delete, path = "/revocations/{jid}", tag = "revocations",
    security(("basic_auth" = [])), params(JidPath),
    responses(
        (status = 200, description = "Forgotten", body = NullEnvelope),
        (status = 400, description = "INVALID_JID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn forget(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let jid = jid(path)?;
    let service = state.service.clone();
    detached(async move { service.forget_revocation(&jid, actor(&user)).await }).await?;
    Ok(
        NullEnvelope::success("Pending revocation forgotten; the link was not unlinked")
            .into_response(),
    )
}
