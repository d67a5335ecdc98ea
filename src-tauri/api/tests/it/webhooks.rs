//! Per-device webhooks through the API: GOWA's fields and routes, the
//! secret kept in the keyring and never answered, signed deliveries of
//! device events to a receiver on 127.0.0.1, retries, failures in the
//! history, and nothing left behind by a delete.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use wa_device_core::DeviceId;
use wa_device_core::webhooks::delivery::signature;
use wa_test_support::rig::{PHONE, WAIT};

use crate::support::Rig;

const SECRET: &str = "hook-secret-5f1c9e";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    signature: Option<String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inbox {
    received: Vec<Received>,
    /// Statuses to answer, in order; 200 once they run out.
    script: VecDeque<u16>,
}

/// A webhook receiver on 127.0.0.1.
struct Receiver {
    base: String,
    inbox: Arc<Mutex<Inbox>>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn take(
            State(inbox): State<Arc<Mutex<Inbox>>>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let mut inbox = inbox.lock().unwrap();
            inbox.received.push(Received {
                path: uri.path().to_owned(),
                signature: headers
                    .get("x-hub-signature-256")
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: body.to_vec(),
            });
            StatusCode::from_u16(inbox.script.pop_front().unwrap_or(200)).unwrap()
        }
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let app = axum::Router::new()
            .fallback(axum::routing::post(take))
            .with_state(Arc::clone(&inbox));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, inbox }
    }

    fn answer_next(&self, statuses: &[u16]) {
        self.inbox.lock().unwrap().script.extend(statuses);
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.lock().unwrap().received.clone()
    }

    /// Waits for a delivery of `event`.
    async fn event(&self, event: &str) -> Received {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(r) = self
                .received()
                .into_iter()
                .find(|r| r.json()["event"] == event)
            {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {event} delivered: {:?}",
                self.received()
                    .iter()
                    .map(Received::json)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn link(rig: &Rig, id: &str) -> String {
    let payload = rig.qr_login_payload(id).await;
    let jid = rig.sim.phone(PHONE).scan(&payload).await.unwrap();
    rig.wait_for(id, |d| d["state"] == "logged_in").await;
    jid.to_string()
}

/// Create with GOWA's webhook fields, read it back, log in and out: each
/// event arrives once, signed over its exact body, in GOWA's envelope, and
/// the secret never appears in an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_events_reach_the_webhook_signed() {
    let rig = Rig::new().await;
    let receiver = Receiver::start().await;
    let url = format!("{}/hooks/t0ken", receiver.base);
    let created = rig
        .send(rig.request(Method::POST, "/devices").json(&json!({
            "device_id": "hooked",
            "webhook_url": url,
            "webhook_secret": SECRET,
            "webhook_events": "device.logged_in, device.logged_out",
            "webhook_insecure_skip_verify": false,
        })))
        .await;
    assert!(!created.text.contains(SECRET), "{}", created.text);
    let results = created.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(results["id"], "hooked");
    assert_eq!(results["webhook_url"], url);
    assert_eq!(results["webhook_secret"], "********");
    assert_eq!(
        results["webhook_events"],
        "device.logged_in,device.logged_out"
    );

    let read = rig.call(Method::GET, "/devices/hooked/webhook").await;
    assert!(!read.text.contains(SECRET), "{}", read.text);
    assert_eq!(
        read.expect(200, "SUCCESS")["results"],
        json!({
            "device_id": "hooked",
            "webhook_url": url,
            "webhook_secret": "********",
            "webhook_events": "device.logged_in,device.logged_out",
            "webhook_insecure_skip_verify": false,
        })
    );

    let jid = link(&rig, "hooked").await;
    let logged_in = receiver.event("device.logged_in").await;
    assert_eq!(logged_in.path, "/hooks/t0ken");
    assert_eq!(
        logged_in.signature.as_deref(),
        Some(signature(SECRET, &logged_in.body).as_str())
    );
    let body = logged_in.json();
    assert_eq!(body["device_id"], jid);
    assert_eq!(body["session_id"], "hooked");
    assert!(body["timestamp"].is_string(), "{body}");
    assert_eq!(body["payload"]["state"], "logged_in");
    assert_eq!(body["payload"]["jid"], jid);

    rig.call(Method::POST, "/devices/hooked/logout")
        .await
        .expect(200, "SUCCESS");
    let logged_out = receiver.event("device.logged_out").await;
    assert_eq!(
        logged_out.signature.as_deref(),
        Some(signature(SECRET, &logged_out.body).as_str())
    );
    let body = logged_out.json();
    // The link that ended, though the device's own JID is blanked now.
    assert_eq!(body["device_id"], jid);
    assert_eq!(body["payload"]["jid"], Value::Null);
    assert_eq!(body["payload"]["linked_as"], jid);
    // Only the events asked for, each once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| r.json()["event"].clone())
        .collect();
    assert_eq!(
        events,
        vec![json!("device.logged_in"), json!("device.logged_out")]
    );
}

/// PATCH keeps the secret when it comes back masked or absent, removes it
/// with "", and refuses what it cannot honour, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_keeps_removes_and_refuses() {
    let rig = Rig::new().await;
    rig.create("patched").await;
    let patch = |body: Value| {
        rig.send(
            rig.request(Method::PATCH, "/devices/patched/webhook")
                .json(&body),
        )
    };
    let set =
        patch(json!({"webhook_url": "https://hooks.example.com/a", "webhook_secret": SECRET}))
            .await;
    assert!(!set.text.contains(SECRET));
    assert_eq!(
        set.expect(200, "SUCCESS")["results"]["webhook_secret"],
        "********"
    );
    let id = DeviceId::parse("patched").unwrap();
    let entry = rig.service.keyring_names().webhook(&id);
    assert_eq!(
        rig.secrets.get(&entry).unwrap().as_deref(),
        Some(SECRET.as_bytes())
    );

    // A read-modify-write sends the mask back: the secret stays.
    let kept = patch(json!({"webhook_url": "https://hooks.example.com/b", "webhook_secret": "********", "webhook_events": "device.banned"})).await;
    let kept = kept.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(kept["webhook_secret"], "********");
    assert_eq!(kept["webhook_events"], "device.banned");
    assert_eq!(
        rig.secrets.get(&entry).unwrap().as_deref(),
        Some(SECRET.as_bytes())
    );
    // Events absent: kept too.
    let same = patch(json!({"webhook_url": "https://hooks.example.com/b"})).await;
    assert_eq!(
        same.expect(200, "SUCCESS")["results"]["webhook_events"],
        "device.banned"
    );

    for (body, words) in [
        (
            json!({"webhook_url": "ftp://hooks.example.com/"}),
            "http:// or https://",
        ),
        (
            json!({"webhook_url": "https://u:p@hooks.example.com/"}),
            "user name or password",
        ),
        (
            json!({"webhook_url": "https://hooks.example.com/", "webhook_events": "message"}),
            "not an event",
        ),
        (
            json!({"webhook_url": "https://hooks.example.com/", "webhook_insecure_skip_verify": true}),
            "always verifies",
        ),
    ] {
        let refused = patch(body.clone()).await;
        let error = refused.expect(400, "INVALID_SETTING");
        assert!(
            error["message"].as_str().unwrap().contains(words),
            "{body}: {error}"
        );
    }
    let missing = patch(json!({"webhook_secret": "x"})).await;
    missing.expect(400, "BAD_REQUEST");
    let still = rig.call(Method::GET, "/devices/patched/webhook").await;
    assert_eq!(
        still.expect(200, "SUCCESS")["results"]["webhook_url"],
        "https://hooks.example.com/b"
    );

    let unsigned =
        patch(json!({"webhook_url": "https://hooks.example.com/b", "webhook_secret": ""})).await;
    assert_eq!(
        unsigned.expect(200, "SUCCESS")["results"]["webhook_secret"],
        ""
    );
    assert_eq!(rig.secrets.get(&entry).unwrap(), None);

    let cleared = patch(json!({"webhook_url": ""})).await;
    let cleared = cleared.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(cleared["webhook_url"], "");
    assert_eq!(cleared["webhook_events"], "");
    rig.call(Method::GET, "/devices/nobody/webhook")
        .await
        .expect(404, "NOT_FOUND");
    let history = rig.service.history("patched").unwrap();
    assert!(history.iter().all(|e| !e.detail.contains(SECRET)));
    assert_eq!(
        history
            .iter()
            .filter(|e| e.action.as_str() == "webhook_changed")
            .count(),
        5,
        "{history:?}"
    );
}

/// A receiver that fails gets the delivery again until it answers 2xx; one
/// that never does leaves a `webhook_failed` entry naming the URL's origin
/// only (its path may hold a token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_then_recorded() {
    let rig = Rig::new().await;
    let receiver = Receiver::start().await;
    rig.create("flaky").await;
    rig.send(
        rig.request(Method::PATCH, "/devices/flaky/webhook")
            .json(&json!({
                "webhook_url": format!("{}/hooks/t0ken", receiver.base),
                "webhook_events": "device.logged_in",
            })),
    )
    .await
    .expect(200, "SUCCESS");
    receiver.answer_next(&[500, 503]);
    link(&rig, "flaky").await;
    let delivered = receiver.event("device.logged_in").await;
    assert_eq!(delivered.signature, None, "no secret, no signature");
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.received().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bodies: Vec<Vec<u8>> = receiver.received().into_iter().map(|r| r.body).collect();
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "every try sends the same body"
    );

    // The test policy tries 3 times: a receiver that refuses 3 times loses it.
    receiver.answer_next(&[500, 500, 500]);
    rig.call(Method::POST, "/devices/flaky/reconnect").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let failure = loop {
        let history = rig.service.history("flaky").unwrap();
        if let Some(entry) = history
            .iter()
            .find(|e| e.action.as_str() == "webhook_failed")
        {
            break entry.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{history:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        failure.detail,
        format!(
            "device.logged_in to {} failed after 3 tries: the receiver answered HTTP 500",
            receiver.base
        )
    );
    assert!(!failure.detail.contains("t0ken"));
}

/// Deleting a device removes its webhook and the secret's keyring entry: a
/// device created again under the same id starts without either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_leaves_no_webhook_behind() {
    let rig = Rig::new().await;
    let receiver = Receiver::start().await;
    rig.create("gone").await;
    rig.send(
        rig.request(Method::PATCH, "/devices/gone/webhook")
            .json(&json!({
                "webhook_url": format!("{}/h", receiver.base),
                "webhook_secret": SECRET,
            })),
    )
    .await
    .expect(200, "SUCCESS");
    link(&rig, "gone").await;
    receiver.event("device.logged_in").await;
    rig.call(Method::DELETE, "/devices/gone")
        .await
        .expect(200, "SUCCESS");
    let entry = rig
        .service
        .keyring_names()
        .webhook(&DeviceId::parse("gone").unwrap());
    assert_eq!(rig.secrets.get(&entry).unwrap(), None);
    rig.create("gone").await;
    let fresh = rig.call(Method::GET, "/devices/gone/webhook").await;
    assert_eq!(fresh.expect(200, "SUCCESS")["results"]["webhook_url"], "");
}

/// A bad webhook on create creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_webhook_on_create_creates_nothing() {
    let rig = Rig::new().await;
    let refused = rig
        .send(rig.request(Method::POST, "/devices").json(&json!({
            "device_id": "never",
            "webhook_url": "not a url",
            "webhook_secret": SECRET,
        })))
        .await;
    assert!(!refused.text.contains(SECRET));
    refused.expect(400, "INVALID_SETTING");
    rig.call(Method::GET, "/devices/never")
        .await
        .expect(404, "NOT_FOUND");
}
