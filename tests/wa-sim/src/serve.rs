//! The simulator on loopback sockets: the chat WebSocket the client connects
//! to, and a JSON-over-HTTP control API for harnesses that cannot call the
//! Rust API (GUI end-to-end tests, benchmarks).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request as WsRequest, Response as WsResponse,
};

use crate::session::{Link, LinkOut};
use crate::sim::{Fault, Simulator};
use crate::{Jid, PhoneError};

/// Path of the chat WebSocket, as on WhatsApp.
pub const WS_PATH: &str = "/ws/chat";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0} is not a loopback address; the simulator only listens on loopback")]
    NotLoopback(SocketAddr),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// A running loopback server; dropping it does not stop it, `shutdown` does.
pub struct Endpoints {
    pub ws_url: String,
    pub control_url: String,
    /// [`Simulator::cert_root_key`], base64 (standard alphabet, padded).
    pub cert_root_key: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    sim: Simulator,
}

impl Endpoints {
    /// Stops accepting, drops every live connection, and waits for the
    /// listeners to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.sim.drop_connections();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the chat WebSocket and the control API (both must be loopback
/// addresses; port 0 picks a free port) and serves them in the background.
pub async fn serve(
    sim: Simulator,
    ws_addr: SocketAddr,
    control_addr: SocketAddr,
) -> Result<Endpoints, ServeError> {
    for addr in [ws_addr, control_addr] {
        if !addr.ip().is_loopback() {
            return Err(ServeError::NotLoopback(addr));
        }
    }
    let ws_listener = TcpListener::bind(ws_addr).await?;
    let control_listener = TcpListener::bind(control_addr).await?;
    let ws_url = format!("ws://{}{WS_PATH}", ws_listener.local_addr()?);
    let control_url = format!("http://{}", control_listener.local_addr()?);
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(accept_loop(ws_listener, stopped.clone(), {
            let sim = sim.clone();
            move |stream| {
                let sim = sim.clone();
                tokio::spawn(serve_websocket(sim, stream));
            }
        })),
        tokio::spawn(accept_loop(control_listener, stopped, {
            let sim = sim.clone();
            move |stream| {
                let sim = sim.clone();
                tokio::spawn(serve_control(sim, stream));
            }
        })),
    ];
    let cert_root_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(sim.cert_root_key())
    };
    Ok(Endpoints {
        ws_url,
        control_url,
        cert_root_key,
        stop,
        tasks,
        sim,
    })
}

async fn accept_loop(
    listener: TcpListener,
    mut stopped: watch::Receiver<bool>,
    on_accept: impl Fn(TcpStream),
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    on_accept(stream);
                }
                Err(e) => log::warn!("accept failed: {e}"),
            },
        }
    }
}

async fn serve_websocket(sim: Simulator, stream: TcpStream) {
    // The error type is tungstenite's, fixed by its callback signature.
    #[allow(clippy::result_large_err)]
    let check_path = |request: &WsRequest, response: WsResponse| {
        if request.uri().path() == WS_PATH {
            Ok(response)
        } else {
            let mut refusal = ErrorResponse::new(Some("no such endpoint".to_string()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    let socket = match tokio_tungstenite::accept_hdr_async(stream, check_path).await {
        Ok(socket) => socket,
        Err(e) => {
            log::info!("websocket handshake failed: {e}");
            return;
        }
    };
    let (mut sink, mut source) = socket.split();
    let (to_session, inbound) = mpsc::unbounded_channel();
    let (outbound, mut from_session) = mpsc::unbounded_channel();
    sim.accept(Link { inbound, outbound });
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            let data = match message {
                Message::Binary(data) => data,
                Message::Close(_) => break,
                _ => continue,
            };
            if to_session.send(data).is_err() {
                break;
            }
        }
        // Dropping `to_session` tells the session the client has gone.
    });
    // A failed write does not end the connection: the reader may still
    // hold frames the client sent before it hung up, and the session acts
    // on them until the reader runs dry.
    let mut writable = true;
    while let Some(out) = from_session.recv().await {
        match out {
            LinkOut::Data(bytes) => {
                if writable && sink.send(Message::Binary(bytes)).await.is_err() {
                    writable = false;
                }
            }
            LinkOut::Close { abrupt } => {
                if !abrupt {
                    let _ = sink.send(Message::Close(None)).await;
                }
                break;
            }
        }
    }
    reader.abort();
}

async fn serve_control(sim: Simulator, stream: TcpStream) {
    let service = hyper::service::service_fn(move |request| {
        let sim = sim.clone();
        async move { Ok::<_, Infallible>(route(sim, request).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        log::info!("control connection failed: {e}");
    }
}

type Reply = Response<Full<Bytes>>;

/// A refused control request: status and JSON body (kept small so that
/// `Result<_, Refusal>` stays cheap to pass around).
struct Refusal {
    status: StatusCode,
    body: serde_json::Value,
}

fn reply(status: StatusCode, body: &serde_json::Value) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn bad_request(message: impl std::fmt::Display) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        body: json!({ "error": "bad_request", "detail": message.to_string() }),
    }
}

fn phone_error(e: &PhoneError) -> Refusal {
    let status = match e {
        PhoneError::UnknownDevice(_) | PhoneError::UnknownQr | PhoneError::NoPendingCode => {
            StatusCode::NOT_FOUND
        }
        PhoneError::CompanionTimeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::CONFLICT,
    };
    let mut body = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
    body["message"] = json!(e.to_string());
    Refusal { status, body }
}

#[derive(Deserialize)]
struct ScanRequest {
    qr: String,
}

#[derive(Deserialize)]
struct CodeRequest {
    code: String,
}

#[derive(Deserialize)]
struct WaitRequest {
    #[serde(default)]
    online: Option<String>,
    #[serde(default)]
    offline: Option<String>,
    #[serde(default = "default_wait_ms")]
    timeout_ms: u64,
}

fn default_wait_ms() -> u64 {
    10_000
}

fn parse_jid(text: &str) -> Result<Jid, Refusal> {
    text.parse::<Jid>()
        .map_err(|_| bad_request(format!("not a JID: {text}")))
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(value) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, Refusal> {
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(bad_request)?
        .to_bytes();
    serde_json::from_slice(&body).map_err(bad_request)
}

async fn route(sim: Simulator, request: Request<Incoming>) -> Reply {
    match route_inner(sim, request).await {
        Ok(body) => reply(StatusCode::OK, &body),
        Err(refusal) => reply(refusal.status, &refusal.body),
    }
}

async fn route_inner(
    sim: Simulator,
    request: Request<Incoming>,
) -> Result<serde_json::Value, Refusal> {
    let path = request.uri().path().to_string();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method().as_str().to_string();
    let ok = Ok::<serde_json::Value, Refusal>;
    if let ["phones", number, ..] = segments.as_slice()
        && (number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad_request("a phone number is digits only"));
    }
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["health"]) => ok(json!({ "ok": true })),
        ("GET", ["phones"]) => ok(json!(sim.phones())),
        ("GET", ["events"]) => ok(json!(sim.events())),
        ("GET", ["online"]) => ok(json!(
            sim.online_devices()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        )),
        ("POST", ["phones", number, "scan"]) => {
            let body: ScanRequest = json_body(request).await?;
            match sim.phone(number).scan(&body.qr).await {
                Ok(jid) => ok(json!({ "jid": jid.to_string() })),
                Err(e) => Err(phone_error(&e)),
            }
        }
        ("POST", ["phones", number, "code"]) => {
            let body: CodeRequest = json_body(request).await?;
            match sim.phone(number).enter_code(&body.code).await {
                Ok(jid) => ok(json!({ "jid": jid.to_string() })),
                Err(e) => Err(phone_error(&e)),
            }
        }
        ("GET", ["phones", number, "devices"]) => ok(json!(sim.phone(number).linked_devices())),
        ("DELETE", ["phones", number, "devices", jid]) => {
            let jid = parse_jid(jid)?;
            match sim.phone(number).remove_device(&jid) {
                Ok(()) => ok(json!({ "removed": jid.to_string() })),
                Err(e) => Err(phone_error(&e)),
            }
        }
        ("POST", ["faults"]) => {
            let fault: Fault = json_body(request).await?;
            sim.inject(fault).map_err(bad_request)?;
            ok(json!({ "ok": true }))
        }
        ("POST", ["wait"]) => {
            let wait: WaitRequest = json_body(request).await?;
            let timeout = Duration::from_millis(wait.timeout_ms);
            let outcome = match (wait.online, wait.offline) {
                (Some(jid), None) => sim.wait_for_connected(&parse_jid(&jid)?, timeout).await,
                (None, Some(jid)) => sim.wait_for_offline(&parse_jid(&jid)?, timeout).await,
                _ => return Err(bad_request("give exactly one of `online`, `offline`")),
            };
            match outcome {
                Ok(()) => ok(json!({ "ok": true })),
                Err(e) => Err(Refusal {
                    status: StatusCode::REQUEST_TIMEOUT,
                    body: json!({ "error": "timeout", "detail": e.to_string() }),
                }),
            }
        }
        _ => Err(Refusal {
            status: StatusCode::NOT_FOUND,
            body: json!({ "error": "not_found", "detail": format!("{method} {path}") }),
        }),
    }
}
