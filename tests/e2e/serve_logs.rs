//! `wa-device-admin serve` at `RUST_LOG=trace`, JSON lines: a QR login, a
//! code login and two logouts through the REST API against the loopback
//! simulator. Every state change and admin action is a log line with its
//! device id, and no secret appears in the output in any form: the API
//! password, the QR payload (and each of its parts), the pairing code, and
//! each key of the devices' keyring entries (whole key pairs and their
//! halves), raw, as hex and as base64.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use wa_sim::{SimConfig, Simulator};
use wa_test_support::qr::png_qr_payload;

use wa_device_admin::APP_IDENTIFIER;

const USER: &str = "admin";
const QR_PHONE: &str = "15551230001";
const CODE_PHONE: &str = "15551230002";

/// Stops the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Api {
    base: String,
    password: String,
}

impl Api {
    fn call(&self, method: &str, path: &str) -> Value {
        let output = Command::new("curl")
            .args(["-s", "--max-time", "60", "-X", method, "-u"])
            .arg(format!("{USER}:{}", self.password))
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl");
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON"))
    }

    fn create(&self, id: &str) {
        self.create_with(serde_json::json!({ "device_id": id }));
    }

    fn create_with(&self, body: Value) {
        let created = Command::new("curl")
            .args(["-s", "-X", "POST", "-u"])
            .arg(format!("{USER}:{}", self.password))
            .args(["-H", "Content-Type: application/json", "-d"])
            .arg(body.to_string())
            .arg(format!("{}/devices", self.base))
            .output()
            .expect("run curl");
        let answer: Value = serde_json::from_slice(&created.stdout).expect("JSON");
        assert_eq!(answer["code"], "SUCCESS", "{answer}");
    }

    fn bytes(&self, path: &str) -> Vec<u8> {
        Command::new("curl")
            .args(["-s", "--max-time", "30", "-u"])
            .arg(format!("{USER}:{}", self.password))
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl")
            .stdout
    }

    fn wait_for_state(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let device = self.call("GET", &format!("/devices/{id}"));
            if device["results"]["detailed_state"] == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never reached {state}: {device}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The keyring entry of a device, through `secret-tool` (not the app's
/// code): the JSON of its keys.
fn keyring_entry(data: &Path, device_id: &str) -> Value {
    let scope = std::fs::read_to_string(data.join("keyring-scope")).expect("keyring scope");
    let name = format!("{}/device/{device_id}", scope.trim());
    let output = Command::new("secret-tool")
        .args(["lookup", "service", APP_IDENTIFIER, "username", &name])
        .output()
        .expect("run secret-tool");
    serde_json::from_slice(&output.stdout).expect("the device's keyring entry is JSON")
}

/// A webhook receiver on 127.0.0.1 that answers 500 to every other POST
/// (the first of each delivery, with the service's retries) and counts the
/// signed ones.
struct WebhookReceiver {
    addr: std::net::SocketAddr,
    signed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let signed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&signed);
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut length, mut has_signature) = (0usize, false);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    has_signature |= lower.starts_with("x-hub-signature-256: sha256=");
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                if has_signature {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let status = if n % 2 == 0 {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        WebhookReceiver { addr, signed }
    }

    fn signed_posts(&self) -> usize {
        self.signed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Every form a secret could take in a log line.
fn forms(secret: &[u8]) -> Vec<(String, Vec<u8>)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("raw".to_owned(), secret.to_vec()),
        ("hex".to_owned(), hex.clone().into_bytes()),
        ("HEX".to_owned(), hex.to_uppercase().into_bytes()),
        ("base64".to_owned(), b64.encode(secret).into_bytes()),
        ("base64url".to_owned(), b64url.encode(secret).into_bytes()),
        (
            "bytes".to_owned(),
            format!("{secret:?}").replace(' ', "").into_bytes(),
        ),
    ]
}

fn key_bytes(value: &Value) -> Vec<u8> {
    value
        .as_array()
        .expect("a key as an array of bytes")
        .iter()
        .map(|b| u8::try_from(b.as_u64().expect("a byte")).expect("a byte"))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() >= 6 && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_log_of_logins_and_logouts_holds_no_secret() {
    let sim = Simulator::new(SimConfig::default());
    let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback");
    let endpoints = wa_sim::serve(sim.clone(), any, any)
        .await
        .expect("serve the simulator on loopback");
    let data = tempfile::tempdir().expect("temp dir");
    let log_path = data.path().join("serve.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let password = format!(
        "pw-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_wa-device-admin"))
        .env("RUST_LOG", "trace")
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .args([
            "--simulator-url",
            &endpoints.ws_url,
            "--client-time-factor",
            "10",
        ])
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .arg("--basic-auth")
        .arg(format!("{USER}:{password}"))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("serve prints its address")
            .expect("a line");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_owned();
        }
    };
    let api = Api { base, password };
    let data_dir = data.path().join("data");

    // A QR login: the phone scans the PNG the API serves. The device has a
    // signed webhook, whose receiver refuses the first try of each delivery,
    // so signing and retrying run at trace level too.
    let receiver = WebhookReceiver::start();
    let webhook_secret = format!(
        "hook-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_nanos()
    );
    api.create_with(serde_json::json!({
        "device_id": "by-qr",
        "webhook_url": format!("http://{}/hook", receiver.addr),
        "webhook_secret": webhook_secret,
    }));
    let login = api.call("GET", "/devices/by-qr/login");
    assert_eq!(login["code"], "SUCCESS", "{login}");
    let payload = png_qr_payload(&api.bytes("/devices/by-qr/login/qr.png"));
    sim.phone(QR_PHONE).scan(&payload).await.expect("scan");
    api.wait_for_state("by-qr", "logged_in");

    // A code login.
    api.create("by-code");
    let code = api.call(
        "POST",
        &format!("/devices/by-code/login/code?phone={CODE_PHONE}"),
    );
    let code = code["results"]["pair_code"]
        .as_str()
        .expect("a pairing code")
        .to_owned();
    sim.phone(CODE_PHONE)
        .enter_code(&code)
        .await
        .expect("enter the code");
    api.wait_for_state("by-code", "logged_in");

    let keys: Vec<(String, Vec<u8>)> = ["by-qr", "by-code"]
        .iter()
        .flat_map(|id| {
            let entry = keyring_entry(&data_dir, id);
            [
                "noise_key",
                "identity_key",
                "signed_pre_key",
                "adv_secret_key",
            ]
            .into_iter()
            .map(move |field| (format!("{id} {field}"), key_bytes(&entry[field])))
            .collect::<Vec<_>>()
        })
        .collect();

    // The login's delivery: refused once, then retried (1 s later).
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.signed_posts() < 2 {
        assert!(Instant::now() < deadline, "no signed webhook retry");
        std::thread::sleep(Duration::from_millis(50));
    }
    for id in ["by-qr", "by-code"] {
        let out = api.call("POST", &format!("/devices/{id}/logout"));
        assert_eq!(out["code"], "SUCCESS", "{out}");
    }
    Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "serve did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = std::fs::read(&log_path).expect("the log");
    let text = String::from_utf8_lossy(&output);

    // The lines an operator needs: JSON, with the device id on each state
    // change and admin action.
    let events: Vec<Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    let with = |message: &str, id: &str, field: &str, value: &str| {
        events.iter().any(|e| {
            e["fields"]["message"] == message
                && e["fields"]["device_id"] == id
                && e["fields"][field] == value
        })
    };
    for id in ["by-qr", "by-code"] {
        assert!(
            with("device state", id, "state", "logged_in"),
            "{id} logged in"
        );
        assert!(
            with("device state", id, "reason", "logged_out"),
            "{id} logged out"
        );
        assert!(with("action", id, "action", "logout"), "{id} logout action");
    }
    assert!(with("action", "by-qr", "action", "login_qr"));
    assert!(with("action", "by-code", "action", "login_code"));

    // No secret, in any form.
    let mut secrets: Vec<(String, Vec<u8>)> = forms(webhook_secret.as_bytes())
        .into_iter()
        .map(|(form, bytes)| (format!("webhook secret ({form})"), bytes))
        .collect();
    secrets.extend([
        ("password".to_owned(), api.password.clone().into_bytes()),
        ("QR payload".to_owned(), payload.clone().into_bytes()),
        ("pairing code".to_owned(), code.clone().into_bytes()),
        (
            "pairing code".to_owned(),
            code.replace('-', "").into_bytes(),
        ),
    ]);
    for (n, part) in payload.split(',').enumerate() {
        secrets.push((format!("QR part {n}"), part.as_bytes().to_vec()));
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(part) {
            secrets.extend(
                forms(&decoded)
                    .into_iter()
                    .map(|(form, bytes)| (format!("QR part {n} ({form})"), bytes)),
            );
        }
    }
    for (name, key) in keys {
        let mut pieces = vec![(name.clone(), key.clone())];
        if key.len() == 64 {
            pieces.push((format!("{name} private half"), key[..32].to_vec()));
            pieces.push((format!("{name} public half"), key[32..].to_vec()));
        }
        for (piece, bytes) in pieces {
            secrets.extend(
                forms(&bytes)
                    .into_iter()
                    .map(|(form, b)| (format!("{piece} ({form})"), b)),
            );
        }
    }
    for (name, needle) in &secrets {
        assert!(!contains(&output, needle), "the log holds the {name}");
    }
    assert!(
        events.len() > 10,
        "the trace log has lines: {}",
        events.len()
    );
}
