//! A real whatsapp-rust client wired to the simulator, an event log to wait
//! on, and one `Target` type so every flow runs both in process and against
//! the `wa-sim` binary over a loopback WebSocket.
//!
//! Time: the client runs on `CompressedRuntime`, which shortens every sleep
//! and timeout the client takes through its injectable `Runtime` by a fixed
//! factor. The fixed 10 s wait after a fresh pairing, the 60 s + 5 x 20 s QR
//! ref rotation and the keepalive timers all run that much faster, while the
//! protocol exchanged is unchanged. (The pairing-code expiry is checked by the
//! client against the wall clock, not the runtime.)

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use wa_sim::{Fault, Simulator};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::runtime::{AbortHandle, Runtime};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_rust::{Client, TokioRuntime};
use whatsapp_rust_tokio_transport::TokioWebSocketTransportFactory;

/// Generous upper bound for any single wait; tests finish far sooner.
pub const WAIT: Duration = Duration::from_secs(30);
/// The client notices a silent server by wall-clock checks (no ping while
/// data arrived in the last 15 s; reconnect after 20 s without an answer),
/// which runtime compression does not shorten.
pub const STALL_WAIT: Duration = Duration::from_secs(90);
/// Sleep compression for ordinary flows.
pub const TIME_FACTOR: u32 = 10;
pub const PHONE: &str = "15551234567";

/// `TokioRuntime`, with every sleep divided by `factor`.
pub struct CompressedRuntime {
    factor: u32,
}

#[async_trait]
impl Runtime for CompressedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        TokioRuntime.spawn(future)
    }

    fn spawn_detached(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        TokioRuntime.spawn_detached(future);
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration / self.factor))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        TokioRuntime.spawn_blocking(f)
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        None
    }
}

/// Nothing here may reach the internet; version fetching is bypassed with
/// `with_version`, and media is never used.
struct OfflineHttp;

#[async_trait]
impl HttpClient for OfflineHttp {
    async fn execute(&self, _request: HttpRequest) -> anyhow::Result<HttpResponse> {
        Err(anyhow::anyhow!("no network in simulator tests"))
    }
}

/// Every event the client emitted, in order.
#[derive(Clone)]
pub struct EventLog {
    events: Arc<Mutex<Vec<Arc<Event>>>>,
    changed: watch::Sender<usize>,
}

impl EventLog {
    fn new() -> Self {
        Self {
            events: Arc::default(),
            changed: watch::channel(0).0,
        }
    }

    fn push(&self, event: Arc<Event>) {
        let len = {
            let mut events = self.events.lock().expect("event log lock");
            events.push(event);
            events.len()
        };
        self.changed.send_replace(len);
    }

    pub fn all(&self) -> Vec<Arc<Event>> {
        self.events.lock().expect("event log lock").clone()
    }

    pub fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
        self.all().iter().filter(|e| matches(e)).count()
    }

    /// Waits until at least `n` events match, and returns the `n`th.
    pub async fn wait_nth(
        &self,
        n: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Arc<Event> {
        self.wait_nth_within(WAIT, n, what, matches).await
    }

    pub async fn wait_nth_within(
        &self,
        timeout: Duration,
        n: usize,
        what: &str,
        matches: impl Fn(&Event) -> bool,
    ) -> Arc<Event> {
        match self.try_wait_nth(timeout, n, matches).await {
            Some(found) => found,
            None => panic!(
                "timed out waiting for {what}; client events: {:?}",
                self.summaries()
            ),
        }
    }

    /// Like `wait_nth_within`, but `None` on timeout.
    pub async fn try_wait_nth(
        &self,
        timeout: Duration,
        n: usize,
        matches: impl Fn(&Event) -> bool,
    ) -> Option<Arc<Event>> {
        let mut changes = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.all().into_iter().filter(|e| matches(e)).nth(n - 1) {
                return Some(found);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Event names only, for failure messages.
    pub fn summaries(&self) -> Vec<String> {
        self.all().iter().map(|e| summary(e)).collect()
    }

    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Event) -> bool) -> Arc<Event> {
        self.wait_nth(1, what, matches).await
    }
}

/// Event name only: QR and pairing-code payloads stay out of test output.
fn summary(event: &Event) -> String {
    let debug = format!("{event:?}");
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

pub enum Factory {
    InProcess(wa_sim::InProcessTransportFactory),
    WebSocket(TokioWebSocketTransportFactory),
}

#[async_trait]
impl TransportFactory for Factory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        match self {
            Self::InProcess(f) => f.create_transport().await,
            Self::WebSocket(f) => f.create_transport().await,
        }
    }
}

pub struct ClientOptions {
    pub factor: u32,
    pub pair_code_for: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            factor: TIME_FACTOR,
            pair_code_for: None,
        }
    }
}

/// A running whatsapp-rust client (unmodified 0.7.0).
pub struct TestClient {
    pub client: Arc<Client>,
    pub events: EventLog,
    handle: Option<BotHandle>,
}

impl TestClient {
    pub async fn start(
        factory: Factory,
        backend: Arc<InMemoryBackend>,
        options: ClientOptions,
    ) -> Self {
        let events = EventLog::new();
        let log = events.clone();
        let mut builder = Bot::builder()
            .with_backend_arc(backend)
            .with_transport_factory(factory)
            .with_http_client(OfflineHttp)
            .with_runtime(CompressedRuntime {
                factor: options.factor,
            })
            .with_version((2, 3000, 1_023_000_000))
            .on_event(move |event, _client| {
                let log = log.clone();
                async move { log.push(event) }
            });
        if let Some(phone) = options.pair_code_for {
            builder = builder.with_pair_code(PairCodeOptions {
                phone_number: phone,
                ..Default::default()
            });
        }
        let bot = builder.build().await.expect("client builds");
        let handle = bot.spawn();
        Self {
            client: handle.client(),
            events,
            handle: Some(handle),
        }
    }

    /// Disconnects and waits for the client's run loop to end.
    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(WAIT, handle.shutdown())
                .await
                .expect("client shuts down");
        }
    }

    pub async fn wait_connected(&self, nth: usize) {
        self.events
            .wait_nth(nth, "Connected", |e| matches!(e, Event::Connected(_)))
            .await;
    }

    pub async fn next_qr(&self) -> String {
        let event = self
            .events
            .wait_for("a QR code", |e| matches!(e, Event::PairingQrCode(_)))
            .await;
        wa_sim::pairing_qr(&event)
            .expect("filtered on PairingQrCode")
            .to_string()
    }

    pub async fn pairing_code(&self) -> String {
        let event = self
            .events
            .wait_for("a pairing code", |e| matches!(e, Event::PairingCode(_)))
            .await;
        wa_sim::pairing_code(&event)
            .expect("filtered on PairingCode")
            .to_string()
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// The `wa-sim` binary, killed when dropped.
pub struct BinarySim {
    child: tokio::process::Child,
    ws_url: String,
    control: wa_sim::ControlClient,
}

impl BinarySim {
    pub async fn start(extra_args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-sim"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(extra_args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("wa-sim starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        tokio::time::timeout(WAIT, BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("wa-sim prints its endpoints in time")
            .expect("wa-sim stdout readable");
        let ready: Value = serde_json::from_str(&line).expect("one JSON line");
        let ws_url = ready["ws_url"].as_str().expect("ws_url").to_string();
        let control =
            wa_sim::ControlClient::new(ready["control_url"].as_str().expect("control_url"));
        assert!(ws_url.starts_with("ws://127.0.0.1:") && ws_url.ends_with("/ws/chat"));
        Self {
            child,
            ws_url,
            control,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("wa-sim is running")
    }

    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("wa-sim exits in time")
            .expect("wa-sim exit status")
    }

    /// One request to the control API; returns status and JSON body.
    pub async fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.control
            .request(method, path, body)
            .await
            .expect("control API reachable")
    }
}

/// Where a flow runs: the library in process, or the binary over loopback.
pub enum Target {
    InProcess(Simulator),
    Binary(Box<BinarySim>),
}

impl Target {
    pub fn in_process() -> Self {
        Self::InProcess(Simulator::default())
    }

    pub async fn binary() -> Self {
        Self::Binary(Box::new(BinarySim::start(&[]).await))
    }

    pub fn factory(&self) -> Factory {
        match self {
            Self::InProcess(sim) => Factory::InProcess(sim.transport_factory()),
            Self::Binary(bin) => {
                Factory::WebSocket(TokioWebSocketTransportFactory::new().with_url(&bin.ws_url))
            }
        }
    }

    pub async fn client(
        &self,
        backend: &Arc<InMemoryBackend>,
        options: ClientOptions,
    ) -> TestClient {
        TestClient::start(self.factory(), backend.clone(), options).await
    }

    /// The phone scans `qr`: `Ok(jid)` or `Err(error name)`.
    pub async fn scan(&self, phone: &str, qr: &str) -> Result<String, String> {
        match self {
            Self::InProcess(sim) => sim
                .phone(phone)
                .scan(qr)
                .await
                .map(|jid| jid.to_string())
                .map_err(|e| error_name(&e)),
            Self::Binary(bin) => {
                let (status, body) = bin
                    .http(
                        "POST",
                        &format!("/phones/{phone}/scan"),
                        Some(&json!({ "qr": qr })),
                    )
                    .await;
                http_outcome(status, &body)
            }
        }
    }

    pub async fn enter_code(&self, phone: &str, code: &str) -> Result<String, String> {
        match self {
            Self::InProcess(sim) => sim
                .phone(phone)
                .enter_code(code)
                .await
                .map(|jid| jid.to_string())
                .map_err(|e| error_name(&e)),
            Self::Binary(bin) => {
                let (status, body) = bin
                    .http(
                        "POST",
                        &format!("/phones/{phone}/code"),
                        Some(&json!({ "code": code })),
                    )
                    .await;
                http_outcome(status, &body)
            }
        }
    }

    pub async fn devices(&self, phone: &str) -> Vec<String> {
        match self {
            Self::InProcess(sim) => sim
                .phone(phone)
                .linked_devices()
                .iter()
                .map(|d| d.jid.to_string())
                .collect(),
            Self::Binary(bin) => {
                let (status, body) = bin
                    .http("GET", &format!("/phones/{phone}/devices"), None)
                    .await;
                assert_eq!(status, 200, "{body}");
                body.as_array()
                    .expect("device list")
                    .iter()
                    .map(|d| d["jid"].as_str().expect("jid").to_string())
                    .collect()
            }
        }
    }

    pub async fn remove_device(&self, phone: &str, jid: &str) {
        match self {
            Self::InProcess(sim) => sim
                .phone(phone)
                .remove_device(&jid.parse().expect("jid"))
                .expect("device removed"),
            Self::Binary(bin) => {
                let (status, body) = bin
                    .http("DELETE", &format!("/phones/{phone}/devices/{jid}"), None)
                    .await;
                assert_eq!(status, 200, "{body}");
            }
        }
    }

    pub async fn inject(&self, fault: Fault) {
        match self {
            Self::InProcess(sim) => sim.inject(fault).expect("fault injected"),
            Self::Binary(bin) => {
                let body = serde_json::to_value(&fault).expect("fault serializes");
                let (status, reply) = bin.http("POST", "/faults", Some(&body)).await;
                assert_eq!(status, 200, "{reply}");
            }
        }
    }

    pub async fn wait_online(&self, jid: &str) {
        match self {
            Self::InProcess(sim) => sim
                .wait_for_connected(&jid.parse().expect("jid"), WAIT)
                .await
                .expect("device online"),
            Self::Binary(bin) => {
                let body = json!({ "online": jid, "timeout_ms": WAIT.as_millis() as u64 });
                let (status, reply) = bin.http("POST", "/wait", Some(&body)).await;
                assert_eq!(status, 200, "{reply}");
            }
        }
    }

    pub async fn wait_offline(&self, jid: &str) {
        match self {
            Self::InProcess(sim) => sim
                .wait_for_offline(&jid.parse().expect("jid"), WAIT)
                .await
                .expect("device offline"),
            Self::Binary(bin) => {
                let body = json!({ "offline": jid, "timeout_ms": WAIT.as_millis() as u64 });
                let (status, reply) = bin.http("POST", "/wait", Some(&body)).await;
                assert_eq!(status, 200, "{reply}");
            }
        }
    }

    /// The simulator's event history as JSON (same shape as `GET /events`).
    pub async fn events(&self) -> Vec<Value> {
        match self {
            Self::InProcess(sim) => sim
                .events()
                .iter()
                .map(|e| serde_json::to_value(e).expect("event serializes"))
                .collect(),
            Self::Binary(bin) => {
                let (status, body) = bin.http("GET", "/events", None).await;
                assert_eq!(status, 200, "{body}");
                body.as_array().expect("event list").clone()
            }
        }
    }
}

fn error_name(e: &wa_sim::PhoneError) -> String {
    serde_json::to_value(e).expect("error serializes")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn http_outcome(status: u16, body: &Value) -> Result<String, String> {
    if status == 200 {
        Ok(body["jid"].as_str().expect("jid in reply").to_string())
    } else {
        Err(body["error"].as_str().unwrap_or_default().to_string())
    }
}

pub fn new_backend() -> Arc<InMemoryBackend> {
    Arc::new(InMemoryBackend::new())
}
