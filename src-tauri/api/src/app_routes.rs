//! go-whatsapp-web-multidevice's device-scoped `/app/*` routes. Each one
//! picks its device from the request (the `X-Device-Id` header, else
//! `?device_id=`, else the only device there is) and then answers exactly
//! what the matching `/devices/{device_id}/…` handler answers: the handlers
//! are called as they are, so rules, events and bodies stay in one place.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::ApiUser;
use crate::model::{AppDevice, CodeLogin, DeviceStatus, PhoneBody, QrLogin};
use crate::response::{ApiError, Envelope, NullEnvelope};
use crate::routes::{self, ApiResult, AppState, PhoneQuery};

/// The request header naming the device (go-whatsapp-web-multidevice's).
pub const DEVICE_ID_HEADER: &str = "x-device-id";

/// go-whatsapp-web-multidevice's code when the request names no device and
/// there is not exactly one to default to.
pub const DEVICE_ID_REQUIRED: &str = "DEVICE_ID_REQUIRED";

/// `?device_id=`, read when the `X-Device-Id` header is absent or blank.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceQuery {
    /// The device, when the `X-Device-Id` header does not name one.
    #[serde(default)]
    #[param(example = "my-device-id")]
    device_id: Option<String>,
}

/// The device a request is about: the header first (trimmed; blank counts
/// as absent), then the query, then the only device. A named device is not
/// looked up here, so an unknown or invalid one gets the very answer the
/// `/devices/{device_id}/…` route gives it.
fn target_device(
    state: &AppState,
    headers: &HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
) -> ApiResult<Path<String>> {
    let from_header = match headers.get(DEVICE_ID_HEADER) {
        Some(value) => value.to_str().map(|v| v.trim().to_owned()).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_ID",
                "invalid device id: the X-Device-Id header is not visible ASCII",
            )
        })?,
        None => String::new(),
    };
    if !from_header.is_empty() {
        return Ok(Path(from_header));
    }
    let from_query = params
        .map(|Query(q)| q.device_id.unwrap_or_default().trim().to_owned())
        .map_err(routes::query_error)?;
    if !from_query.is_empty() {
        return Ok(Path(from_query));
    }
    let mut devices = state.service.list()?;
    match (devices.pop(), devices.is_empty()) {
        (Some(only), true) => Ok(Path(only.id.to_string())),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            DEVICE_ID_REQUIRED,
            "device_id is required via X-Device-Id header or device_id query",
        )),
    }
}

/// `GET /devices/{device_id}/login` for the request's device.
#[utoipa::path(get, path = "/app/login", tag = "app",
    security(("basic_auth" = [])),
    params(
        ("X-Device-Id" = Option<String>, Header, description = "The device; optional when exactly one device exists"),
        DeviceQuery,
    ),
    responses(
        (status = 200, description = "The first QR code", body = Envelope<QrLogin>),
        (status = 400, description = "DEVICE_ID_REQUIRED: no device named and not exactly one exists; INVALID_ID; ALREADY_LOGGED_IN (`detail_code` BUSY): the device is linked", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn login(
    State(state): State<AppState>,
    user: Extension<ApiUser>,
    headers: HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
) -> ApiResult<Envelope<QrLogin>> {
    let device = target_device(&state, &headers, params)?;
    routes::login_qr(State(state), user, Ok(device)).await
}

/// `POST /devices/{device_id}/login/code` for the request's device: the
/// phone comes from `?phone=` or, when that is absent, the JSON body.
#[utoipa::path(get, path = "/app/login-with-code", tag = "app",
    security(("basic_auth" = [])),
    params(
        ("X-Device-Id" = Option<String>, Header, description = "The device; optional when exactly one device exists"),
        DeviceQuery,
        PhoneQuery,
    ),
    request_body(content = Option<PhoneBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The pairing code", body = Envelope<CodeLogin>),
        (status = 400, description = "DEVICE_ID_REQUIRED: no device named and not exactly one exists; INVALID_ID; VALIDATION_ERROR (`detail_code` INVALID_PHONE): a missing or bad phone; ALREADY_LOGGED_IN (`detail_code` BUSY): the device is linked; BAD_REQUEST: a body that is not JSON", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 413, description = "Body over the size limit", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn login_with_code(
    State(state): State<AppState>,
    user: Extension<ApiUser>,
    headers: HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
    phone: Result<Query<PhoneQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Envelope<CodeLogin>> {
    let device = target_device(&state, &headers, params)?;
    routes::login_code(State(state), user, Ok(device), phone, body).await
}

/// `POST /devices/{device_id}/logout` for the request's device: the same
/// logout, the same exact body and headers.
#[utoipa::path(get, path = "/app/logout", tag = "app",
    security(("basic_auth" = [])),
    params(
        ("X-Device-Id" = Option<String>, Header, description = "The device; optional when exactly one device exists"),
        DeviceQuery,
    ),
    responses(
        (status = 200, description = "Logged out; body exactly `{\"code\":\"SUCCESS\",\"message\":\"Device logged out successfully\",\"results\":null}`", body = NullEnvelope,
            headers(
                ("x-whatsapp-unlink-confirmed" = String, description = "`true` when WhatsApp confirmed the unlink, `false` otherwise (the local wipe happened either way)"),
                ("x-revocation" = String, description = "`pending` when the unlink was not confirmed and the service keeps retrying it (see `GET /revocations`); absent otherwise"),
            )),
        (status = 400, description = "DEVICE_ID_REQUIRED: no device named and not exactly one exists; INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    user: Extension<ApiUser>,
    headers: HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let device = target_device(&state, &headers, params)?;
    routes::logout(State(state), user, Ok(device)).await
}

/// `POST /devices/{device_id}/reconnect` for the request's device.
#[utoipa::path(get, path = "/app/reconnect", tag = "app",
    security(("basic_auth" = [])),
    params(
        ("X-Device-Id" = Option<String>, Header, description = "The device; optional when exactly one device exists"),
        DeviceQuery,
    ),
    responses(
        (status = 200, description = "Reconnecting", body = NullEnvelope),
        (status = 400, description = "DEVICE_ID_REQUIRED: no device named and not exactly one exists; INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 409, description = "NO_CREDENTIALS or BUSY", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn reconnect(
    State(state): State<AppState>,
    user: Extension<ApiUser>,
    headers: HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
) -> ApiResult<NullEnvelope> {
    let device = target_device(&state, &headers, params)?;
    routes::reconnect(State(state), user, Ok(device)).await
}

/// Every device, ordered by id, each with go-whatsapp-web-multidevice's
/// `name` and `device` (its id) before the fields of `GET /devices`. The
/// list is not about one device, so it needs none named.
#[utoipa::path(get, path = "/app/devices", tag = "app",
    security(("basic_auth" = [])),
    responses(
        (status = 200, description = "The devices", body = Envelope<Vec<AppDevice>>),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn devices(State(state): State<AppState>) -> ApiResult<Envelope<Vec<AppDevice>>> {
    let devices = state.service.list()?;
    Ok(Envelope::success(
        "List devices",
        devices.into_iter().map(AppDevice::from).collect(),
    ))
}

/// `GET /devices/{device_id}/status` for the request's device.
#[utoipa::path(get, path = "/app/status", tag = "app",
    security(("basic_auth" = [])),
    params(
        ("X-Device-Id" = Option<String>, Header, description = "The device; optional when exactly one device exists"),
        DeviceQuery,
    ),
    responses(
        (status = 200, description = "The status", body = Envelope<DeviceStatus>),
        (status = 400, description = "DEVICE_ID_REQUIRED: no device named and not exactly one exists; INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<DeviceQuery>, QueryRejection>,
) -> ApiResult<Envelope<DeviceStatus>> {
    let device = target_device(&state, &headers, params)?;
    routes::status(State(state), Ok(device)).await
}
