//! The admin's flows against the loopback WhatsApp simulator: add a device,
//! link it by QR code (read from a screenshot) and by pairing code, log it out
//! through the confirmation dialog, see a removal from the phone, reconnect,
//! delete. Each flow runs in the light and the dark theme and saves a
//! screenshot of every screen it passes.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use wa_device_admin::APP_IDENTIFIER;
use wa_sim::{SimConfig, SimEvent, Simulator};

use crate::harness::{AppSession, Launch};
use crate::screen_qr;
use crate::selectors::{
    ADD_DIALOG, ADD_DIALOG_ID, ADD_DIALOG_LABEL, CODE_DIALOG, CODE_DIALOG_PHONE, DELETE_DIALOG,
    EMPTY_LIST, HEADER, HISTORY_DIALOG, HISTORY_ROWS, KEYRING_BANNER, LOGOUT_DIALOG,
    LOGOUT_DIALOG_CONFIRMATION, PAIRING_CODE, PENDING_UNLINKS_PANEL, QR_DIALOG, QR_DIALOG_ERROR,
    TOASTS, WEBHOOK_SECRET, WEBHOOK_SECTION, WEBHOOK_URL, device_card, device_reason, device_state,
    pending_unlink_try_now,
};

/// Linking takes the client's fixed post-pairing wait (10 s, compressed here).
const LINK_TIMEOUT: Duration = Duration::from_secs(60);
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

struct LoopbackSimulator {
    sim: Simulator,
    endpoints: wa_sim::Endpoints,
}

impl LoopbackSimulator {
    async fn start() -> LoopbackSimulator {
        let sim = Simulator::new(SimConfig::default());
        let any: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
        let endpoints = wa_sim::serve(sim.clone(), any, any)
            .await
            .expect("serve the simulator on loopback");
        LoopbackSimulator { sim, endpoints }
    }

    /// The app, pointed at this simulator, with the client's timers 10x faster.
    async fn app(&self, theme: &str) -> AppSession {
        AppSession::start_with(
            Launch::default()
                .arg("--simulator-url")
                .arg(self.endpoints.ws_url.clone())
                .arg("--client-time-factor")
                .arg("10")
                .arg("--theme")
                .arg(theme),
        )
        .await
    }
}

/// The keyring's entry for a device of the app's data folder, through
/// `secret-tool` (libsecret), not through the app's own code. Entries are
/// named under the folder's keyring scope (the file `keyring-scope`).
fn keyring_has_entry(app: &AppSession, device_id: &str) -> bool {
    keyring_has(app, "device", device_id)
}

/// Whether the keyring has the folder's entry `<scope>/<kind>/<device_id>`.
fn keyring_has(app: &AppSession, kind: &str, device_id: &str) -> bool {
    let scope = std::fs::read_to_string(app.data_dir.join("keyring-scope"))
        .expect("the app created its folder's keyring scope");
    let name = format!("{}/{kind}/{device_id}", scope.trim());
    let output = Command::new("secret-tool")
        .args([
            "search",
            "--all",
            "service",
            APP_IDENTIFIER,
            "username",
            &name,
        ])
        .output()
        .expect("run secret-tool (libsecret-tools)");
    let listing = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    listing.contains(&name)
}

async fn assert_theme(app: &AppSession, theme: &str) {
    let dark = app
        .client
        .execute(
            "return window.matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .expect("ask the page for its colour scheme");
    assert_eq!(
        dark.as_bool(),
        Some(theme == "dark"),
        "the page follows the {theme} theme"
    );
}

async fn add_device(app: &AppSession, id: &str, label: &str, theme: &str, shot: bool) {
    app.click_button(HEADER, "Add device").await;
    app.type_into(ADD_DIALOG_LABEL, label).await;
    app.type_into(ADD_DIALOG_ID, id).await;
    if shot {
        app.screenshot(&format!("add-device-{theme}")).await;
    }
    app.click_button(ADD_DIALOG, "Add device").await;
    app.wait_until_gone(ADD_DIALOG, STEP_TIMEOUT).await;
    app.wait_for_text(&device_state(id), "Not linked yet", STEP_TIMEOUT)
        .await;
}

/// Screenshots the window until a QR code can be read from it.
async fn qr_from_screen(app: &AppSession, theme: &str) -> String {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let png = app.client.screenshot().await.expect("take a screenshot");
        if let Some(payload) = screen_qr::decode(&png) {
            app.screenshot(&format!("qr-login-{theme}")).await;
            return payload;
        }
        assert!(
            Instant::now() < deadline,
            "no readable QR code on the screen"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn qr_login_and_logout(theme: &str) {
    let server = LoopbackSimulator::start().await;
    let app = server.app(theme).await;
    assert_theme(&app, theme).await;
    // One id per theme: the light and dark runs go at once and share the
    // keyring, so the same id would let one see the other's entry.
    let id = &format!("front-desk-{theme}");
    add_device(&app, id, "Front desk", theme, true).await;

    app.click_button(&device_card(id), "Log in with QR").await;
    app.wait_for_text(QR_DIALOG, "Link a device", STEP_TIMEOUT)
        .await;
    let payload = qr_from_screen(&app, theme).await;
    let phone = server.sim.phone("15550001111");
    let jid = phone
        .scan(&payload)
        .await
        .expect("the simulated phone accepts the QR code read from the screen");
    app.wait_until_gone(QR_DIALOG, LINK_TIMEOUT).await;
    app.wait_for_text(&device_state(id), "Logged in", LINK_TIMEOUT)
        .await;
    app.wait_for_text(TOASTS, "is linked and logged in", STEP_TIMEOUT)
        .await;
    app.wait_for_text(&device_card(id), "+15550001111", STEP_TIMEOUT)
        .await;
    app.screenshot(&format!("device-list-{theme}")).await;
    assert!(
        keyring_has_entry(&app, id),
        "linking stored the device's keyring entry"
    );
    assert_eq!(phone.linked_devices().len(), 1);

    app.click_button(&device_card(id), "Log out…").await;
    let text = app
        .wait_for_text(LOGOUT_DIALOG, "Log out “Front desk”?", STEP_TIMEOUT)
        .await;
    for line in [
        "+15550001111",
        "disconnected from WhatsApp",
        "removed from the phone's Linked devices",
        "deleted from this computer's keyring",
        "local session data is deleted",
        "new QR code or pairing code",
    ] {
        assert!(text.contains(line), "the dialog says {line:?}: {text}");
    }
    let focused = app
        .client
        .execute("return document.activeElement.textContent.trim()", vec![])
        .await
        .expect("read the focused element");
    assert_eq!(focused.as_str(), Some("Cancel"), "focus starts on Cancel");
    app.type_into(LOGOUT_DIALOG_CONFIRMATION, "Front desk")
        .await;
    app.screenshot(&format!("logout-confirmation-{theme}"))
        .await;
    app.click_button(LOGOUT_DIALOG, "Log out device").await;
    app.wait_until_gone(LOGOUT_DIALOG, STEP_TIMEOUT).await;
    app.wait_for_text(TOASTS, "WhatsApp confirmed the unlink", STEP_TIMEOUT)
        .await;
    app.wait_for_text(&device_state(id), "Disconnected", STEP_TIMEOUT)
        .await;

    assert!(
        phone.linked_devices().is_empty(),
        "the simulated phone no longer lists the device"
    );
    assert!(
        server
            .sim
            .events()
            .iter()
            .any(|event| matches!(event, SimEvent::Unlinked { jid: unlinked, by: "companion" } if *unlinked == jid.to_string())),
        "the simulator recorded the unlink"
    );
    assert!(
        !keyring_has_entry(&app, id),
        "the keyring holds nothing for the device"
    );
    app.close().await;
    server.endpoints.shutdown().await;
}

async fn code_login_removal_reconnect_delete(theme: &str) {
    let server = LoopbackSimulator::start().await;
    let app = server.app(theme).await;
    let id = &format!("sales-{theme}");
    add_device(&app, id, "Sales", theme, false).await;

    app.click_button(&device_card(id), "Log in with code").await;
    app.type_into(CODE_DIALOG_PHONE, "+1 555 000 2222").await;
    app.click_button(CODE_DIALOG, "Get pairing code").await;
    let code = app.wait_for_text(PAIRING_CODE, "-", STEP_TIMEOUT).await;
    assert_eq!(code.trim().len(), 9, "the code reads XXXX-XXXX: {code:?}");
    app.screenshot(&format!("pairing-code-{theme}")).await;
    let phone = server.sim.phone("15550002222");
    let jid = phone
        .enter_code(code.trim())
        .await
        .expect("the simulated phone accepts the code shown in the window");
    app.wait_until_gone(CODE_DIALOG, LINK_TIMEOUT).await;
    app.wait_for_text(&device_state(id), "Logged in", LINK_TIMEOUT)
        .await;

    // Reconnect: the same credentials log in again (an IK handshake).
    let logins_before = logins(&server.sim, &jid.to_string());
    app.click_button(&device_card(id), "Reconnect").await;
    let deadline = Instant::now() + LINK_TIMEOUT;
    while logins(&server.sim, &jid.to_string()) <= logins_before {
        assert!(Instant::now() < deadline, "reconnect did not log in again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.wait_for_text(&device_state(id), "Logged in", LINK_TIMEOUT)
        .await;

    app.click_button(&device_card(id), "History").await;
    app.wait_for_text(HISTORY_ROWS, "Reconnect", STEP_TIMEOUT)
        .await;
    app.wait_for_text(HISTORY_ROWS, "Code login", STEP_TIMEOUT)
        .await;
    app.screenshot(&format!("history-{theme}")).await;

    // A signed webhook, set in the same dialog: the secret goes to the
    // keyring, the history records the change, the field never shows it.
    app.type_into(WEBHOOK_URL, "https://hooks.example.com/wa")
        .await;
    app.type_into(WEBHOOK_SECRET, "e2e-webhook-secret").await;
    app.click_button(WEBHOOK_SECTION, "Save webhook").await;
    app.wait_for_text(HISTORY_ROWS, "Webhook changed", STEP_TIMEOUT)
        .await;
    assert!(
        keyring_has(&app, "webhook", id),
        "the secret is in the keyring"
    );
    let secret_field = app.element(WEBHOOK_SECRET).await;
    assert_eq!(
        secret_field.prop("value").await.expect("value"),
        Some(String::new()),
        "the secret field is emptied once saved"
    );
    app.screenshot(&format!("webhook-{theme}")).await;
    app.click_button(HISTORY_DIALOG, "Close").await;
    app.wait_until_gone(HISTORY_DIALOG, STEP_TIMEOUT).await;

    // Removed in the phone's Linked devices: the card and a toast say so.
    phone
        .remove_device(&jid)
        .expect("the phone removes the device");
    app.wait_for_text(&device_reason(id), "Removed from the phone", STEP_TIMEOUT)
        .await;
    app.wait_for_text(TOASTS, "Removed from the phone", STEP_TIMEOUT)
        .await;
    app.screenshot(&format!("notice-{theme}")).await;
    assert!(
        !keyring_has_entry(&app, id),
        "a removed device keeps no secrets"
    );

    app.click_button(&device_card(id), "Delete…").await;
    app.wait_for_text(DELETE_DIALOG, "Delete “Sales”?", STEP_TIMEOUT)
        .await;
    app.click_button(DELETE_DIALOG, "Delete device").await;
    app.wait_until_gone(&device_card(id), STEP_TIMEOUT).await;
    app.wait_for_text(EMPTY_LIST, "No devices yet", STEP_TIMEOUT)
        .await;
    assert!(
        !keyring_has(&app, "webhook", id),
        "a deleted device's webhook secret is gone"
    );
    app.close().await;
    server.endpoints.shutdown().await;
}

fn logins(sim: &Simulator, jid: &str) -> usize {
    sim.events()
        .iter()
        .filter(|event| matches!(event, SimEvent::LoggedIn { jid: j, .. } if j == jid))
        .count()
}

/// Without a Secret Service the app cannot store credentials: a login ends
/// in `keyring_unavailable`, which gets the persistent banner.
async fn keyring_banner(theme: &str) {
    let server = LoopbackSimulator::start().await;
    let app = AppSession::start_with(
        Launch::default()
            .arg("--simulator-url")
            .arg(server.endpoints.ws_url.clone())
            .arg("--theme")
            .arg(theme)
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus"),
    )
    .await;
    let id = &format!("no-keyring-{theme}");
    add_device(&app, id, "Kiosk", theme, false).await;
    app.click_button(&device_card(id), "Log in with QR").await;
    app.wait_for_text(KEYRING_BANNER, "keyring is not available", STEP_TIMEOUT)
        .await;
    app.wait_for_text(QR_DIALOG_ERROR, "code keyring_unavailable", STEP_TIMEOUT)
        .await;
    app.click_button(QR_DIALOG, "Close").await;
    app.screenshot(&format!("keyring-banner-{theme}")).await;
    app.close().await;
    server.endpoints.shutdown().await;
}

/// A logout that WhatsApp refuses resets the device all the same and shows
/// the link as a pending unlink; "Try now" ends it once WhatsApp takes it.
async fn refused_logout_becomes_a_pending_unlink(theme: &str) {
    let server = LoopbackSimulator::start().await;
    let app = server.app(theme).await;
    let id = &format!("refused-{theme}");
    add_device(&app, id, "Refused", theme, false).await;
    app.click_button(&device_card(id), "Log in with QR").await;
    let deadline = Instant::now() + STEP_TIMEOUT;
    let payload = loop {
        let png = app.client.screenshot().await.expect("take a screenshot");
        if let Some(payload) = screen_qr::decode(&png) {
            break payload;
        }
        assert!(
            Instant::now() < deadline,
            "no readable QR code on the screen"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let phone = server.sim.phone(&format!(
        "1555000{}",
        if theme == "dark" { 2222 } else { 3333 }
    ));
    let jid = phone
        .scan(&payload)
        .await
        .expect("the phone links the device");
    app.wait_for_text(&device_state(id), "Logged in", LINK_TIMEOUT)
        .await;

    server.sim.set_logout_reply(wa_sim::LogoutReply::Error);
    app.click_button(&device_card(id), "Log out…").await;
    app.wait_for_text(LOGOUT_DIALOG, "keeps retrying the unlink", STEP_TIMEOUT)
        .await;
    app.type_into(LOGOUT_DIALOG_CONFIRMATION, "Refused").await;
    app.click_button(LOGOUT_DIALOG, "Log out device").await;
    app.wait_until_gone(LOGOUT_DIALOG, STEP_TIMEOUT).await;
    app.wait_for_text(&device_state(id), "Disconnected", STEP_TIMEOUT)
        .await;
    app.wait_for_text(PENDING_UNLINKS_PANEL, &jid.to_string(), STEP_TIMEOUT)
        .await;
    app.wait_for_text(PENDING_UNLINKS_PANEL, "Pending unlinks (1)", STEP_TIMEOUT)
        .await;
    app.screenshot(&format!("pending-unlink-{theme}")).await;
    assert_eq!(phone.linked_devices().len(), 1, "still linked at the phone");
    assert!(
        !keyring_has_entry(&app, id),
        "the device's own entry is gone"
    );

    server.sim.set_logout_reply(wa_sim::LogoutReply::Ok);
    app.click_on(&pending_unlink_try_now(&jid.to_string()))
        .await;
    app.wait_until_gone(PENDING_UNLINKS_PANEL, LINK_TIMEOUT)
        .await;
    app.wait_for_text(TOASTS, "WhatsApp confirmed the unlink of", STEP_TIMEOUT)
        .await;
    assert!(phone.linked_devices().is_empty(), "the link is gone");
    app.close().await;
    server.endpoints.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_logout_becomes_a_pending_unlink_light() {
    refused_logout_becomes_a_pending_unlink("light").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_logout_becomes_a_pending_unlink_dark() {
    refused_logout_becomes_a_pending_unlink("dark").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_then_logout_through_the_dialog_light() {
    qr_login_and_logout("light").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_then_logout_through_the_dialog_dark() {
    qr_login_and_logout("dark").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_login_removal_reconnect_and_delete_light() {
    code_login_removal_reconnect_delete("light").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_login_removal_reconnect_and_delete_dark() {
    code_login_removal_reconnect_delete("dark").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_keyring_shows_the_banner_light() {
    keyring_banner("light").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_keyring_shows_the_banner_dark() {
    keyring_banner("dark").await;
}
