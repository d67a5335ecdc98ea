//! The window's REST API setting: off by default; turned on in the window,
//! the open app answers the API, and what a script does through it shows up
//! live in the window.

use std::process::Command;
use std::time::Duration;

use crate::harness::{AppSession, free_port};
use crate::selectors::{
    API_DIALOG, API_DIALOG_ENABLED, API_DIALOG_LISTEN, API_DIALOG_PASSWORD, HEADER, device_state,
};

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

    app.click_button(HEADER, "REST API…").await;
    app.wait_for_text(API_DIALOG, "Not serving.", STEP_TIMEOUT)
        .await;
    let (status, _) = curl(&[&format!("{base}/health")]);
    assert_eq!(status, 0, "nothing listens before the setting is on");

    app.click_on(API_DIALOG_ENABLED).await;
    app.clear_and_type(API_DIALOG_LISTEN, &format!("127.0.0.1:{port}"))
        .await;
    app.type_into(API_DIALOG_PASSWORD, "e2e-pass").await;
    app.click_button(API_DIALOG, "Save").await;
    app.wait_for_text(API_DIALOG, &format!("Serving on {base}"), STEP_TIMEOUT)
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
    app.click_button(API_DIALOG, "Close").await;
    app.wait_for_text(&device_state("from-script"), "Not linked yet", STEP_TIMEOUT)
        .await;

    // Turned off again, the port closes.
    app.click_button(HEADER, "REST API…").await;
    app.wait_for_text(API_DIALOG, "Serving on", STEP_TIMEOUT)
        .await;
    app.click_on(API_DIALOG_ENABLED).await;
    app.click_button(API_DIALOG, "Save").await;
    app.wait_for_text(API_DIALOG, "Not serving.", STEP_TIMEOUT)
        .await;
    let (status, _) = curl(&[&format!("{base}/health")]);
    assert_eq!(status, 0, "the API stopped with the setting off");

    app.close().await;
}
