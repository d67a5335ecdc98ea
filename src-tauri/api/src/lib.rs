//! The local REST API of WA Device Admin, compatible with
//! go-whatsapp-web-multidevice's device endpoints. It drives the same
//! [`DeviceService`] as the desktop window and knows nothing of Tauri.
//!
//! ```no_run
//! # async fn demo(service: wa_device_core::DeviceService) -> Result<(), wa_device_api::StartError> {
//! use wa_device_api::{ApiConfig, ApiServer, parse_credentials};
//! let credentials = parse_credentials(&["admin:secret"]).expect("valid pair");
//! let api = ApiServer::start(service, ApiConfig::new(credentials)).await?;
//! println!("listening on {}", api.local_addr());
//! api.shutdown().await;
//! # Ok(()) }
//! ```

pub mod app_routes;
pub mod auth;
pub mod connections;
pub mod event_stream;
pub mod model;
pub mod openapi;
pub mod response;
pub mod revocations;
pub mod routes;
pub mod webhook_routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use wa_device_core::{DeviceService, DeviceState, ServiceEvent};

pub use auth::{Credential, CredentialError, KeyringCredentialStore, parse_credentials};
pub use response::ApiError;

use crate::auth::Authenticator;
use crate::routes::AppState;

/// Default listen address, as go-whatsapp-web-multidevice's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Largest accepted request body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// How the API server is set up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Binding an address other than loopback needs this set.
    pub allow_remote: bool,
    /// Accepted `user:password` pairs; at least one.
    pub credentials: Vec<Credential>,
    /// Requests over this many body bytes get 413.
    pub body_limit: usize,
    /// Upper bound of one request, from its arrival (queueing for a
    /// concurrency slot included) to the answer. Above the service's own
    /// bounds (login wait 30 s, unlink 10 s) so those report their errors.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait (within `request_timeout`).
    pub concurrency_limit: usize,
    /// Connections open at once (idle and half-open ones included); lowered
    /// to half the process's open-file limit when that is smaller. When all
    /// are taken, the oldest one without a request in flight is closed.
    pub max_connections: usize,
    /// A request head must be complete this long after its first byte, and
    /// a new connection must have sent its first request head this long
    /// after it opened; otherwise the connection is closed.
    pub header_read_timeout: Duration,
    /// A keep-alive connection waiting this long for its next request is
    /// closed. Longer than the pool idle time of common clients (90 s), so
    /// they retire a connection before the server does and never send a
    /// request on one the server is closing.
    pub idle_timeout: Duration,
    /// The URL clients reach the server at (`http(s)://host[:port][/prefix]`),
    /// for the links in answers (`qr_link`). Unset: `http://` and the listen
    /// address. A request's `Host` header is never used.
    pub public_url: Option<String>,
}

impl ApiConfig {
    pub fn new(credentials: Vec<Credential>) -> ApiConfig {
        ApiConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000))),
            allow_remote: false,
            credentials,
            body_limit: BODY_LIMIT,
            request_timeout: Duration::from_secs(60),
            concurrency_limit: 64,
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            public_url: None,
        }
    }
}

/// Why the server did not start. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no API credentials are configured: pass --basic-auth user:password, set APP_BASIC_AUTH=user:password, or store a password in the OS keyring (wa-device-admin serve --set-password)"
    )]
    NoCredentials,
    #[error(
        "refusing to listen on {0}: it is not a loopback address; pass --allow-remote to expose the API to the network"
    )]
    RemoteNotAllowed(SocketAddr),
    #[error(
        "the public URL {0:?} is not usable: give an http:// or https:// URL with a host, without query or fragment"
    )]
    InvalidPublicUrl(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The API server.
pub struct ApiServer;

/// A running API server; [`RunningApi::shutdown`] stops it.
pub struct RunningApi {
    local_addr: SocketAddr,
    stopping: tokio::sync::watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    events: JoinHandle<()>,
}

impl ApiServer {
    /// Binds `config.listen` and serves the API on `service` in the
    /// background (on the current tokio runtime).
    pub async fn start(
        service: DeviceService,
        config: ApiConfig,
    ) -> Result<RunningApi, StartError> {
        if config.credentials.is_empty() {
            return Err(StartError::NoCredentials);
        }
        if !config.listen.ip().is_loopback() && !config.allow_remote {
            return Err(StartError::RemoteNotAllowed(config.listen));
        }
        let public_url = config
            .public_url
            .as_deref()
            .map(|url| {
                public_link_base(url).ok_or_else(|| StartError::InvalidPublicUrl(url.to_owned()))
            })
            .transpose()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let state = AppState {
            qr_codes: Arc::new(Mutex::new(HashMap::new())),
            body_limit: config.body_limit,
            openapi_json: Arc::new(openapi::document_json()),
            service: service.clone(),
            link_base: Arc::new(public_url.unwrap_or_else(|| listen_link_base(local_addr))),
            stopping,
        };
        let events = tokio::spawn(track_qr_codes(service.subscribe(), state.clone()));
        let app = router(state, &config);
        let (stop, stopped) = oneshot::channel::<()>();
        let limits = connections::ConnectionLimits {
            cap: connections::effective_cap(config.max_connections),
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
        };
        tracing::debug!(%local_addr, cap = limits.cap, "accepting connections");
        let server = tokio::spawn(connections::serve(listener, app, limits, stopped));
        Ok(RunningApi {
            local_addr,
            stopping: stopping_tx,
            stop: Some(stop),
            server,
            events,
        })
    }
}

impl RunningApi {
    /// The bound address (with the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in flight finish (at most
    /// `SHUTDOWN_GRACE`; idle connections close at once), then returns. The device service keeps running.
    pub async fn shutdown(mut self) {
        const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
        let _ = self.stopping.send(true);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server)
            .await
            .is_err()
        {
            self.server.abort();
        }
        self.events.abort();
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        self.server.abort();
        self.events.abort();
    }
}

/// The start of links to this server from the configured public URL: the URL
/// without a trailing `/`; `None` when it is not an absolute http(s) URL with
/// a host, or has a query or fragment.
fn public_link_base(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    if !(scheme == "http" || scheme == "https")
        || host.is_empty()
        || uri.query().is_some()
        || url.contains('#')
    {
        return None;
    }
    Some(url.trim_end_matches('/').to_owned())
}

/// The start of links to this server from its listen address. An unspecified
/// address (`0.0.0.0`, `::`) names no host a client can reach; the loopback
/// address stands in for it (set `public_url` for other clients).
fn listen_link_base(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Keeps the QR map current: new codes replace old ones; a device that
/// leaves `pairing` (scanned, expired, cancelled, deleted) loses its code.
async fn track_qr_codes(mut events: broadcast::Receiver<ServiceEvent>, state: AppState) {
    loop {
        match events.recv().await {
            Ok(ServiceEvent::QrCode(qr)) => state.remember_qr(qr),
            Ok(ServiceEvent::DeviceChanged { device }) if device.state != DeviceState::Pairing => {
                state.forget_qr(&device.id)
            }
            Ok(ServiceEvent::DeviceRemoved { device_id, .. }) => state.forget_qr(&device_id),
            Ok(_) => {}
            // Missed events: the SVG route still checks expiry, and the next
            // code or state change corrects the map.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The whole application: routes, authentication and request limits.
pub fn router(state: AppState, config: &ApiConfig) -> Router {
    let authenticator = Authenticator::new(config.credentials.clone());
    let protected = Router::new()
        .route("/openapi.json", get(routes::openapi_json))
        .route(
            "/devices",
            get(routes::list_devices).post(routes::create_device),
        )
        .route(
            "/devices/{device_id}",
            get(routes::get_device).delete(routes::delete_device),
        )
        .route("/devices/{device_id}/login", get(routes::login_qr))
        .route(
            "/devices/{device_id}/login/qr.svg",
            get(routes::login_qr_svg),
        )
        .route(
            "/devices/{device_id}/login/qr.png",
            get(routes::login_qr_png),
        )
        .route("/devices/{device_id}/login/code", post(routes::login_code))
        .route("/devices/{device_id}/logout", post(routes::logout))
        .route("/devices/{device_id}/reconnect", post(routes::reconnect))
        .route("/devices/{device_id}/status", get(routes::status))
        .route("/devices/{device_id}/history", get(routes::history))
        .route(
            "/devices/{device_id}/webhook",
            get(webhook_routes::get_webhook).patch(webhook_routes::set_webhook),
        )
        .route("/app/login", get(app_routes::login))
        .route("/app/login-with-code", get(app_routes::login_with_code))
        .route("/app/logout", get(app_routes::logout))
        .route("/app/reconnect", get(app_routes::reconnect))
        .route("/app/devices", get(app_routes::devices))
        .route("/app/status", get(app_routes::status))
        .route("/events", get(event_stream::events))
        .route("/revocations", get(revocations::list))
        .route("/revocations/{jid}", delete(revocations::forget))
        .route("/revocations/{jid}/retry", post(revocations::retry))
        .route_layer(middleware::from_fn_with_state(
            authenticator,
            auth::require_basic_auth,
        ));
    let body_limit = config.body_limit;
    Router::new()
        .route("/health", get(routes::health))
        .merge(protected)
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(move |req: Request, next: Next| {
                    refuse_large_bodies(req, next, body_limit)
                }))
                .layer(HandleErrorLayer::new(|err: tower::BoxError| async move {
                    overload_error(err)
                }))
                .timeout(config.request_timeout)
                .concurrency_limit(config.concurrency_limit.max(1))
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit)),
        )
}

/// Bodies past this many bytes are not read to the end before the 413.
const DRAIN_LIMIT: u64 = 1024 * 1024;
/// Upper bound for receiving a body; a client sending slower gets 408.
const BODY_READ_TIME: Duration = Duration::from_secs(30);

/// Receives the whole body before anything else runs (authentication
/// included) and refuses one over the limit. From then until the answer is
/// ready the connection counts as busy (see [`connections`]): while a body
/// trickles in, the connection may be closed to make room for others. The rest of an oversized body is
/// read and dropped (up to `DRAIN_LIMIT`) before the 413 goes out: a server
/// that answers and closes while the client is still sending makes the
/// client's TCP stack see a reset, and the client then reports a broken
/// connection instead of the 413.
async fn refuse_large_bodies(request: Request, next: Next, limit: usize) -> Response {
    use http_body_util::BodyExt;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > DRAIN_LIMIT) {
        return ApiError::payload_too_large(limit).into_response();
    }
    let (parts, mut body) = request.into_parts();
    let mut kept: Vec<u8> = Vec::new();
    let mut over = declared.is_some_and(|len| len > limit as u64);
    let read = tokio::time::timeout(BODY_READ_TIME, async {
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // trailers
            };
            seen += data.len() as u64;
            if seen > DRAIN_LIMIT {
                break;
            }
            if !over {
                if kept.len() + data.len() > limit {
                    over = true;
                    kept = Vec::new();
                } else {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Ok::<(), axum::Error>(())
    })
    .await;
    match read {
        _ if over => ApiError::payload_too_large(limit).into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIME.as_secs()
            ),
        )
        .into_response(),
        Ok(Err(_)) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the request body could not be read",
        )
        .into_response(),
        Ok(Ok(())) => {
            let _in_flight = parts
                .extensions
                .get::<connections::ConnectionActivity>()
                .map(connections::ConnectionActivity::enter);
            next.run(Request::from_parts(parts, axum::body::Body::from(kept)))
                .await
        }
    }
}

fn overload_error(err: tower::BoxError) -> ApiError {
    if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMEOUT",
            "the request took too long; the operation may still complete, check the device",
        )
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            format!("the server cannot take the request now: {err}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_absolute_http_urls_without_query() {
        assert_eq!(
            public_link_base("https://wa.example.org/admin/").as_deref(),
            Some("https://wa.example.org/admin")
        );
        assert_eq!(
            public_link_base("http://10.0.0.5:3000").as_deref(),
            Some("http://10.0.0.5:3000")
        );
        for bad in [
            "wa.example.org",
            "/relative",
            "ftp://wa.example.org",
            "http://wa.example.org/?x=1",
            "http://wa.example.org/#top",
            "",
        ] {
            assert_eq!(public_link_base(bad), None, "{bad}");
        }
    }

    #[test]
    fn links_from_an_unspecified_listen_address_use_loopback() {
        assert_eq!(
            listen_link_base("0.0.0.0:3000".parse().expect("addr")),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            listen_link_base("[::]:3000".parse().expect("addr")),
            "http://[::1]:3000"
        );
        assert_eq!(
            listen_link_base("192.168.1.2:8080".parse().expect("addr")),
            "http://192.168.1.2:8080"
        );
    }
}
