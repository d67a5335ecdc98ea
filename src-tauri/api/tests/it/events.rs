//! `GET /events`: the Server-Sent Events stream of device events, read by a
//! real HTTP client while devices are created, linked, logged out and
//! deleted through the API.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wa_sim::SimConfig;
use wa_test_support::qr::png_qr_payload;
use wa_test_support::rig::PHONE;

use crate::support::Rig;

/// One parsed SSE message.
#[derive(Debug)]
struct Message {
    event: String,
    id: String,
    data: Value,
}

/// Reads an event stream, message by message.
struct Reader {
    response: reqwest::Response,
    buffer: String,
    /// Everything received, for the secret scan.
    raw: String,
}

impl Reader {
    async fn open(rig: &Rig, path: &str) -> Reader {
        let response = rig.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Reader {
            response,
            buffer: String::new(),
            raw: String::new(),
        }
    }

    /// The next message (comments skipped), within `within`.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = Message {
                    event: String::new(),
                    id: String::new(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        message.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        message.id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if message.event.is_empty() {
                    continue;
                }
                message.data = serde_json::from_str(&data).unwrap();
                return Some(message);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            let text = String::from_utf8_lossy(&chunk).into_owned();
            self.raw.push_str(&text);
            self.buffer.push_str(&text);
        }
    }

    /// Messages until one satisfies `done`; panics after 20 s.
    async fn until(&mut self, done: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut seen = Vec::new();
        loop {
            let message = self
                .next(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("no awaited event; seen {seen:?}"));
            let stop = done(&message);
            seen.push(message);
            if stop {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_tells_a_devices_life_without_its_secrets() {
    let rig = Rig::new().await;
    let unauthenticated = rig.client.get(rig.url("/events")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    let mut all = Reader::open(&rig, "/events").await;
    let mut only = Reader::open(&rig, "/events?device_id=watched").await;
    rig.create("other").await;
    rig.create("watched").await;

    let login = rig.call(Method::GET, "/devices/watched/login").await;
    let login = login.expect(200, "SUCCESS")["results"].clone();
    let png = rig
        .qr_png(login["qr_link"].as_str().unwrap())
        .await
        .unwrap();
    let payload = png_qr_payload(&png);
    rig.sim.phone(PHONE).scan(&payload).await.unwrap();
    let seen = all
        .until(|m| {
            m.event == "device.changed"
                && m.data["device"]["id"] == "watched"
                && m.data["device"]["state"] == "logged_in"
        })
        .await;
    assert_eq!(seen[0].event, "device.changed");
    assert_eq!(seen[0].data["type"], "device.changed");
    assert_eq!(seen[0].data["device"]["id"], "other");
    assert_eq!(seen[0].id, "1");
    let ids: Vec<u64> = seen.iter().map(|m| m.id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    let logged_in = seen.last().unwrap();
    assert_eq!(logged_in.data["device"]["phone_number"], PHONE);

    rig.call(Method::POST, "/devices/watched/logout")
        .await
        .expect(200, "SUCCESS");
    all.until(|m| {
        m.event == "device.changed"
            && m.data["device"]["id"] == "watched"
            && m.data["device"]["state_reason"] == "logged_out"
    })
    .await;
    rig.call(Method::DELETE, "/devices/watched")
        .await
        .expect(200, "SUCCESS");
    all.until(|m| m.event == "device.removed" && m.data["device_id"] == "watched")
        .await;

    // The filtered stream saw only its device.
    let seen = only.until(|m| m.event == "device.removed").await;
    assert!(
        seen.iter()
            .all(|m| m.data["device"]["id"] == "watched" || m.data["device_id"] == "watched"),
        "{seen:?}"
    );
    // No QR code on either stream.
    let qr_ref = payload.split(',').next().unwrap();
    assert!(!all.raw.contains(qr_ref), "a QR payload reached the stream");
    assert!(
        !only.raw.contains(qr_ref),
        "a QR payload reached the stream"
    );
    assert!(!all.raw.contains("svg"), "a QR image reached the stream");
}

/// A stream is an answer still being sent: the idle bound of keep-alive
/// connections does not end it, and it ends when the server stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_outlives_the_idle_bound_and_ends_with_the_server() {
    let mut rig = Rig::with(SimConfig::default(), |config| {
        config.idle_timeout = Duration::from_secs(1);
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = Reader::open(&rig, "/events").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    rig.create("late").await;
    let message = stream.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(message.event, "device.changed");
    assert_eq!(message.data["device"]["id"], "late");

    let api = rig.api.take().unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(3), api.shutdown()).await;
    assert!(stopped.is_ok(), "the server waited for the open stream");
    assert!(
        stream.next(Duration::from_secs(3)).await.is_none(),
        "the stream ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_device_filter_is_refused() {
    let rig = Rig::new().await;
    let answer = rig.call(Method::GET, "/events?device_id=..%2Fx").await;
    answer.expect(400, "INVALID_ID");
}
