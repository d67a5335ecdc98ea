//! The most important session and fault flows again with the simulator
//! 30 ms away (every frame it sends is delayed), as a real network is: a race
//! that only a near-zero round trip hides, or only a real one exposes,
//! shows here.

use std::time::Duration;
use wa_device_core::{Actor, DeviceState, HistoryAction, NewDevice, StateReason};
use wa_sim::SimEvent;
use wa_test_support::rig::{PHONE, Rig};

const LATENCY: Duration = Duration::from_millis(30);

async fn rig() -> Rig {
    let rig = Rig::new().await;
    rig.sim.set_latency(LATENCY);
    rig
}

fn linked_jids(rig: &Rig) -> Vec<String> {
    rig.sim
        .phone(PHONE)
        .linked_devices()
        .into_iter()
        .map(|d| d.jid.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_pairing_at_30_ms() {
    let rig = rig().await;
    let (device, jid) = rig.linked("desk").await;
    assert_eq!(device.state, DeviceState::LoggedIn);
    assert_eq!(device.jid.as_deref(), Some(jid.to_string().as_str()));
    assert_eq!(linked_jids(&rig), vec![jid.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_at_30_ms() {
    let rig = rig().await;
    rig.service
        .create(
            NewDevice {
                id: Some("code".into()),
                label: "Code".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    let code = rig
        .service
        .login_code("code", "+1 555-123 4567", Actor::Desktop)
        .await
        .unwrap();
    let jid = rig.sim.phone(PHONE).enter_code(&code.code).await.unwrap();
    let device = rig.wait_for_state("code", DeviceState::LoggedIn).await;
    assert_eq!(device.jid.as_deref(), Some(jid.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_unlinks_at_30_ms() {
    let rig = rig().await;
    let (_, jid) = rig.linked("out").await;
    let outcome = rig.service.logout("out", Actor::Desktop).await.unwrap();
    assert!(
        outcome.had_credentials && outcome.unlink_confirmed,
        "{outcome:?}"
    );
    assert!(linked_jids(&rig).is_empty());
    assert!(rig.sim.events().contains(&SimEvent::Unlinked {
        jid: jid.to_string(),
        by: "companion"
    }));
    let after = rig.service.get("out").unwrap();
    assert_eq!(
        (after.state, after.state_reason, after.has_credentials),
        (DeviceState::Disconnected, StateReason::LoggedOut, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_from_the_phone_at_30_ms() {
    let rig = rig().await;
    let (_, jid) = rig.linked("gone").await;
    rig.sim.phone(PHONE).remove_device(&jid).unwrap();
    let after = rig.wait_for_state("gone", DeviceState::Disconnected).await;
    assert_eq!(after.state_reason, StateReason::RemovedFromPhone);
    rig.wait_for_history("gone", HistoryAction::RemovedFromPhone)
        .await;
    assert!(!rig.service.get("gone").unwrap().has_credentials);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_at_start_up_at_30_ms() {
    let rig = rig().await;
    let (_, jid) = rig.linked("a").await;
    let rig = rig.stop().await.start().await;
    rig.wait_for_state("a", DeviceState::LoggedIn).await;
    assert!(rig.sim.online_devices().contains(&jid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_and_dropped_at_30_ms() {
    let rig = rig().await;
    let (_, jid) = rig.linked("r").await;
    let logins = || {
        rig.sim
            .events()
            .iter()
            .filter(|e| matches!(e, SimEvent::LoggedIn { .. }))
            .count()
    };
    let before = logins();
    rig.sim.drop_connections();
    rig.wait_for("r", "logged in again", |d| {
        d.state == DeviceState::LoggedIn && logins() > before
    })
    .await;
    assert!(rig.sim.replace(&jid));
    let d = rig.wait_for_state("r", DeviceState::Offline).await;
    assert_eq!(d.state_reason, StateReason::Replaced);
    assert!(d.has_credentials);
}
