//! Path ids outside the core's rules, oversized bodies, and what a client
//! that sends raw paths sees.

use reqwest::Method;

use crate::support::{Rig, raw_http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_ids_are_validated_by_the_core_rules() {
    let rig = Rig::new().await;
    let long = "x".repeat(65);
    let longest = "y".repeat(64);
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::GET, "/login"),
        (Method::GET, "/login/qr.svg"),
        (Method::POST, "/login/code?phone=15551234567"),
        (Method::POST, "/logout"),
        (Method::POST, "/reconnect"),
        (Method::GET, "/status"),
        (Method::GET, "/history"),
    ] {
        // `..%2Fetc` reaches the server as one segment and decodes to `../etc`.
        for bad in [
            "..%2Fetc",
            "..%2F",
            long.as_str(),
            "a%20b",
            "t%C3%A9l",
            "a%00b",
        ] {
            let answer = rig
                .call(method.clone(), &format!("/devices/{bad}{suffix}"))
                .await;
            assert_eq!(
                answer.status.as_u16(),
                400,
                "{bad}{suffix}: {}",
                answer.text
            );
            let body = answer.expect(400, "INVALID_ID");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("invalid device id")
            );
        }
        // `%2E%2E` is a dot segment to the client (WHATWG URL rules): it
        // never reaches the server as an id; the shortened path matches no
        // device route.
        let dots = rig
            .call(method.clone(), &format!("/devices/%2E%2E{suffix}"))
            .await;
        assert!(matches!(dots.status.as_u16(), 404 | 405), "{}", dots.text);
        // 64 characters is a valid id: not found, not invalid.
        rig.call(method.clone(), &format!("/devices/{longest}{suffix}"))
            .await
            .expect(404, "NOT_FOUND");
    }
    // Nothing was created or touched.
    assert!(rig.service.list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_dot_segments_never_reach_a_device() {
    let rig = Rig::new().await;
    rig.create("victim").await;
    let addr = rig.api.as_ref().unwrap().local_addr();
    let auth = "Authorization: Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5"; // alice
    // A client that does not normalize: `..` is its own segment, so no
    // device route matches it.
    for path in [
        "/devices/../devices/victim/logout",
        "/devices/victim/../victim/logout",
        "/devices/%2e%2e/logout",
        "/devices/../logout",
    ] {
        let answer = raw_http(
            addr,
            &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let status_line = answer.lines().next().unwrap();
        assert!(
            status_line.contains(" 404 ") || status_line.contains(" 400 "),
            "{path}: {answer}"
        );
    }
    let victim = rig.call(Method::GET, "/devices/victim/history").await;
    let entries = victim.expect(200, "SUCCESS")["results"].clone();
    assert_eq!(
        entries.as_array().unwrap().len(),
        1,
        "only the create: {entries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_64_kib_are_refused() {
    let rig = Rig::new().await;
    let label = "l".repeat(64 * 1024);
    let big = format!("{{\"device_id\":\"big\",\"label\":\"{label}\"}}");
    assert!(big.len() > 64 * 1024);
    let answer = rig
        .send(
            rig.request(Method::POST, "/devices")
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    answer.expect(413, "PAYLOAD_TOO_LARGE");
    // Also without a Content-Length (chunked), and on a route that reads no body.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(4096)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let chunked = rig
        .send(
            rig.request(Method::POST, "/devices")
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(stream)),
        )
        .await;
    chunked.expect(413, "PAYLOAD_TOO_LARGE");
    rig.create("d").await;
    let on_logout = rig
        .send(
            rig.request(Method::POST, "/devices/d/logout")
                .body(big.clone()),
        )
        .await;
    on_logout.expect(413, "PAYLOAD_TOO_LARGE");
    // Refused before authentication too.
    let anonymous = rig
        .send(rig.client.post(rig.url("/devices")).body(big))
        .await;
    anonymous.expect(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(rig.service.list().unwrap().len(), 1, "only `d`");
    let history = rig.call(Method::GET, "/devices/d/history").await;
    assert_eq!(
        history.expect(200, "SUCCESS")["results"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the refused logout did not run"
    );
    // Just under the limit is fine (the label is then refused by the core).
    let label = "l".repeat(60 * 1024);
    let under = rig
        .send(
            rig.request(Method::POST, "/devices")
                .json(&serde_json::json!({"device_id": "under", "label": label})),
        )
        .await;
    under.expect(400, "INVALID_LABEL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_timeout_get_504_and_the_server_stays_usable() {
    let rig = Rig::with(wa_sim::SimConfig::default(), |config| {
        config.request_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    rig.create("slow").await;
    // Every simulator frame is delayed: the QR login takes longer than the
    // API's bound (the error body is checked, never the QR).
    rig.sim.set_latency(std::time::Duration::from_secs(2));
    let answer = rig.call(Method::GET, "/devices/slow/login").await;
    assert_eq!(answer.status.as_u16(), 504);
    assert_eq!(answer.json()["code"], "TIMEOUT");
    rig.sim.clear_faults();
    rig.call(Method::GET, "/devices")
        .await
        .expect(200, "SUCCESS");
}

/// Bad bodies and query strings are answered in words: no parser
/// positions (`line 1 column 15`), nothing of the raw input beyond what the
/// client sent as a parameter value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_and_queries_are_told_in_words_without_positions() {
    let rig = Rig::new().await;
    rig.create("worded").await;
    let cases = [
        (
            Method::POST,
            "/devices",
            "{\"device_id\": ",
            "the body is not valid JSON",
        ),
        (
            Method::POST,
            "/devices",
            "{\"device_id\": 5}",
            "the JSON body does not have the expected fields and types",
        ),
        (
            Method::POST,
            "/devices/worded/login/code",
            "{\"phone\": \"49",
            "the body is not valid JSON",
        ),
        (
            Method::POST,
            "/devices/worded/login/code",
            "{\"phone\": 491512345678}",
            "the JSON body does not have the expected fields and types",
        ),
    ];
    for (method, path, body, words) in cases {
        let answer = rig
            .send(
                rig.request(method, path)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        let answer = answer.expect(400, "BAD_REQUEST");
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with(words), "{path} {body}: {message}");
        assert!(message.contains("expected {"), "{message}");
        assert!(!message.contains("line"), "{message}");
        assert!(!message.contains("column"), "{message}");
    }
    let answer = rig
        .call(Method::GET, "/devices/worded/history?format=xml")
        .await;
    let message = answer.expect(400, "BAD_REQUEST")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("invalid query string: "), "{message}");
    assert!(message.contains("csv"), "names what it expected: {message}");
    assert!(!message.contains("Failed to deserialize"), "{message}");
}
