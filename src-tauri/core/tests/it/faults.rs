//! The simulator's faults against a linked device: what the admin sees
//! (state, reason, next retry, ban expiry) and that the service's own retries
//! bring the device back, or stay away after a permanent ending.

use crate::support::key_name;
use std::time::Duration;
use tokio::sync::broadcast;
use wa_device_core::{Actor, Device, DeviceState, HistoryAction, ServiceEvent, StateReason};
use wa_sim::{SimConfig, SimEvent, Simulator};
use wa_test_support::rig::{RETRY, Rig, WAIT};

/// The snapshots of `id` sent as `device_changed`, with the time each was
/// received, until one satisfies `done` (returned last) or `within` passes.
async fn changes_until(
    events: &mut broadcast::Receiver<ServiceEvent>,
    id: &str,
    within: Duration,
    done: impl Fn(&Device) -> bool,
) -> Vec<(chrono::DateTime<chrono::Utc>, Device)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{id}: no matching change within {within:?}: {seen:#?}"))
            .expect("event stream open");
        if let ServiceEvent::DeviceChanged { device } = event
            && device.id.as_str() == id
        {
            let finished = done(&device);
            seen.push((chrono::Utc::now(), device));
            if finished {
                return seen;
            }
        }
    }
}

/// The retries announced in `changes`: `connecting`, reason
/// `connection_lost`, and how far ahead the next attempt was when announced.
fn announced_retries(changes: &[(chrono::DateTime<chrono::Utc>, Device)]) -> Vec<Duration> {
    changes
        .iter()
        .filter_map(|(at, d)| {
            let next = d.next_retry_at?;
            assert_eq!(
                (d.state, d.state_reason, d.has_credentials),
                (DeviceState::Connecting, StateReason::ConnectionLost, true),
                "{d:?}"
            );
            Some((next - *at).to_std().unwrap_or(Duration::ZERO))
        })
        .collect()
}

/// Logins the simulator saw (accepted or refused) for any device.
fn login_attempts(sim: &Simulator) -> usize {
    sim.events()
        .iter()
        .filter(|e| matches!(e, SimEvent::LoggedIn { .. } | SimEvent::LoginRefused { .. }))
        .count()
}

/// After a permanent ending: several retry periods pass without a login.
async fn assert_no_retries(rig: &Rig, id: &str) {
    let before = login_attempts(&rig.sim);
    tokio::time::sleep(RETRY.base * 8).await;
    assert_eq!(login_attempts(&rig.sim), before, "{id} was retried");
    let d = rig.service.get(id).unwrap();
    assert_eq!(d.next_retry_at, None, "{d:?}");
}

/// The changes of `id` until it is `logged_in` again after leaving that
/// state. A `logged_in` change that was already on its way when the test
/// subscribed (the database is written before the event is sent) is not the
/// return the test waits for: the device must first be seen elsewhere.
async fn back_to_logged_in(
    events: &mut broadcast::Receiver<ServiceEvent>,
    id: &str,
    within: Duration,
) -> Vec<(chrono::DateTime<chrono::Utc>, Device)> {
    let left = std::sync::atomic::AtomicBool::new(false);
    changes_until(events, id, within, |d| {
        if d.state != DeviceState::LoggedIn {
            left.store(true, std::sync::atomic::Ordering::Relaxed);
            return false;
        }
        left.load(std::sync::atomic::Ordering::Relaxed)
    })
    .await
}

async fn logged_in_again(
    rig: &Rig,
    events: &mut broadcast::Receiver<ServiceEvent>,
    id: &str,
) -> Vec<(chrono::DateTime<chrono::Utc>, Device)> {
    let changes = back_to_logged_in(events, id, WAIT).await;
    let d = rig.service.get(id).unwrap();
    assert_eq!((d.state, d.next_retry_at), (DeviceState::LoggedIn, None));
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_at_start_up_are_retried_with_growing_delays() {
    let rig = Rig::new().await;
    rig.linked("boot").await;
    let stopped = rig.stop().await;
    stopped.sim.fail_next_logins_with_503(3);
    let rig = stopped.start().await;
    let mut events = rig.service.subscribe();
    let changes = logged_in_again(&rig, &mut events, "boot").await;
    let delays = announced_retries(&changes);
    assert_eq!(delays.len(), 3, "{changes:#?}");
    // 200, 400, 800 ms, each +-20 % (measured at receipt, so a little
    // shorter under load).
    for (attempt, delay) in delays.iter().enumerate() {
        let nominal = RETRY.base * 2u32.pow(attempt as u32);
        assert!(
            *delay >= nominal.mul_f64(0.6) && *delay <= nominal.mul_f64(1.21),
            "retry {attempt}: {delay:?}, nominal {nominal:?}"
        );
    }
    let refused = rig
        .sim
        .events()
        .iter()
        .filter(|e| matches!(e, SimEvent::LoginRefused { reason: 503, .. }))
        .count();
    assert_eq!(refused, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_shows_the_next_retry_then_logs_in() {
    let rig = Rig::new().await;
    rig.linked("drop").await;
    let mut events = rig.service.subscribe();
    rig.sim.drop_connections();
    let changes = logged_in_again(&rig, &mut events, "drop").await;
    let delays = announced_retries(&changes);
    assert!(!delays.is_empty(), "{changes:#?}");
    assert!(delays[0] > Duration::ZERO && delays[0] <= RETRY.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_stream_error_is_retried() {
    let rig = Rig::new().await;
    rig.linked("s503").await;
    let mut events = rig.service.subscribe();
    rig.sim.stream_error_503();
    let changes = logged_in_again(&rig, &mut events, "s503").await;
    assert!(!announced_retries(&changes).is_empty(), "{changes:#?}");
}

/// The client notices a silent server with wall-clock checks (see the
/// simulator's README), so this test takes about half a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_is_detected_and_retried() {
    let rig = Rig::new().await;
    rig.linked("stall").await;
    let mut events = rig.service.subscribe();
    rig.sim.stall();
    let changes = back_to_logged_in(&mut events, "stall", Duration::from_secs(90)).await;
    assert!(!announced_retries(&changes).is_empty(), "{changes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_slows_but_does_not_break_reconnect_and_logout() {
    let rig = Rig::new().await;
    rig.linked("slow").await;
    rig.sim.set_latency(Duration::from_millis(100));
    let mut events = rig.service.subscribe();
    let d = rig.service.reconnect("slow", Actor::Desktop).await.unwrap();
    assert_eq!(
        (d.state, d.state_reason),
        (DeviceState::Connecting, StateReason::ReconnectRequested)
    );
    let changes = logged_in_again(&rig, &mut events, "slow").await;
    assert!(announced_retries(&changes).is_empty(), "{changes:#?}");
    // A logout under latency is bounded by the unlink timeout and wipes
    // locally whatever WhatsApp answers in time.
    let started = tokio::time::Instant::now();
    let outcome = rig.service.logout("slow", Actor::Desktop).await.unwrap();
    assert!(outcome.had_credentials);
    assert!(started.elapsed() < Duration::from_secs(3) + Duration::from_secs(4));
    let d = rig.service.get("slow").unwrap();
    assert_eq!(
        (d.state, d.has_credentials),
        (DeviceState::Disconnected, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_goes_offline_and_is_not_retried() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("rep").await;
    assert!(rig.sim.replace(&jid));
    let d = rig.wait_for_state("rep", DeviceState::Offline).await;
    assert_eq!(d.state_reason, StateReason::Replaced);
    assert!(d.has_credentials);
    assert_no_retries(&rig, "rep").await;
    let last = rig.service.history("rep").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.actor),
        (HistoryAction::Replaced, Actor::Whatsapp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_goes_offline_until_it_expires_then_reconnects_by_itself() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("ban").await;
    let ban = Duration::from_secs(3);
    rig.sim.ban(&jid, 101, ban);
    let d = rig
        .wait_for("ban", "banned", |d| {
            d.state_reason == StateReason::TemporarilyBanned
        })
        .await;
    assert_eq!(d.state, DeviceState::Offline);
    let until = d.ban_expires_at.expect("ban expiry");
    let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
    assert!(left > Duration::ZERO && left <= ban, "{left:?}");
    // No tries while the ban runs.
    assert_no_retries(&rig, "ban").await;
    let last = rig.service.history("ban").unwrap().pop().unwrap();
    assert_eq!(last.action, HistoryAction::TemporarilyBanned);

    // Once it is over the device logs in again, nobody asking, and says
    // why it reconnects meanwhile.
    let mut events = rig.service.subscribe();
    let d = rig.wait_for_state("ban", DeviceState::LoggedIn).await;
    assert!(chrono::Utc::now() >= until, "not before the ban's end");
    assert_eq!(d.ban_expires_at, None);
    let mut reasons = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let ServiceEvent::DeviceChanged { device } = event
            && device.id.as_str() == "ban"
        {
            reasons.push(device.state_reason);
        }
    }
    assert!(reasons.contains(&StateReason::BanEnded), "{reasons:?}");
}

/// A ban still running when the app starts ends later all the same: the
/// device stays offline until then, and reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_running_at_start_up_reconnects_when_it_ends() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("ban").await;
    rig.sim.ban(&jid, 101, Duration::from_secs(3));
    let d = rig
        .wait_for("ban", "banned", |d| {
            d.state_reason == StateReason::TemporarilyBanned
        })
        .await;
    let until = d.ban_expires_at.expect("ban expiry");
    let rig = rig.stop().await.start().await;
    let d = rig.service.get("ban").unwrap();
    assert_eq!(
        (d.state, d.state_reason),
        (DeviceState::Offline, StateReason::TemporarilyBanned)
    );
    let d = rig.wait_for_state("ban", DeviceState::LoggedIn).await;
    assert!(chrono::Utc::now() >= until, "not before the ban's end");
    assert_eq!(d.ban_expires_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_outdated_goes_offline_and_is_not_retried() {
    let rig = Rig::new().await;
    rig.linked("old").await;
    rig.sim.set_client_outdated(true);
    let d = rig
        .wait_for("old", "outdated", |d| d.state == DeviceState::Offline)
        .await;
    assert_eq!(d.state_reason, StateReason::ClientOutdated);
    assert!(d.has_credentials);
    assert_no_retries(&rig, "old").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_is_wiped_and_recorded_as_such() {
    let rig = Rig::with_sim(SimConfig::default()).await;
    let (device, jid) = rig.linked("locked").await;
    let mut events = rig.service.subscribe();
    rig.sim.lock_account(&jid);
    let d = rig
        .wait_for_state("locked", DeviceState::Disconnected)
        .await;
    assert_eq!(d.state_reason, StateReason::AccountLocked);
    assert!(!d.has_credentials && d.jid.is_none() && d.phone_number.is_none());
    // The state changes at step 3 of the wipe; the session files go after.
    rig.wait_for_history("locked", HistoryAction::AccountLocked)
        .await;
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &device.id)).unwrap(),
        None
    );
    assert!(!wa_device_core::files::DataLayout::new(rig.data()).has_session_files(&device.id));
    let last = rig.service.history("locked").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.actor),
        (HistoryAction::AccountLocked, Actor::Whatsapp)
    );
    assert!(
        !rig.service
            .history("locked")
            .unwrap()
            .iter()
            .any(|e| e.action == HistoryAction::RemovedFromPhone)
    );
    let mut noticed = false;
    while let Ok(event) = events.try_recv() {
        noticed |= matches!(
            event,
            ServiceEvent::Notice {
                reason: StateReason::AccountLocked,
                ..
            }
        );
    }
    assert!(noticed);
}
