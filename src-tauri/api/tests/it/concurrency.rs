//! Many clients at once: nothing lost, nothing answered twice.

use std::sync::Arc;

use reqwest::Method;

use crate::support::Rig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_logouts_and_listings_lose_nothing() {
    let rig = Arc::new(Rig::new().await);
    // Three linked devices (one phone each) and 22 that never were.
    let mut linked = Vec::new();
    for n in 0..3 {
        let id = format!("linked-{n}");
        rig.linked(&id, &format!("1555000000{n}")).await;
        linked.push(id);
    }
    for n in 0..22 {
        rig.create(&format!("plain-{n:02}")).await;
    }
    let ids: Vec<String> = rig
        .service
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(ids.len(), 25);

    // 25 logouts (one per device) and 25 listings, all at once.
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().cycle().take(50).enumerate() {
        let rig = Arc::clone(&rig);
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            if n < 25 {
                let answer = rig
                    .call(Method::POST, &format!("/devices/{id}/logout"))
                    .await;
                (format!("logout {id}"), answer.status.as_u16(), answer.text)
            } else {
                let answer = rig.call(Method::GET, "/devices").await;
                let count = answer.json()["results"].as_array().map(Vec::len);
                (
                    format!("list {count:?}"),
                    answer.status.as_u16(),
                    answer.text,
                )
            }
        }));
    }
    for task in tasks {
        let (what, status, text) = task.await.unwrap();
        assert_eq!(status, 200, "{what}: {text}");
        if what.starts_with("logout") {
            assert_eq!(
                text,
                r#"{"code":"SUCCESS","message":"Device logged out successfully","results":null}"#
            );
        } else {
            assert_eq!(what, "list Some(25)", "{text}");
        }
    }
    // Every device is still there, logged out, each with exactly one logout
    // recorded; every linked one is unlinked at WhatsApp.
    for id in &ids {
        let device = rig.call(Method::GET, &format!("/devices/{id}")).await;
        let device = device.expect(200, "SUCCESS")["results"].clone();
        assert_eq!(device["state"], "disconnected", "{device}");
        assert_eq!(device["jid"], "");
        let history = rig
            .call(Method::GET, &format!("/devices/{id}/history"))
            .await;
        let logouts = history.expect(200, "SUCCESS")["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "logout" && e["actor"] == "api:alice")
            .count();
        assert_eq!(logouts, 1, "{id}");
    }
    for n in 0..3 {
        assert!(
            rig.sim
                .phone(&format!("1555000000{n}"))
                .linked_devices()
                .is_empty()
        );
    }
}
