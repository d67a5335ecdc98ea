//! Linking through the API with the simulated phone, then logging out: the
//! exact logout body and the device shape afterwards.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{PASSWORD, Rig, USER};
use wa_sim::SimEvent;
use wa_test_support::qr::{png_qr_payload, qr_payload};
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
        format!("{}/devices/my-device-id/login/qr.png", rig.base)
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
               "state": "connected", "detailed_state": "pairing", "jid": ""})
    );
    // A second login while one is pending restarts the QR flow, as
    // go-whatsapp-web-multidevice does: a fresh code from a fresh session,
    // and the first one is no longer good.
    let first_payload = qr_payload(&from_data_url);
    let restarted = rig.call(Method::GET, "/devices/my-device-id/login").await;
    let restarted = restarted.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(restarted["qr_link"], link);
    let data_url = restarted["qr_data_url"].as_str().unwrap();
    let svg_b64 = data_url.strip_prefix("data:image/svg+xml;base64,").unwrap();
    let from_data_url = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(svg_b64)
            .unwrap(),
    )
    .unwrap();
    assert_ne!(qr_payload(&from_data_url), first_payload, "a fresh QR code");
    assert!(
        rig.sim.phone(PHONE).scan(&first_payload).await.is_err(),
        "the first login's code no longer links"
    );

    // The phone scans the image the link serves (the current code): the PNG
    // holds the same code as the SVG beside it and the data URL.
    let png = rig.qr_png(link).await.unwrap();
    let payload = png_qr_payload(&png);
    let svg = rig
        .call(Method::GET, "/devices/my-device-id/login/qr.svg")
        .await;
    assert_eq!(svg.status, StatusCode::OK);
    assert_eq!(svg.headers["content-type"], "image/svg+xml");
    assert_eq!(svg.headers["cache-control"], "no-store");
    assert_eq!(payload, qr_payload(&svg.text), "same code in PNG and SVG");
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
               "state": "logged_in", "detailed_state": "logged_in", "jid": jid.to_string()})
    );
    // The QR images are gone once the login ended.
    rig.call(Method::GET, "/devices/my-device-id/login/qr.svg")
        .await
        .expect(404, "NOT_FOUND");
    rig.call(Method::GET, "/devices/my-device-id/login/qr.png")
        .await
        .expect(404, "NOT_FOUND");
    // Linked devices are not linked again, in go-whatsapp-web-multidevice's
    // words; the core's code stays in `detail_code`.
    let again = rig.call(Method::GET, "/devices/my-device-id/login").await;
    let again = again.expect(400, "ALREADY_LOGGED_IN");
    assert_eq!(again["detail_code"], "BUSY");
    assert_eq!(again["results"], serde_json::Value::Null);
    let again = rig
        .call(
            Method::POST,
            "/devices/my-device-id/login/code?phone=15551234567",
        )
        .await;
    assert_eq!(
        again.expect(400, "ALREADY_LOGGED_IN")["detail_code"],
        "BUSY"
    );

    // Reconnect of a linked device: go-whatsapp-web-multidevice's generic
    // answer, without a payload.
    let reconnect = rig
        .call(Method::POST, "/devices/my-device-id/reconnect")
        .await;
    assert_eq!(reconnect.status, StatusCode::OK);
    assert_eq!(
        reconnect.json(),
        json!({"code": "SUCCESS", "message": "Reconnect requested", "results": null})
    );
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
            "cancel_login/api:alice".to_owned(),
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
    // A missing or bad phone is go-whatsapp-web-multidevice's
    // VALIDATION_ERROR, with this API's finer code beside it.
    for path in [
        "/devices/coded/login/code",
        "/devices/coded/login/code?phone=",
        "/devices/coded/login/code?phone=0123",
    ] {
        let refused = rig.call(Method::POST, path).await;
        let refused = refused.expect(400, "VALIDATION_ERROR");
        assert_eq!(refused["detail_code"], "INVALID_PHONE", "{path}");
    }
    let refused = rig
        .send(
            rig.request(Method::POST, "/devices/coded/login/code")
                .json(&json!({"phone": "0123"})),
        )
        .await;
    assert_eq!(
        refused.expect(400, "VALIDATION_ERROR")["detail_code"],
        "INVALID_PHONE"
    );
    let refused = rig
        .send(
            rig.request(Method::POST, "/devices/coded/login/code")
                .header("content-type", "application/json")
                .body("{\"phone\":"),
        )
        .await;
    refused.expect(400, "BAD_REQUEST");
    // The query wins over the body: a good query phone with a bad body
    // phone starts the login.
    let answer = rig
        .send(
            rig.request(
                Method::POST,
                "/devices/coded/login/code?phone=%2B1%20555%20123%204567",
            )
            .json(&json!({"phone": "0123"})),
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
    // Asked again while the code is pending: a fresh code login on a fresh
    // connection; the first one is closed.
    let again = rig
        .call(Method::POST, "/devices/coded/login/code?phone=15551234567")
        .await;
    let fresh = again.expect(200, "SUCCESS")["results"]["pair_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = rig.sim.events();
    let code_sessions: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SimEvent::PairingCodeRequested { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    assert_eq!(code_sessions.len(), 2, "{events:?}");
    assert_ne!(code_sessions[0], code_sessions[1]);
    assert!(
        events.iter().any(|e| matches!(e,
            SimEvent::SessionClosed { session, .. } if *session == code_sessions[0])),
        "the first code login's connection is closed: {events:?}"
    );

    rig.sim.phone(PHONE).enter_code(&fresh).await.unwrap();
    let device = tokio::time::timeout(WAIT, rig.wait_for("coded", |d| d["state"] == "logged_in"))
        .await
        .unwrap();
    assert_eq!(device["phone_number"], PHONE);
}

/// go-whatsapp-web-multidevice's clients send the phone as a JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_phone_from_a_json_body() {
    let rig = Rig::new().await;
    rig.create("bodied").await;
    let answer = rig
        .send(
            rig.request(Method::POST, "/devices/bodied/login/code")
                .json(&json!({"phone": "15551234567"})),
        )
        .await;
    let results = answer.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "bodied");
    let code = results["pair_code"].as_str().unwrap();
    rig.sim.phone(PHONE).enter_code(code).await.unwrap();
    tokio::time::timeout(WAIT, rig.wait_for("bodied", |d| d["state"] == "logged_in"))
        .await
        .unwrap();
}

/// An unknown device is 404 whatever the phone, and a bad id 400 INVALID_ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_for_an_unknown_device_is_404_before_the_phone() {
    let rig = Rig::new().await;
    for path in [
        "/devices/ghost/login/code",
        "/devices/ghost/login/code?phone=0123",
        "/devices/ghost/login/code?phone=15551234567",
    ] {
        rig.call(Method::POST, path).await.expect(404, "NOT_FOUND");
    }
    let answer = rig
        .send(
            rig.request(Method::POST, "/devices/ghost/login/code")
                .body("not json"),
        )
        .await;
    answer.expect(404, "NOT_FOUND");
    rig.call(Method::POST, "/devices/bad%20id/login/code")
        .await
        .expect(400, "INVALID_ID");
}

/// `qr_link` comes from the listen address, never from the request's Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_link_ignores_a_forged_host_header() {
    use base64::Engine;
    let rig = Rig::new().await;
    rig.create("hosted").await;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let answer = crate::support::raw_http(
        rig.api.as_ref().unwrap().local_addr(),
        &format!(
            "GET /devices/hosted/login HTTP/1.1\r\nHost: evil.example:6666\r\n\
             Authorization: Basic {auth}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("evil.example"), "{answer}");
    let expected = format!("\"qr_link\":\"{}/devices/hosted/login/qr.png\"", rig.base);
    assert!(answer.contains(&expected), "{answer}");
}

/// With a public URL configured, links start with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_link_uses_the_configured_public_url() {
    let rig = Rig::with(wa_sim::SimConfig::default(), |config| {
        config.public_url = Some("https://wa.example.org/admin/".to_owned());
    })
    .await;
    rig.create("proxied").await;
    let login = rig.call(Method::GET, "/devices/proxied/login").await;
    assert_eq!(
        login.expect(200, "SUCCESS")["results"]["qr_link"],
        "https://wa.example.org/admin/devices/proxied/login/qr.png"
    );
}

/// A pairing code asked for while a QR login is pending comes over that
/// login's open connection: no new session, the device turns to a code
/// login, and the code links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_asked_for_during_a_qr_login_comes_on_its_connection() {
    let rig = Rig::new().await;
    rig.create("both").await;
    rig.call(Method::GET, "/devices/both/login")
        .await
        .expect(200, "SUCCESS");
    let answer = rig
        .call(Method::POST, "/devices/both/login/code?phone=15551234567")
        .await;
    let code = answer.expect(200, "SUCCESS")["results"]["pair_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = rig.call(Method::GET, "/devices/both").await;
    let device = device.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(device["detailed_state"], "pairing");
    assert_eq!(device["state_reason"], "code_login_requested");
    rig.sim.phone(PHONE).enter_code(&code).await.unwrap();
    rig.wait_for("both", |d| d["state"] == "logged_in").await;
    let history = rig.call(Method::GET, "/devices/both/history").await;
    let actions: Vec<String> = history.expect(200, "SUCCESS")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !actions.contains(&"cancel_login".to_owned()),
        "the QR login was not ended: {actions:?}"
    );
    // One registration, and the code was asked for on its connection.
    let events = rig.sim.events();
    let registrations: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SimEvent::RegistrationStarted { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    let code_sessions: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            SimEvent::PairingCodeRequested { session, .. } => Some(*session),
            _ => None,
        })
        .collect();
    assert_eq!(registrations.len(), 1, "{events:?}");
    assert_eq!(code_sessions, registrations, "{events:?}");
}

/// WhatsApp refusing a code asked for during a QR login ends only that
/// request: the answer says why, the device shows the QR login again, and
/// the QR code it already showed still links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_code_leaves_the_qr_login_scannable() {
    let rig = Rig::new().await;
    rig.create("refused").await;
    let payload = rig.qr_login_payload("refused").await;
    rig.sim.throttle_pairing_codes(PHONE, true);
    let answer = rig
        .call(
            Method::POST,
            &format!("/devices/refused/login/code?phone={PHONE}"),
        )
        .await;
    let error = answer.expect(502, "WHATSAPP_ERROR");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("limits code requests"), "{message}");
    assert!(
        message.ends_with("the QR code can still be scanned"),
        "{message}"
    );
    let device = rig.call(Method::GET, "/devices/refused").await;
    let device = device.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(device["detailed_state"], "pairing");
    assert_eq!(device["state_reason"], "qr_login_requested");

    let jid = rig.sim.phone(PHONE).scan(&payload).await.unwrap();
    let device = rig.wait_for("refused", |d| d["state"] == "logged_in").await;
    assert_eq!(device["jid"], jid.to_string());
}

/// The phone scanning the QR code while a code is asked for on the same
/// connection, under latency, the request sent at staggered moments of the
/// link (before it, while pair-success is on its way, after it landed): the
/// code request is answered truly (its code, `LOGIN_CANCELLED` when the QR
/// link won the race, or GOWA's `ALREADY_LOGGED_IN` once it was linked), never
/// with an error of WhatsApp's, and the device logs in as one companion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_crossing_a_code_request_links_once_and_answers_truly() {
    const ROUNDS: u64 = 8;
    let rig = std::sync::Arc::new(Rig::new().await);
    rig.sim.set_latency(std::time::Duration::from_millis(40));
    for round in 0..ROUNDS {
        let id = format!("crossed-{round}");
        // A phone takes four companions; each round links its own.
        let phone = format!("1555300{round:04}");
        rig.create(&id).await;
        let payload = rig.qr_login_payload(&id).await;
        let scan = {
            let rig = std::sync::Arc::clone(&rig);
            let phone = phone.clone();
            tokio::spawn(async move { rig.sim.phone(&phone).scan(&payload).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(15 * round)).await;
        let answer = rig
            .call(
                Method::POST,
                &format!("/devices/{id}/login/code?phone={phone}"),
            )
            .await;
        let jid = scan.await.unwrap().unwrap();
        let code = serde_json::from_str::<serde_json::Value>(&answer.text).unwrap()["code"]
            .as_str()
            .unwrap()
            .to_owned();
        eprintln!(
            "round {round}: the code request got {} {code}",
            answer.status
        );
        assert!(
            matches!(
                (answer.status, code.as_str()),
                (StatusCode::OK, "SUCCESS")
                    | (StatusCode::CONFLICT, "LOGIN_CANCELLED")
                    | (StatusCode::BAD_REQUEST, "ALREADY_LOGGED_IN")
            ),
            "round {round}: {} {}",
            answer.status,
            answer.text
        );
        let device = rig.wait_for(&id, |d| d["state"] == "logged_in").await;
        assert_eq!(device["jid"], jid.to_string(), "round {round}");
    }
    let companions = rig.sim.linked_companions();
    assert_eq!(companions.len(), ROUNDS as usize, "{companions:?}");
}
