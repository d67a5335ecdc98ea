//! The rig: the service rig of `wa-test-support` (simulator, service, data
//! folder, keyring) with the API server on it and an HTTP client.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wa_device_api::{ApiConfig, ApiServer, RunningApi, parse_credentials};
use wa_device_core::{DeviceService, SecretStore};
use wa_sim::{SimConfig, Simulator};
use wa_test_support::qr::png_qr_payload;
use wa_test_support::rig::WAIT;

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery";
pub const OTHER_USER: &str = "bob";
pub const OTHER_PASSWORD: &str = "builder";

pub struct Rig {
    pub sim: Simulator,
    pub _dir: tempfile::TempDir,
    pub secrets: Arc<dyn SecretStore>,
    pub service: DeviceService,
    pub api: Option<RunningApi>,
    pub base: String,
    pub client: reqwest::Client,
}

/// An answer: status, headers and the raw body text.
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status and the envelope code.
    #[track_caller]
    pub fn expect(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let json = self.json();
        assert_eq!(json["code"], code, "{}", self.text);
        assert!(json["message"].is_string(), "{}", self.text);
        assert!(
            json.as_object().unwrap().contains_key("results"),
            "{}",
            self.text
        );
        json
    }
}

impl Rig {
    pub async fn new() -> Rig {
        Rig::with(SimConfig::default(), |_| {}).await
    }

    pub async fn with(sim_config: SimConfig, tune: impl FnOnce(&mut ApiConfig)) -> Rig {
        let wa_test_support::rig::Rig {
            sim,
            dir,
            secrets,
            service,
        } = wa_test_support::rig::Rig::with_sim(sim_config).await;
        let mut api_config = ApiConfig::new(
            parse_credentials(&[format!("{USER}:{PASSWORD},{OTHER_USER}:{OTHER_PASSWORD}")])
                .unwrap(),
        );
        api_config.listen = "127.0.0.1:0".parse().unwrap();
        tune(&mut api_config);
        let api = ApiServer::start(service.clone(), api_config).await.unwrap();
        let base = format!("http://{}", api.local_addr());
        Rig {
            sim,
            _dir: dir,
            secrets,
            service,
            api: Some(api),
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    /// A request as `alice`.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(USER, Some(PASSWORD))
    }

    pub async fn call(&self, method: Method, path: &str) -> Answer {
        self.send(self.request(method, path)).await
    }

    pub async fn create(&self, id: &str) -> Value {
        let answer = self
            .send(
                self.request(Method::POST, "/devices")
                    .json(&serde_json::json!({"device_id": id, "label": id})),
            )
            .await;
        answer.expect(200, "SUCCESS")["results"].clone()
    }

    /// Polls `GET /devices/{id}` until `done` holds.
    pub async fn wait_for(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let device = self.call(Method::GET, &format!("/devices/{id}")).await;
            let device = device.expect(200, "SUCCESS")["results"].clone();
            if done(&device) {
                return device;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id}: {device}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts a QR login of `id` through the API and returns the QR payload
    /// its `qr_link` PNG shows, as a script reads it.
    pub async fn qr_login_payload(&self, id: &str) -> String {
        let login = self
            .call(Method::GET, &format!("/devices/{id}/login"))
            .await;
        let link = login.expect(200, "SUCCESS")["results"]["qr_link"]
            .as_str()
            .unwrap()
            .to_owned();
        png_qr_payload(&self.qr_png(&link).await.expect("the QR code's PNG"))
    }

    /// The PNG a `qr_link` serves, as `alice`; `None` when the answer is not
    /// 200 (the login ended).
    pub async fn qr_png(&self, link: &str) -> Option<Vec<u8>> {
        let response = self
            .client
            .get(link)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            return None;
        }
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(response.headers()["cache-control"], "no-store");
        Some(response.bytes().await.unwrap().to_vec())
    }

    /// Creates `id` and links it by QR through the API and `phone`.
    pub async fn linked(&self, id: &str, phone: &str) -> Value {
        self.create(id).await;
        let login = self
            .call(Method::GET, &format!("/devices/{id}/login"))
            .await;
        let login = login.expect(200, "SUCCESS")["results"].clone();
        let png = self
            .qr_png(login["qr_link"].as_str().unwrap())
            .await
            .unwrap();
        self.sim
            .phone(phone)
            .scan(&png_qr_payload(&png))
            .await
            .unwrap();
        self.wait_for(id, |d| d["state"] == "logged_in").await
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Stops the server's tasks; the service's sessions end with the
        // runtime of the test.
        self.api.take();
    }
}

/// Sends raw bytes and returns the status line and the whole answer, for
/// requests a URL-normalizing client would never send.
pub async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
