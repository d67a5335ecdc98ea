//! Device routes, the envelope, error mapping and the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::Rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_get_status_history_and_delete() {
    let rig = Rig::new().await;
    let empty = rig.call(Method::GET, "/devices").await;
    assert_eq!(empty.expect(200, "SUCCESS")["results"], json!([]));

    let device = rig.create("front-desk").await;
    assert_eq!(device["id"], "front-desk");
    assert_eq!(device["phone_number"], "");
    assert_eq!(device["display_name"], "");
    assert_eq!(device["jid"], "");
    assert_eq!(device["state"], "disconnected");
    assert_eq!(device["detailed_state"], "disconnected");
    assert_eq!(device["state_reason"], "created");
    assert_eq!(device["has_credentials"], false);
    let created_at = device["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "{created_at}");
    chrono::DateTime::parse_from_rfc3339(created_at).unwrap();

    // No body at all: a generated id.
    let generated = rig.call(Method::POST, "/devices").await;
    let generated = generated.expect(200, "SUCCESS")["results"].clone();
    assert!(generated["id"].as_str().unwrap().starts_with("device-"));

    let duplicate = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&json!({"device_id": "front-desk"})),
        )
        .await;
    duplicate.expect(409, "ALREADY_EXISTS");
    let bad_label = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&json!({"device_id": "x", "label": "a\nb"})),
        )
        .await;
    bad_label.expect(400, "INVALID_LABEL");
    let bad_id = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&json!({"device_id": "a/b"})),
        )
        .await;
    bad_id.expect(400, "INVALID_ID");
    let bad_json = rig
        .send(
            rig.request(Method::POST, "/devices")
                .header("content-type", "application/json")
                .body("{\"device_id\":"),
        )
        .await;
    bad_json.expect(400, "BAD_REQUEST");
    let wrong_type = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&json!({"device_id": 5})),
        )
        .await;
    wrong_type.expect(400, "BAD_REQUEST");
    // go-whatsapp-web-multidevice's extra fields are ignored.
    let with_webhook = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&json!({"device_id": "hooked", "webhook_url": "http://x"})),
        )
        .await;
    with_webhook.expect(200, "SUCCESS");

    let list = rig.call(Method::GET, "/devices").await;
    let ids: Vec<_> = list.expect(200, "SUCCESS")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&"front-desk".to_owned()) && ids.contains(&"hooked".to_owned()));

    let got = rig.call(Method::GET, "/devices/front-desk").await;
    assert_eq!(got.expect(200, "SUCCESS")["results"], device);

    let status = rig.call(Method::GET, "/devices/front-desk/status").await;
    assert_eq!(
        status.expect(200, "SUCCESS")["results"],
        json!({"device_id": "front-desk", "is_connected": false, "is_logged_in": false,
               "state": "disconnected", "detailed_state": "disconnected", "jid": ""})
    );

    let reconnect = rig
        .call(Method::POST, "/devices/front-desk/reconnect")
        .await;
    reconnect.expect(409, "NO_CREDENTIALS");

    let deleted = rig.call(Method::DELETE, "/devices/front-desk").await;
    assert_eq!(
        deleted.text,
        r#"{"code":"SUCCESS","message":"Device removed","results":null}"#
    );
    assert_eq!(deleted.headers["x-whatsapp-unlink-confirmed"], "false");
    rig.call(Method::GET, "/devices/front-desk")
        .await
        .expect(404, "NOT_FOUND");
    rig.call(Method::DELETE, "/devices/front-desk")
        .await
        .expect(404, "NOT_FOUND");

    // The history outlives the device; CSV on request.
    let history = rig.call(Method::GET, "/devices/front-desk/history").await;
    let actions: Vec<_> = history.expect(200, "SUCCESS")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["create", "reconnect", "delete"]);
    let csv = rig
        .call(Method::GET, "/devices/front-desk/history?format=csv")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(
        csv.text
            .starts_with("time,device_id,action,actor,outcome,detail\r\n")
    );
    assert_eq!(csv.text.lines().count(), 4, "{}", csv.text);
    assert!(csv.text.contains(",api:alice,"));
    rig.call(Method::GET, "/devices/front-desk/history?format=xml")
        .await
        .expect(400, "BAD_REQUEST");
    rig.call(Method::GET, "/devices/never/history")
        .await
        .expect(404, "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_devices_routes_and_methods() {
    let rig = Rig::new().await;
    for (method, path) in [
        (Method::GET, "/devices/ghost"),
        (Method::DELETE, "/devices/ghost"),
        (Method::GET, "/devices/ghost/login"),
        (Method::GET, "/devices/ghost/login/qr.svg"),
        (Method::GET, "/devices/ghost/login/qr.png"),
        (Method::POST, "/devices/ghost/login/code?phone=15551234567"),
        (Method::POST, "/devices/ghost/logout"),
        (Method::POST, "/devices/ghost/reconnect"),
        (Method::GET, "/devices/ghost/status"),
        (Method::GET, "/devices/ghost/history"),
    ] {
        let answer = rig.call(method, path).await;
        let body = answer.expect(404, "NOT_FOUND");
        assert_eq!(body["results"], serde_json::Value::Null);
    }
    rig.call(Method::GET, "/nowhere")
        .await
        .expect(404, "NOT_FOUND");
    rig.call(Method::PUT, "/devices")
        .await
        .expect(405, "METHOD_NOT_ALLOWED");
    rig.call(Method::GET, "/devices/ghost/logout")
        .await
        .expect(405, "METHOD_NOT_ALLOWED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_is_the_generated_one() {
    let rig = Rig::new().await;
    let doc = rig.call(Method::GET, "/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.text, wa_device_api::openapi::document_json());
    let json = doc.json();
    assert!(json["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/devices",
        "/devices/{device_id}",
        "/devices/{device_id}/login",
        "/devices/{device_id}/login/code",
        "/devices/{device_id}/logout",
        "/devices/{device_id}/reconnect",
        "/devices/{device_id}/status",
        "/devices/{device_id}/history",
        "/app/login",
        "/app/login-with-code",
        "/app/logout",
        "/app/reconnect",
        "/app/devices",
        "/app/status",
    ] {
        assert!(json["paths"][path].is_object(), "{path} documented");
    }
    assert_eq!(
        json["components"]["securitySchemes"]["basic_auth"]["scheme"],
        "basic"
    );
}
