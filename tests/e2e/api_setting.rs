//! The window's REST API setting: off by default; turned on in the window,
//! the open app answers the API, and what a script does through it shows up
//! live in the window.

use std::process::Command;
use std::time::Duration;

use crate::harness::{AppSession, free_port};

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// `curl` (a real HTTP client, not our code): the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test]
async fn the_window_serves_the_rest_api_when_turned_on() {
    let app = AppSession::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    app.click_button("header", "REST API…").await;
    let dialog = "[data-testid=api-dialog]";
    app.wait_for_text(dialog, "Not serving.", STEP_TIMEOUT)
        .await;
    let (status, _) = curl(&[&format!("{base}/health")]);
    assert_eq!(status, 0, "nothing listens before the setting is on");

    app.click_on(&format!("{dialog} input[name=enabled]")).await;
    app.clear_and_type(
        &format!("{dialog} input[name=listen]"),
        &format!("127.0.0.1:{port}"),
    )
    .await;
    app.type_into(&format!("{dialog} input[name=password]"), "e2e-pass")
        .await;
    app.click_button(dialog, "Save").await;
    app.wait_for_text(dialog, &format!("Serving on {base}"), STEP_TIMEOUT)
        .await;
    app.screenshot("api-settings-light").await;

    let (status, body) = curl(&["-u", "admin:e2e-pass", &format!("{base}/devices")]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"SUCCESS\""), "{body}");
    let (status, _) = curl(&["-u", "admin:wrong", &format!("{base}/devices")]);
    assert_eq!(status, 401, "a wrong password is refused");

    // A device created by a script appears in the window without a reload.
    let (status, body) = curl(&[
        "-u",
        "admin:e2e-pass",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"device_id":"from-script"}"#,
        &format!("{base}/devices"),
    ]);
    assert!((200..300).contains(&status), "{status} {body}");
    app.click_button(dialog, "Close").await;
    app.wait_for_text(
        "li[data-device-id='from-script'] .state",
        "Disconnected",
        STEP_TIMEOUT,
    )
    .await;

    // Turned off again, the port closes.
    app.click_button("header", "REST API…").await;
    app.wait_for_text(dialog, "Serving on", STEP_TIMEOUT).await;
    app.click_on(&format!("{dialog} input[name=enabled]")).await;
    app.click_button(dialog, "Save").await;
    app.wait_for_text(dialog, "Not serving.", STEP_TIMEOUT)
        .await;
    let (status, _) = curl(&[&format!("{base}/health")]);
    assert_eq!(status, 0, "the API stopped with the setting off");

    app.close().await;
}
