//! Linking through the API with the simulated phone, then logging out: the
//! exact logout body and the device shape afterwards.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, Rig, USER};
use wa_test_support::qr::qr_payload;
use wa_test_support::rig::{PHONE, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_then_logout_answers_exactly_and_blanks_the_device() {
    let rig = Rig::new().await;
    rig.create("my-device-id").await;

    let login = rig.call(Method::GET, "/devices/my-device-id/login").await;
    let results = login.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "my-device-id");
    let duration = results["qr_duration"].as_u64().unwrap();
    assert!((1..=60).contains(&duration), "{results}");
    let link = results["qr_link"].as_str().unwrap();
    assert_eq!(
        link,
        format!("{}/devices/my-device-id/login/qr.svg", rig.base)
    );
    let data_url = results["qr_data_url"].as_str().unwrap();
    let svg_b64 = data_url.strip_prefix("data:image/svg+xml;base64,").unwrap();
    use base64::Engine;
    let from_data_url = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(svg_b64)
            .unwrap(),
    )
    .unwrap();

    let status = rig.call(Method::GET, "/devices/my-device-id/status").await;
    assert_eq!(
        status.expect(200, "SUCCESS")["results"],
        json!({"device_id": "my-device-id", "is_connected": true, "is_logged_in": false,
               "state": "connected", "detailed_state": "pairing"})
    );
    // A second login while one is pending is refused.
    rig.call(Method::GET, "/devices/my-device-id/login")
        .await
        .expect(409, "BUSY");

    // The phone scans the image the link serves (the current code).
    let svg = rig
        .send(rig.client.get(link).basic_auth(USER, Some(PASSWORD)))
        .await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.headers["content-type"], "image/svg+xml");
    assert_eq!(svg.headers["cache-control"], "no-store");
    let payload = qr_payload(&svg.text);
    assert_eq!(
        payload,
        qr_payload(&from_data_url),
        "same code while it is current"
    );
    let jid = rig.sim.phone(PHONE).scan(&payload).await.unwrap();

    let device = rig
        .wait_for("my-device-id", |d| d["state"] == "logged_in")
        .await;
    assert_eq!(device["phone_number"], PHONE);
    assert_eq!(device["jid"], jid.to_string());
    assert_eq!(device["display_name"], "Simulated Phone");
    assert_eq!(device["detailed_state"], "logged_in");
    assert_eq!(device["has_credentials"], true);
    assert!(device["last_connected_at"].is_string());
    let status = rig.call(Method::GET, "/devices/my-device-id/status").await;
    assert_eq!(
        status.expect(200, "SUCCESS")["results"],
        json!({"device_id": "my-device-id", "is_connected": true, "is_logged_in": true,
               "state": "logged_in", "detailed_state": "logged_in"})
    );
    // The QR image is gone once the login ended.
    rig.call(Method::GET, "/devices/my-device-id/login/qr.svg")
        .await
        .expect(404, "NOT_FOUND");
    // Linked devices are not linked again.
    rig.call(Method::GET, "/devices/my-device-id/login")
        .await
        .expect(409, "BUSY");

    // Reconnect of a linked device.
    let reconnect = rig
        .call(Method::POST, "/devices/my-device-id/reconnect")
        .await;
    let reconnecting = reconnect.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(reconnecting["id"], "my-device-id");
    rig.wait_for("my-device-id", |d| d["state"] == "logged_in")
        .await;

    // The seed's request: `curl -X POST .../devices/my-device-id/logout -u username:password`.
    let logout = rig.call(Method::POST, "/devices/my-device-id/logout").await;
    assert_eq!(logout.status, StatusCode::OK);
    assert_eq!(
        logout.text,
        r#"{"code":"SUCCESS","message":"Device logged out successfully","results":null}"#
    );
    assert_eq!(logout.headers["content-type"], "application/json");
    assert_eq!(logout.headers["x-whatsapp-unlink-confirmed"], "true");
    assert!(
        rig.sim.phone(PHONE).linked_devices().is_empty(),
        "unlinked at WhatsApp"
    );

    let after = rig.call(Method::GET, "/devices/my-device-id").await;
    let after = after.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(after["id"], "my-device-id");
    assert_eq!(after["phone_number"], "");
    assert_eq!(after["display_name"], "");
    assert_eq!(after["jid"], "");
    assert_eq!(after["state"], "disconnected");
    assert_eq!(after["detailed_state"], "disconnected");
    assert_eq!(after["state_reason"], "logged_out");
    assert_eq!(after["has_credentials"], false);
    assert_eq!(after["created_at"], device["created_at"]);

    // A second logout changes nothing and still answers the same body; the
    // header says no unlink was confirmed this time.
    let again = rig.call(Method::POST, "/devices/my-device-id/logout").await;
    assert_eq!(again.text, logout.text);
    assert_eq!(again.headers["x-whatsapp-unlink-confirmed"], "false");

    let history = rig.call(Method::GET, "/devices/my-device-id/history").await;
    let entries = history.expect(200, "SUCCESS")["results"].clone();
    let actions: Vec<_> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        actions.starts_with(&[
            "create/api:alice".to_owned(),
            "login_qr/api:alice".to_owned(),
            "login_qr/api:alice".to_owned(),
        ]),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"logout/api:alice".to_owned()),
        "{actions:?}"
    );
    // No QR payload in the history.
    assert!(!entries.to_string().contains(&payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_login() {
    let rig = Rig::new().await;
    rig.create("coded").await;
    rig.call(Method::POST, "/devices/coded/login/code")
        .await
        .expect(400, "INVALID_PHONE");
    rig.call(Method::POST, "/devices/coded/login/code?phone=0123")
        .await
        .expect(400, "INVALID_PHONE");
    let answer = rig
        .call(
            Method::POST,
            "/devices/coded/login/code?phone=%2B1%20555%20123%204567",
        )
        .await;
    let results = answer.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "coded");
    let code = results["pair_code"].as_str().unwrap();
    assert_eq!(code.len(), 9, "{code}");
    assert_eq!(&code[4..5], "-");
    assert!(
        code.chars()
            .filter(|c| *c != '-')
            .all(|c| c.is_ascii_alphanumeric())
    );
    rig.call(Method::POST, "/devices/coded/login/code?phone=15551234567")
        .await
        .expect(409, "BUSY");

    rig.sim.phone(PHONE).enter_code(code).await.unwrap();
    let device = tokio::time::timeout(WAIT, rig.wait_for("coded", |d| d["state"] == "logged_in"))
        .await
        .unwrap();
    assert_eq!(device["phone_number"], PHONE);
}
