//! A bounded chaos run: many API clients at once on a few overlapping device
//! ids, mixing every device operation while the simulated phones scan QR
//! codes and type pairing codes, under simulator latency. Afterwards the
//! app and the simulator must agree: every companion the simulator holds is
//! a device of the app or a pending revocation, devices, keyring entries
//! and session files agree, and once every device is logged out and the
//! pending revocations have run, no companion is left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use wa_device_core::files::DataLayout;
use wa_device_core::{DeviceId, HistoryAction, Outcome};

use crate::support::Rig;
use wa_sim::{LogoutReply, SimEvent};
use wa_test_support::qr::png_qr_payload;

const IDS: usize = 6;
const CLIENTS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(30);

fn phone_of(id: &str) -> String {
    let n: u32 = id.trim_start_matches("chaos-").parse().unwrap_or(0);
    format!("15552000{n:03}")
}

/// A small, seedable generator: the run is random, the test needs no crate.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

#[derive(Default)]
struct Tally {
    /// (operation, status, code) -> count
    answers: BTreeMap<(String, u16, String), usize>,
    server_errors: Vec<String>,
}

async fn one_client(rig: Arc<Rig>, tally: Arc<Mutex<Tally>>, seed: u64) {
    let mut dice = Dice(seed | 1);
    let deadline = tokio::time::Instant::now() + RUN_FOR;
    while tokio::time::Instant::now() < deadline {
        let id = format!("chaos-{}", dice.roll(IDS));
        // Logins (with scans and typed codes) weigh most, so that links are
        // being made while everything else happens to them.
        tokio::time::sleep(Duration::from_millis(20 + dice.roll(180) as u64)).await;
        let (operation, answer) = match dice.roll(20) {
            0 | 1 => (
                "create",
                rig.send(
                    rig.request(Method::POST, "/devices")
                        .json(&serde_json::json!({"device_id": id})),
                )
                .await,
            ),
            2..=7 => {
                let answer = rig.call(Method::GET, &format!("/devices/{id}/login")).await;
                if answer.status == 200 && dice.roll(3) > 0 {
                    let link = answer.json()["results"]["qr_link"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(png) = rig.qr_png(&link).await {
                        let _ = rig
                            .sim
                            .phone(&phone_of(&id))
                            .scan(&png_qr_payload(&png))
                            .await;
                    }
                }
                ("login_qr", answer)
            }
            8..=10 => {
                let path = format!("/devices/{id}/login/code?phone={}", phone_of(&id));
                let answer = rig.call(Method::POST, &path).await;
                if answer.status == 200 && dice.roll(2) == 0 {
                    let code = answer.json()["results"]["pair_code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = rig.sim.phone(&phone_of(&id)).enter_code(&code).await;
                }
                ("login_code", answer)
            }
            11 => (
                "logout",
                rig.call(Method::POST, &format!("/devices/{id}/logout"))
                    .await,
            ),
            12 | 13 => (
                "reconnect",
                rig.call(Method::POST, &format!("/devices/{id}/reconnect"))
                    .await,
            ),
            14 => (
                "delete",
                rig.call(Method::DELETE, &format!("/devices/{id}")).await,
            ),
            _ => (
                "get",
                rig.call(Method::GET, &format!("/devices/{id}")).await,
            ),
        };
        let code = serde_json::from_str::<serde_json::Value>(&answer.text)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let mut tally = tally.lock().unwrap();
        if answer.status.is_server_error() {
            tally.server_errors.push(format!(
                "{operation} {id}: {} {}",
                answer.status, answer.text
            ));
        }
        *tally
            .answers
            .entry((operation.to_owned(), answer.status.as_u16(), code))
            .or_default() += 1;
    }
}

/// The app's view: JIDs of devices with credentials, and pending revocations.
fn held_by_app(rig: &Rig) -> (Vec<String>, Vec<String>) {
    let devices = rig
        .service
        .list()
        .unwrap()
        .into_iter()
        .filter(|d| d.has_credentials)
        .filter_map(|d| d.jid)
        .collect();
    let revocations = rig
        .service
        .revocations()
        .unwrap()
        .into_iter()
        .map(|r| r.jid)
        .collect();
    (devices, revocations)
}

fn companions_at_sim(rig: &Rig) -> Vec<String> {
    rig.sim
        .linked_companions()
        .into_iter()
        .map(|(_, d)| d.jid.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_on_six_ids_leave_no_companion_the_app_does_not_hold() {
    let rig = Arc::new(Rig::new().await);
    rig.sim.set_latency(Duration::from_millis(15));
    // WhatsApp refuses logouts for 2 s out of every 5: those unlinks go on
    // as pending revocations, which must complete in between.
    let faults = {
        let sim = rig.sim.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                sim.set_logout_reply(LogoutReply::Error);
                tokio::time::sleep(Duration::from_secs(2)).await;
                sim.set_logout_reply(LogoutReply::Ok);
            }
        })
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let seed = wa_test_support::keyring::rand_u64();
    eprintln!("chaos seed {seed}");
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|n| {
            tokio::spawn(one_client(
                Arc::clone(&rig),
                Arc::clone(&tally),
                seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ))
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    faults.abort();
    rig.sim.clear_faults();

    let tally = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    let requests: usize = tally.answers.values().sum();
    eprintln!("chaos: {requests} requests");
    for ((operation, status, code), count) in &tally.answers {
        eprintln!("  {operation:<10} {status} {code:<20} {count}");
    }
    assert!(
        tally.server_errors.is_empty(),
        "5xx answers: {:#?}",
        tally.server_errors
    );

    // Let links that landed at the end finish logging in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_sim = companions_at_sim(&rig);
    let (devices, revocations) = held_by_app(&rig);
    eprintln!(
        "chaos: {} companions at the simulator, {} linked devices, {} pending revocations",
        at_sim.len(),
        devices.len(),
        revocations.len()
    );
    for jid in &at_sim {
        assert!(
            devices.contains(jid) || revocations.contains(jid),
            "{jid} is linked at the simulator but the app holds it neither as a device nor as a pending revocation; devices {devices:?}, revocations {revocations:?}"
        );
    }

    // Devices, keyring entries and session files agree.
    let layout = DataLayout::new(rig.data_dir());
    for device in rig.service.list().unwrap() {
        if device.state == wa_device_core::DeviceState::Pairing {
            // A pending login's session has made its keys already.
            continue;
        }
        let id = DeviceId::parse(device.id.as_str()).unwrap();
        let has_keys = rig
            .secrets
            .get(&rig.service.keyring_names().device(&id))
            .unwrap()
            .is_some();
        let has_files = layout.has_session_files(&id);
        assert_eq!(
            has_keys, device.has_credentials,
            "keyring entry of {device:?}"
        );
        assert_eq!(
            has_files, device.has_credentials,
            "session files of {device:?}"
        );
    }

    // Every answered login is recorded once, with its outcome.
    let answered_ok = |operation: &str| {
        tally
            .answers
            .iter()
            .filter(|((op, status, _), _)| op == operation && *status == 200)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    let recorded_ok = |action: HistoryAction| {
        (0..IDS)
            .flat_map(|n| {
                rig.service
                    .history(&format!("chaos-{n}"))
                    .unwrap_or_default()
            })
            .filter(|e| e.action == action && e.outcome == Outcome::Ok)
            .count()
    };
    assert_eq!(recorded_ok(HistoryAction::LoginQr), answered_ok("login_qr"));
    assert_eq!(
        recorded_ok(HistoryAction::LoginCode),
        answered_ok("login_code")
    );

    // Log every device out; once the pending revocations have run, nothing
    // is left linked.
    for device in rig.service.list().unwrap() {
        let answer = rig
            .call(Method::POST, &format!("/devices/{}/logout", device.id))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    let started = std::time::Instant::now();
    let pending_at_end = rig.service.revocations().unwrap().len();
    while !rig.service.revocations().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "revocations still pending: {:?}",
            rig.service.revocations()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completed = (0..IDS)
        .flat_map(|n| {
            rig.service
                .history(&format!("chaos-{n}"))
                .unwrap_or_default()
        })
        .filter(|e| e.action == HistoryAction::RevocationCompleted)
        .count();
    let refused = rig
        .sim
        .events()
        .iter()
        .filter(|e| matches!(e, SimEvent::LogoutNotHonoured { .. }))
        .count();
    eprintln!(
        "chaos: {refused} unlinks refused, {completed} pending revocations completed in all; the last {pending_at_end} took {:?}",
        started.elapsed()
    );
    assert_eq!(companions_at_sim(&rig), Vec::<String>::new());
}
