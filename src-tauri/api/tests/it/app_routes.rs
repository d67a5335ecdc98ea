//! go-whatsapp-web-multidevice's `/app/*` routes: the device from the
//! `X-Device-Id` header, `?device_id=` or the only device, and the very
//! answers of the matching `/devices/{device_id}/…` routes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::Rig;
use wa_test_support::qr::png_qr_payload;
use wa_test_support::rig::{PHONE, WAIT};

const HEADER: &str = "X-Device-Id";

/// Asserts go-whatsapp-web-multidevice's answer to a request that names no
/// device while there is not exactly one.
#[track_caller]
fn assert_device_id_required(answer: &crate::support::Answer) {
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(
        answer.json(),
        json!({"code": "DEVICE_ID_REQUIRED",
               "message": "device_id is required via X-Device-Id header or device_id query",
               "results": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_comes_from_the_header_the_query_or_the_only_one() {
    let rig = Rig::new().await;
    // No device at all: none to default to.
    assert_device_id_required(&rig.call(Method::GET, "/app/status").await);

    rig.create("solo").await;
    let solo = rig.call(Method::GET, "/devices/solo/status").await;
    assert_eq!(solo.status, StatusCode::OK);
    let only = rig.call(Method::GET, "/app/status").await;
    assert_eq!(only.status, StatusCode::OK);
    assert_eq!(only.text, solo.text, "the only device");

    rig.create("second").await;
    let second = rig.call(Method::GET, "/devices/second/status").await;
    assert_ne!(second.text, solo.text);
    // Two devices and none named: ambiguous, on every device-scoped route.
    for path in [
        "/app/status",
        "/app/login",
        "/app/login-with-code?phone=15551234567",
        "/app/logout",
        "/app/reconnect",
    ] {
        assert_device_id_required(&rig.call(Method::GET, path).await);
    }
    // A blank header or query names no device either.
    let blank = rig
        .send(
            rig.request(Method::GET, "/app/status?device_id=%20")
                .header(HEADER, "  "),
        )
        .await;
    assert_device_id_required(&blank);

    let by_header = rig
        .send(
            rig.request(Method::GET, "/app/status")
                .header(HEADER, "second"),
        )
        .await;
    assert_eq!(by_header.text, second.text, "header");
    let by_query = rig.call(Method::GET, "/app/status?device_id=solo").await;
    assert_eq!(by_query.text, solo.text, "query");
    let both = rig
        .send(
            rig.request(Method::GET, "/app/status?device_id=solo")
                .header(HEADER, "second"),
        )
        .await;
    assert_eq!(both.text, second.text, "the header wins over the query");
    let blank_header = rig
        .send(
            rig.request(Method::GET, "/app/status?device_id=solo")
                .header(HEADER, ""),
        )
        .await;
    assert_eq!(blank_header.text, solo.text, "a blank header falls back");

    // A named device that does not exist or is no valid id answers what its
    // `/devices/{device_id}/…` route answers.
    let ghost = rig.call(Method::GET, "/devices/ghost/status").await;
    let by_header = rig
        .send(
            rig.request(Method::GET, "/app/status")
                .header(HEADER, "ghost"),
        )
        .await;
    assert_eq!(by_header.status, StatusCode::NOT_FOUND);
    assert_eq!(by_header.text, ghost.text);
    let by_query = rig.call(Method::GET, "/app/status?device_id=ghost").await;
    assert_eq!(by_query.text, ghost.text);
    let bad = rig.call(Method::GET, "/devices/bad%20id/status").await;
    let by_header = rig
        .send(
            rig.request(Method::GET, "/app/status")
                .header(HEADER, "bad id"),
        )
        .await;
    assert_eq!(by_header.status, StatusCode::BAD_REQUEST);
    assert_eq!(by_header.text, bad.text);
    let not_text = rig
        .send(rig.request(Method::GET, "/app/status").header(
            HEADER,
            reqwest::header::HeaderValue::from_bytes(b"\xff").unwrap(),
        ))
        .await;
    not_text.expect(400, "INVALID_ID");

    // The list needs no device named, and is the list of `GET /devices`,
    // each item led by GOWA's `name` and `device` (the id).
    let list = rig.call(Method::GET, "/devices").await;
    let app_list = rig.call(Method::GET, "/app/devices").await;
    assert_eq!(app_list.status, StatusCode::OK);
    let ours = list.json()["results"].as_array().unwrap().clone();
    let theirs = app_list.json()["results"].as_array().unwrap().clone();
    assert_eq!(ours.len(), theirs.len());
    for (mut item, device) in theirs.into_iter().zip(ours) {
        assert_eq!(item["device"], device["id"], "{item}");
        // Never linked: no display name or phone, so the label (or "").
        assert_eq!(item["name"], device["label"], "{item}");
        let item = item.as_object_mut().unwrap();
        item.remove("device");
        item.remove("name");
        assert_eq!(serde_json::Value::Object(item.clone()), device);
    }
    assert_eq!(
        app_list.json()["results"].as_array().unwrap().len(),
        2,
        "{}",
        app_list.text
    );

    // GOWA's methods: GET only; credentials like every route.
    rig.call(Method::POST, "/app/logout")
        .await
        .expect(405, "METHOD_NOT_ALLOWED");
    let anonymous = rig
        .send(
            rig.client
                .get(rig.url("/app/status"))
                .header(HEADER, "solo"),
        )
        .await;
    anonymous.expect(401, "UNAUTHORIZED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_reconnect_and_logout_by_header() {
    let rig = Rig::new().await;
    rig.create("bystander").await;
    rig.create("target").await;
    let on_target = |method: Method, path: &str| rig.request(method, path).header(HEADER, "target");

    let login = rig.send(on_target(Method::GET, "/app/login")).await;
    let results = login.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "target");
    assert_eq!(
        results["qr_link"],
        format!("{}/devices/target/login/qr.png", rig.base)
    );
    // Called again while pending, both routes restart the QR flow.
    let again = rig.send(on_target(Method::GET, "/app/login")).await;
    assert_eq!(
        again.expect(200, "SUCCESS")["results"]["device_id"],
        "target"
    );
    let direct = rig.call(Method::GET, "/devices/target/login").await;
    assert_eq!(
        direct.expect(200, "SUCCESS")["results"]["device_id"],
        "target"
    );

    let png = rig
        .qr_png(results["qr_link"].as_str().unwrap())
        .await
        .unwrap();
    let jid = rig
        .sim
        .phone(PHONE)
        .scan(&png_qr_payload(&png))
        .await
        .unwrap();
    rig.wait_for("target", |d| d["state"] == "logged_in").await;
    let status = rig.send(on_target(Method::GET, "/app/status")).await;
    assert_eq!(
        status.expect(200, "SUCCESS")["results"],
        json!({"device_id": "target", "is_connected": true, "is_logged_in": true,
               "state": "logged_in", "detailed_state": "logged_in", "jid": jid.to_string()})
    );
    let again = rig.send(on_target(Method::GET, "/app/login")).await;
    assert_eq!(
        again.expect(400, "ALREADY_LOGGED_IN")["detail_code"],
        "BUSY"
    );

    let reconnect = rig.send(on_target(Method::GET, "/app/reconnect")).await;
    assert_eq!(reconnect.status, StatusCode::OK);
    assert_eq!(
        reconnect.json(),
        json!({"code": "SUCCESS", "message": "Reconnect requested", "results": null})
    );
    rig.wait_for("target", |d| d["state"] == "logged_in").await;

    // The same logout as `POST /devices/target/logout`: the seed's exact
    // body, unlinked at WhatsApp, credentials and identity gone, recorded.
    let logout = rig.send(on_target(Method::GET, "/app/logout")).await;
    assert_eq!(logout.status, StatusCode::OK);
    assert_eq!(
        logout.text,
        r#"{"code":"SUCCESS","message":"Device logged out successfully","results":null}"#
    );
    assert_eq!(logout.headers["x-whatsapp-unlink-confirmed"], "true");
    assert!(logout.headers.get("x-revocation").is_none());
    assert!(rig.sim.phone(PHONE).linked_devices().is_empty());
    let after = rig.call(Method::GET, "/devices/target").await;
    let after = after.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(after["state"], "disconnected");
    assert_eq!(after["state_reason"], "logged_out");
    assert_eq!(after["has_credentials"], false);
    assert_eq!(after["phone_number"], "");
    assert_eq!(after["jid"], "");
    let history = rig.call(Method::GET, "/devices/target/history").await;
    let history = history.expect(200, "SUCCESS")["results"].to_string();
    assert!(history.contains("\"logout\""), "{history}");
    // The bystander was never touched.
    let bystander = rig.call(Method::GET, "/devices/bystander/history").await;
    let bystander = bystander.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(bystander.as_array().unwrap().len(), 1, "{bystander}");

    // Reconnecting a logged-out device is refused as on the device route.
    let refused = rig.send(on_target(Method::GET, "/app/reconnect")).await;
    let direct = rig.call(Method::POST, "/devices/target/reconnect").await;
    assert_eq!(refused.status, direct.status);
    assert_eq!(refused.text, direct.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_code_on_the_only_device() {
    let rig = Rig::new().await;
    rig.create("coded").await;
    // A bad phone, from the query or the body, is refused as on the device
    // route.
    let refused = rig
        .call(Method::GET, "/app/login-with-code?phone=0123")
        .await;
    assert_eq!(
        refused.expect(400, "VALIDATION_ERROR")["detail_code"],
        "INVALID_PHONE"
    );
    let refused = rig
        .send(
            rig.request(Method::GET, "/app/login-with-code")
                .json(&json!({"phone": "0123"})),
        )
        .await;
    assert_eq!(
        refused.expect(400, "VALIDATION_ERROR")["detail_code"],
        "INVALID_PHONE"
    );
    // go-whatsapp-web-multidevice's clients: `?phone=`, the device by query.
    let answer = rig
        .call(
            Method::GET,
            "/app/login-with-code?device_id=coded&phone=15551234567",
        )
        .await;
    let results = answer.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "coded");
    let code = results["pair_code"].as_str().unwrap();
    rig.sim.phone(PHONE).enter_code(code).await.unwrap();
    let device = tokio::time::timeout(WAIT, rig.wait_for("coded", |d| d["state"] == "logged_in"))
        .await
        .unwrap();
    assert_eq!(device["phone_number"], PHONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_code_phone_from_a_json_body() {
    let rig = Rig::new().await;
    rig.create("bodied").await;
    let answer = rig
        .send(
            rig.request(Method::GET, "/app/login-with-code")
                .header(HEADER, "bodied")
                .json(&json!({"phone": "15551234567"})),
        )
        .await;
    let results = answer.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["device_id"], "bodied");
    rig.sim
        .phone(PHONE)
        .enter_code(results["pair_code"].as_str().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(WAIT, rig.wait_for("bodied", |d| d["state"] == "logged_in"))
        .await
        .unwrap();
}
