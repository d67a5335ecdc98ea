//! The route handlers. Each one validates its input through the core (which
//! owns the rules for ids, phone numbers and labels), calls the device
//! service as `Actor::RestApi(user)` and answers in the envelope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use utoipa::IntoParams;
use wa_device_core::model::DeviceId;
use wa_device_core::{
    Actor, DeviceService, DeviceState, ErrorCode, LogoutOutcome, NewDevice, QrCode, ServiceError,
};

use crate::auth::ApiUser;
use crate::model::{
    ApiDevice, ApiHistoryEntry, CodeLogin, CreateDevice, CreatedDevice, DeviceStatus, Health,
    PhoneBody, QrLogin, rfc3339,
};
use crate::response::{ApiError, Envelope, NullEnvelope};
use crate::webhook_routes::ApiWebhook;

/// The exact message of a successful logout (go-whatsapp-web-multidevice's
/// documented answer).
pub const LOGOUT_MESSAGE: &str = "Device logged out successfully";

/// Response header of `logout` and `DELETE`: `true` when WhatsApp confirmed
/// the unlink, `false` when it did not (or the device had no link). The body
/// stays exactly the documented one.
pub const UNLINK_CONFIRMED_HEADER: &str = "x-whatsapp-unlink-confirmed";

/// Response header of `logout` and `DELETE` when the unlink was not
/// confirmed and goes on as a pending revocation (see `GET /revocations`):
/// `pending`. Absent otherwise.
pub const REVOCATION_HEADER: &str = "x-revocation";

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub service: DeviceService,
    /// The current QR code of each device with a pending QR login, for the
    /// SVG route. Kept up to date from the service's events.
    pub qr_codes: Arc<Mutex<HashMap<DeviceId, QrCode>>>,
    pub body_limit: usize,
    /// The openapi document, rendered once.
    pub openapi_json: Arc<String>,
    /// Scheme and authority (and any path prefix) the links in answers start
    /// with, without a trailing `/`: the configured public URL, or
    /// `http://` and the listen address. Never taken from a request.
    pub link_base: Arc<String>,
    /// Turns true when the server stops: endless answers (the event
    /// stream) end then, so that stopping does not wait for them.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    fn current_qr(&self, id: &DeviceId) -> Option<QrCode> {
        let map = self.qr_codes.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|qr| qr.expires_at > chrono::Utc::now())
            .cloned()
    }

    pub fn remember_qr(&self, qr: QrCode) {
        let mut map = self.qr_codes.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(qr.device_id.clone(), qr);
    }

    pub fn forget_qr(&self, id: &DeviceId) {
        let mut map = self.qr_codes.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(id);
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Runs a service operation on its own task, so that a client that hangs up
/// or a request that times out never cancels it halfway: the operation
/// finishes (and is recorded) whatever happens to the connection.
pub(crate) async fn detached<T: Send + 'static>(
    operation: impl std::future::Future<Output = wa_device_core::Result<T>> + Send + 'static,
) -> ApiResult<T> {
    Ok(detached_service(operation).await??)
}

/// [`detached`], with the service's own error left for the caller to map.
async fn detached_service<T: Send + 'static>(
    operation: impl std::future::Future<Output = wa_device_core::Result<T>> + Send + 'static,
) -> ApiResult<wa_device_core::Result<T>> {
    tokio::spawn(operation).await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the operation failed unexpectedly",
        )
    })
}

/// The error of a refused login. The core answers `Busy` both for a pending
/// login and for a linked device; the linked case is
/// go-whatsapp-web-multidevice's `ALREADY_LOGGED_IN`, told apart by the
/// device's credentials (its state, never the message).
fn login_error(state: &AppState, id: &str, err: ServiceError) -> ApiError {
    if err.code == ErrorCode::Busy
        && state
            .service
            .get(id)
            .is_ok_and(|device| device.has_credentials && device.state != DeviceState::Pairing)
    {
        return ApiError::already_logged_in(err);
    }
    err.into()
}

pub(crate) fn actor(user: &ApiUser) -> Actor {
    Actor::RestApi(user.0.clone())
}

/// The `{device_id}` path segment, percent-decoded by axum. A segment that
/// does not decode is an invalid id, like one the core refuses.
pub(crate) fn device_id(path: Result<Path<String>, PathRejection>) -> ApiResult<String> {
    match path {
        Ok(Path(id)) => Ok(id),
        // A `String` segment fails only when it does not decode; the
        // rejection's own text would quote the raw bytes.
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ID",
            "invalid device id: the path segment is not valid percent-encoded UTF-8",
        )),
    }
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    query.map(|Query(q)| q).map_err(query_error)
}

/// A query string that does not parse, in the parser's own words (the
/// innermost error: it names the parameter and what it expected, and
/// carries no position).
pub(crate) fn query_error(rejection: QueryRejection) -> ApiError {
    let mut innermost: &dyn std::error::Error = &rejection;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    ApiError::bad_request(format!("invalid query string: {innermost}"))
}

/// A JSON body that does not parse, in words: the parser's own message ends
/// in a line and column, which mean nothing to a script's author.
pub(crate) fn json_body_error(err: &serde_json::Error, expected: &str) -> ApiError {
    use serde_json::error::Category;
    let why = match err.classify() {
        Category::Syntax | Category::Eof => "the body is not valid JSON",
        Category::Data => "the JSON body does not have the expected fields and types",
        Category::Io => "the request body could not be read",
    };
    ApiError::bad_request(format!("{why}; expected {expected}"))
}

fn unlink_headers(outcome: &LogoutOutcome) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(UNLINK_CONFIRMED_HEADER),
        HeaderValue::from_static(if outcome.unlink_confirmed {
            "true"
        } else {
            "false"
        }),
    );
    if outcome.revocation_pending {
        headers.insert(
            HeaderName::from_static(REVOCATION_HEADER),
            HeaderValue::from_static("pending"),
        );
    }
    headers
}

fn null_success(message: &str) -> NullEnvelope {
    NullEnvelope::success(message)
}

/// Liveness; the only route without authentication.
#[utoipa::path(get, path = "/health", tag = "service",
    responses((status = 200, description = "The server is up", body = Envelope<Health>)))]
pub async fn health() -> Envelope<Health> {
    Envelope::success(
        "OK",
        Health {
            status: "ok".to_owned(),
        },
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    security(("basic_auth" = [])),
    responses(
        (status = 200, description = "The OpenAPI 3 document", content_type = "application/json"),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
    ))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.as_str().to_owned(),
    )
        .into_response()
}

/// All devices, ordered by id.
#[utoipa::path(get, path = "/devices", tag = "devices",
    security(("basic_auth" = [])),
    responses(
        (status = 200, description = "The devices", body = Envelope<Vec<ApiDevice>>),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn list_devices(State(state): State<AppState>) -> ApiResult<Envelope<Vec<ApiDevice>>> {
    let devices = state.service.list()?;
    Ok(Envelope::success(
        "List devices",
        devices.into_iter().map(ApiDevice::from).collect(),
    ))
}

/// Creates a device (`disconnected`). The body is optional.
#[utoipa::path(post, path = "/devices", tag = "devices",
    security(("basic_auth" = [])),
    request_body(content = Option<CreateDevice>, content_type = "application/json"),
    responses(
        (status = 200, description = "The new device", body = Envelope<CreatedDevice>),
        (status = 400, description = "Malformed body, INVALID_ID, INVALID_LABEL or INVALID_SETTING (a webhook field)", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 409, description = "ALREADY_EXISTS", body = NullEnvelope),
        (status = 413, description = "Body over the size limit", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn create_device(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Envelope<CreatedDevice>> {
    let body = body_bytes(body, state.body_limit)?;
    let request: CreateDevice = if body.iter().all(u8::is_ascii_whitespace) {
        CreateDevice::default()
    } else {
        serde_json::from_slice::<Option<CreateDevice>>(&body)
            .map_err(|e| {
                json_body_error(&e, r#"{"device_id": "…", "label": "…"} (both optional)"#)
            })?
            .unwrap_or_default()
    };
    // Checked before the device exists: a bad webhook creates nothing.
    let webhook = request.webhook.change()?;
    let service = state.service.clone();
    let new = NewDevice {
        id: request.device_id.filter(|id| !id.is_empty()),
        label: request.label.unwrap_or_default(),
    };
    let who = actor(&user);
    let created = {
        let who = who.clone();
        detached(async move { service.create(new, who).await }).await?
    };
    let mut answer = CreatedDevice {
        device: created.clone().into(),
        webhook_url: None,
        webhook_secret: None,
        webhook_events: None,
        webhook_insecure_skip_verify: None,
    };
    if let Some(change) = webhook {
        let service = state.service.clone();
        let id = created.id.to_string();
        let set = {
            let (id, who) = (id.clone(), who.clone());
            detached(async move { service.set_webhook(&id, change, who).await }).await
        };
        match set {
            Ok(webhook) => {
                let webhook = ApiWebhook::from(webhook);
                answer.webhook_url = Some(webhook.webhook_url);
                answer.webhook_secret = Some(webhook.webhook_secret);
                answer.webhook_events = Some(webhook.webhook_events);
                answer.webhook_insecure_skip_verify = Some(false);
            }
            Err(err) => {
                // The create is undone: a failed request leaves nothing.
                let service = state.service.clone();
                let _ = detached(async move { service.delete(&id, who).await }).await;
                return Err(err);
            }
        }
    }
    Ok(Envelope::success("Device added", answer))
}

/// The `{device_id}` parameter of every device route.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documents the parameter; handlers take it as a string
pub struct DevicePath {
    /// 1 to 64 characters of `A-Z a-z 0-9 . _ -` (not `.` or `..`).
    #[param(
        example = "my-device-id",
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]+$"
    )]
    device_id: String,
}

/// One device.
#[utoipa::path(get, path = "/devices/{device_id}", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "The device", body = Envelope<ApiDevice>),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn get_device(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Envelope<ApiDevice>> {
    let id = device_id(path)?;
    let device = state.service.get(&id)?;
    Ok(Envelope::success("Device info", device.into()))
}

/// Deletes a device: logs it out first when it is linked, then removes it
/// and its data. Its history stays.
#[utoipa::path(delete, path = "/devices/{device_id}", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "Removed; header x-whatsapp-unlink-confirmed tells whether WhatsApp confirmed the unlink",
            body = NullEnvelope,
            headers(
                ("x-whatsapp-unlink-confirmed" = String, description = "`true` or `false`"),
                ("x-revocation" = String, description = "`pending` when the unlink goes on as a pending revocation; absent otherwise"),
            )),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn delete_device(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = device_id(path)?;
    let service = state.service.clone();
    let outcome = detached(async move { service.delete(&id, actor(&user)).await }).await?;
    Ok((
        unlink_headers(&outcome),
        axum::Json(null_success("Device removed")),
    )
        .into_response())
}

/// Starts a QR login; called while a login is pending, it ends that one and
/// starts a fresh QR login (scripts call it again for the next code, as
/// with go-whatsapp-web-multidevice). `results.qr_link` serves the current
/// QR code as PNG,
/// `results.qr_data_url` holds it as SVG (codes rotate until the phone scans
/// one or they run out; `/login/qr.svg` serves the current one as SVG).
#[utoipa::path(get, path = "/devices/{device_id}/login", tag = "login",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "The first QR code", body = Envelope<QrLogin>),
        (status = 400, description = "INVALID_ID; ALREADY_LOGGED_IN (`detail_code` BUSY): the device is linked", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn login_qr(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Envelope<QrLogin>> {
    let id = device_id(path)?;
    let service = state.service.clone();
    let login_id = id.clone();
    let qr =
        detached_service(async move { service.login_qr_or_restart(&login_id, actor(&user)).await })
            .await?
            .map_err(|err| login_error(&state, &id, err))?;
    state.remember_qr(qr.clone());
    let remaining = (qr.expires_at - chrono::Utc::now())
        .num_milliseconds()
        .max(0) as u64;
    Ok(Envelope::success(
        "Login success",
        QrLogin {
            qr_link: format!("{}/devices/{}/login/qr.png", state.link_base, qr.device_id),
            qr_data_url: format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&qr.svg)
            ),
            qr_duration: remaining.div_ceil(1000),
            expires_at: rfc3339(qr.expires_at),
            device_id: qr.device_id.to_string(),
        },
    ))
}

/// The current QR code of a pending QR login, as SVG.
#[utoipa::path(get, path = "/devices/{device_id}/login/qr.svg", tag = "login",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "The QR code", content_type = "image/svg+xml", body = String),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND: no QR login pending", body = NullEnvelope),
    ))]
pub async fn login_qr_svg(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let qr = pending_qr(&state, path)?;
    Ok(qr_image("image/svg+xml", qr.svg.into_bytes()))
}

/// The current QR code of a pending QR login, as PNG (where `qr_link`
/// points).
#[utoipa::path(get, path = "/devices/{device_id}/login/qr.png", tag = "login",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "The QR code", content_type = "image/png", body = Vec<u8>),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND: no QR login pending", body = NullEnvelope),
    ))]
pub async fn login_qr_png(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let qr = pending_qr(&state, path)?;
    Ok(qr_image("image/png", qr.png))
}

fn pending_qr(state: &AppState, path: Result<Path<String>, PathRejection>) -> ApiResult<QrCode> {
    let id = DeviceId::parse(&device_id(path)?)?;
    state.current_qr(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no QR login is pending for device \"{id}\""),
        )
    })
}

/// An image of a code that rotates: never cached.
fn qr_image(content_type: &'static str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneQuery {
    /// The account's phone number, country code first (`+`, spaces and dashes
    /// are ignored). When absent or empty, `phone` of the JSON body is used.
    #[serde(default)]
    #[param(example = "+49 151 2345678")]
    phone: Option<String>,
}

/// Starts a login by pairing code; type `results.pair_code` on the phone.
/// The phone comes from `?phone=` or, when that is absent, from the JSON body
/// `{"phone": "…"}`. An unknown device is 404 whatever the phone. During a
/// pending QR login the code is asked for on that login's open connection
/// (as go-whatsapp-web-multidevice does); a pending code login is ended and
/// a fresh one started.
#[utoipa::path(post, path = "/devices/{device_id}/login/code", tag = "login",
    security(("basic_auth" = [])), params(DevicePath, PhoneQuery),
    request_body(content = Option<PhoneBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The pairing code", body = Envelope<CodeLogin>),
        (status = 400, description = "INVALID_ID; VALIDATION_ERROR (`detail_code` INVALID_PHONE): a missing or bad phone; ALREADY_LOGGED_IN (`detail_code` BUSY): the device is linked; BAD_REQUEST: a body that is not JSON", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 413, description = "Body over the size limit", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn login_code(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<PhoneQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Envelope<CodeLogin>> {
    let id = device_id(path)?;
    // The device first: an unknown one is 404 whatever the phone says.
    state.service.get(&id)?;
    let phone = match query(params)?.phone.filter(|p| !p.is_empty()) {
        Some(phone) => phone,
        None => phone_from_body(&body_bytes(body, state.body_limit)?)?,
    };
    let service = state.service.clone();
    let login_id = id.clone();
    let code = detached_service(async move {
        service
            .login_code_on_pending(&login_id, &phone, actor(&user))
            .await
    })
    .await?
    .map_err(|err| login_error(&state, &id, err))?;
    Ok(Envelope::success(
        "Login with code started",
        CodeLogin {
            device_id: code.device_id.to_string(),
            pair_code: code.code,
            expires_at: rfc3339(code.expires_at),
        },
    ))
}

/// `phone` of an optional JSON body; an empty body has none (the core then
/// refuses the empty phone).
fn phone_from_body(body: &[u8]) -> ApiResult<String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let body = serde_json::from_slice::<Option<PhoneBody>>(body)
        .map_err(|e| json_body_error(&e, r#"{"phone": "…"}"#))?;
    Ok(body.and_then(|b| b.phone).unwrap_or_default())
}

/// Logs a device out: unlinks it at WhatsApp (bounded wait), deletes its
/// credentials and session data; it stays, `disconnected`, with blank
/// identity fields. The body is always exactly
/// `{"code":"SUCCESS","message":"Device logged out successfully","results":null}`;
/// the `x-whatsapp-unlink-confirmed` header tells whether WhatsApp confirmed.
#[utoipa::path(post, path = "/devices/{device_id}/logout", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "Logged out", body = NullEnvelope,
            headers(
                ("x-whatsapp-unlink-confirmed" = String, description = "`true` when WhatsApp confirmed the unlink, `false` otherwise (the local wipe happened either way)"),
                ("x-revocation" = String, description = "`pending` when the unlink was not confirmed and the service keeps retrying it (see `GET /revocations`); absent otherwise"),
            )),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let id = device_id(path)?;
    let service = state.service.clone();
    let outcome = detached(async move { service.logout(&id, actor(&user)).await }).await?;
    Ok((
        unlink_headers(&outcome),
        axum::Json(null_success(LOGOUT_MESSAGE)),
    )
        .into_response())
}

/// Drops and re-opens the connection of a linked device. Like
/// go-whatsapp-web-multidevice, the answer has no payload
/// (`"results": null`); `GET /devices/{device_id}` shows the state.
#[utoipa::path(post, path = "/devices/{device_id}/reconnect", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "Reconnecting", body = NullEnvelope),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 409, description = "NO_CREDENTIALS or BUSY", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
        (status = 502, description = "WHATSAPP_ERROR", body = NullEnvelope),
        (status = 503, description = "KEYRING_UNAVAILABLE", body = NullEnvelope),
    ))]
pub async fn reconnect(
    State(state): State<AppState>,
    Extension(user): Extension<ApiUser>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<NullEnvelope> {
    let id = device_id(path)?;
    let service = state.service.clone();
    detached(async move { service.reconnect(&id, actor(&user)).await }).await?;
    Ok(null_success("Reconnect requested"))
}

/// Connection status of a device.
#[utoipa::path(get, path = "/devices/{device_id}/status", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath),
    responses(
        (status = 200, description = "The status", body = Envelope<DeviceStatus>),
        (status = 400, description = "INVALID_ID", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Envelope<DeviceStatus>> {
    let id = device_id(path)?;
    let device = state.service.get(&id)?;
    Ok(Envelope::success("Device status", device.into()))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HistoryFormat {
    #[default]
    Json,
    Csv,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `json` (default) or `csv`.
    #[serde(default)]
    #[param(inline)]
    format: Option<HistoryFormat>,
}

/// A device's audit history, oldest first (also after the device was
/// deleted). `?format=csv` answers `text/csv` instead of the envelope.
#[utoipa::path(get, path = "/devices/{device_id}/history", tag = "devices",
    security(("basic_auth" = [])), params(DevicePath, HistoryQuery),
    responses(
        (status = 200, description = "The history", content(
            (Envelope<Vec<ApiHistoryEntry>> = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "INVALID_ID or a bad format", body = NullEnvelope),
        (status = 401, description = "Missing or wrong credentials", body = NullEnvelope),
        (status = 404, description = "NOT_FOUND", body = NullEnvelope),
        (status = 500, description = "Internal failure", body = NullEnvelope),
    ))]
pub async fn history(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    params: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let id = device_id(path)?;
    let format = query(params)?.format.unwrap_or_default();
    match format {
        HistoryFormat::Json => {
            let entries = state.service.history(&id)?;
            Ok(Envelope::success(
                "Device history",
                entries
                    .into_iter()
                    .map(ApiHistoryEntry::from)
                    .collect::<Vec<_>>(),
            )
            .into_response())
        }
        HistoryFormat::Csv => {
            let csv = state.service.history_csv(&id)?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"history-{id}.csv\""),
                    ),
                ],
                csv,
            )
                .into_response())
        }
    }
}
