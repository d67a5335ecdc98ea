//! Starts one app per test: its own tauri-driver on free ports, its own data
//! folder, and a WebDriver session on the app's main window.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tempfile::TempDir;

use crate::selectors;

/// How long the app may take to show its first element; a cold WebKit start
/// under Xvfb on a loaded 2-core machine takes a few seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct AppSession {
    pub client: Client,
    /// The app's data folder: inside a fresh temporary folder and not created
    /// before launch, so every test also checks that the app creates it.
    pub data_dir: PathBuf,
    _data_root: TempDir,
    driver: Child,
}

/// How to launch the app beyond a fresh data folder.
#[derive(Debug, Default, Clone)]
pub struct Launch {
    /// Extra command-line arguments of the app.
    pub args: Vec<String>,
    /// Extra environment of tauri-driver, which passes it on to the app.
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn arg(mut self, arg: impl Into<String>) -> Launch {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl AppSession {
    /// Launches the app with a fresh, empty data folder and waits until the
    /// UI has rendered its header.
    pub async fn start() -> AppSession {
        AppSession::start_with(Launch::default()).await
    }

    /// [`AppSession::start`] with extra arguments and environment.
    pub async fn start_with(launch: Launch) -> AppSession {
        let data_root = tempfile::Builder::new()
            .prefix("wa-e2e-")
            .tempdir()
            .expect("create the test's temporary folder");
        let data_dir = data_root.path().join("app-data");
        assert!(
            std::env::var_os("DISPLAY").is_some(),
            "no DISPLAY: run the end-to-end tests through tests/desktop-session.sh"
        );
        let port = free_port();
        let native_port = free_port();
        let driver = Command::new(tauri_driver_path())
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(data_root.path()))
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .spawn()
            .expect("start tauri-driver (installed by `make test-deps`)");
        wait_for_port(port, Duration::from_secs(20));
        // tauri-driver starts WebKitWebDriver on the native port and takes
        // connections before that one listens; a session opened before then
        // is dropped unanswered (seen when the suite starts on a busy
        // machine). Both must listen.
        wait_for_port(native_port, Duration::from_secs(20));

        let mut args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
        args.extend(launch.args.iter().cloned());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("wry"));
        capabilities.insert(
            "tauri:options".into(),
            json!({
                "application": env!("CARGO_BIN_EXE_wa-device-admin"),
                "args": args,
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("open a WebDriver session on the app");
        let session = AppSession {
            client,
            data_dir,
            _data_root: data_root,
            driver,
        };
        session
            .client
            .wait()
            .at_most(START_TIMEOUT)
            .for_element(Locator::Css(selectors::APP_TITLE))
            .await
            .expect("the app renders its header");
        session
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element matches {css}: {error}"))
    }

    /// The rendered text of the first element matching `css` (its `innerText`:
    /// what a person sees, not hidden markup), waiting up to 10 s for it.
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.element(css).await;
        element
            .prop("innerText")
            .await
            .expect("read the element's text")
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until the first element matching `css` shows
    /// `text` in its rendered text, and returns that text.
    pub async fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element
                    .prop("innerText")
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            if seen.contains(text) {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not show {text:?} within {timeout:?}; it shows {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` until nothing matches `css`.
    pub async fn wait_until_gone(&self, css: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self
            .client
            .find_all(Locator::Css(css))
            .await
            .map(|found| found.is_empty())
            .unwrap_or(false)
        {
            assert!(
                Instant::now() < deadline,
                "{css} is still shown after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.element(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("cannot type into {css}: {error}"));
    }

    /// Clicks the first element matching `css` (a checkbox, a link).
    pub async fn click_on(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|error| panic!("cannot click {css}: {error}"));
    }

    /// Replaces the value of the first input matching `css` with `text`.
    pub async fn clear_and_type(&self, css: &str, text: &str) {
        let input = self.element(css).await;
        input
            .clear()
            .await
            .unwrap_or_else(|error| panic!("cannot clear {css}: {error}"));
        input
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("cannot type into {css}: {error}"));
    }

    /// Clicks the button with exactly the visible text `label` inside the
    /// first element matching `scope`.
    pub async fn click_button(&self, scope: &str, label: &str) {
        let scope_element = self.element(scope).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let buttons = scope_element
                .find_all(Locator::Css(selectors::BUTTON))
                .await
                .unwrap_or_default();
            for button in buttons {
                let text = button.text().await.unwrap_or_default();
                if text.trim() == label && button.is_enabled().await.unwrap_or(false) {
                    button
                        .click()
                        .await
                        .unwrap_or_else(|error| panic!("cannot click {label:?}: {error}"));
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no enabled button {label:?} in {scope}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the window as `<screenshot dir>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("create the screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).expect("write the screenshot");
        path
    }

    /// Ends the WebDriver session (which closes the app) and stops the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Dropping stops tauri-driver.
    }
}

impl Drop for AppSession {
    fn drop(&mut self) {
        stop_driver(&mut self.driver);
    }
}

/// Stops tauri-driver with SIGTERM, on which it also stops WebKitWebDriver
/// (SIGKILL would orphan it and the app); SIGKILL only if it hangs.
fn stop_driver(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &driver.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = driver.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Where screenshots go: `$WA_E2E_SCREENSHOT_DIR`, else `test-output/screenshots`
/// at the repository root (`make test` prints it at the end).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("WA_E2E_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("test-output/screenshots"))
}

fn tauri_driver_path() -> PathBuf {
    if let Some(path) = std::env::var_os("TAURI_DRIVER") {
        return PathBuf::from(path);
    }
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .map(|home| home.join("bin/tauri-driver"));
    match in_cargo_home {
        Some(path) if path.exists() => path,
        _ => PathBuf::from("tauri-driver"),
    }
}

/// The driver's and app's stderr, kept beside the test's data folder: output
/// from the app must not go to the test runner's pipes (nextest reports it as
/// a leak) yet stays readable when a test fails.
fn log_file(dir: &Path) -> Stdio {
    std::fs::File::create(dir.join("driver.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// A loopback port for a server this test starts (tauri-driver, the app's
/// REST API), free when checked.
///
/// Not a port from binding port 0: those come from the kernel's ephemeral
/// range (32768-60999 on Linux), where every other test's `bind(:0)` and
/// outgoing connection draws too, so one could take the port between this
/// check and the server's own bind (a WebDriver session then fails to open).
/// Ports below that range are only ever taken on request; each test
/// process gets a block of its own, chosen by its pid.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const BLOCK: u16 = 12;
    const BLOCKS: u16 = 1_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = (std::process::id() % u32::from(BLOCKS)) as u16;
    for _ in 0..BLOCK * 4 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % BLOCK;
        let port = FIRST + block * BLOCK + offset;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in this test's block");
}

fn wait_for_port(port: u16, timeout: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "tauri-driver did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
