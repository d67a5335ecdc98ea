//! Every link the app makes, it can end: damaged session databases keep their
//! keys, a delete keeps per-device serialization, a scan that lands while a
//! login ends is recorded and unlinked, cancelled logins answer so, and
//! crumbs of an interrupted login go with a delete.

use crate::support::{key_name, revocation_key};
use std::sync::Arc;
use std::time::Duration;
use wa_device_core::files::DataLayout;
use wa_device_core::session::store::{KEYS_WOULD_BE_REPLACED, SessionStore, secret_name};
use wa_device_core::{
    Actor, DeviceId, DeviceService, DeviceState, ErrorCode, HistoryAction, NewDevice, Outcome,
    SecretStore, ServiceConfig, StateReason,
};
use wa_sim::{LogoutReply, SimEvent};
use wa_test_support::keyring::test_keyring;
use wa_test_support::offline::offline_service;
use wa_test_support::qr::qr_payload;
use wa_test_support::rig::{PHONE, Rig, WAIT};
use wacore::store::traits::DeviceStore;

fn new_device(id: &str) -> NewDevice {
    NewDevice {
        id: Some(id.to_owned()),
        label: id.to_owned(),
    }
}

/// Every companion the simulator holds linked for `phone`.
fn linked_at_sim(rig: &Rig, phone: &str) -> Vec<String> {
    rig.sim
        .phone(phone)
        .linked_devices()
        .into_iter()
        .map(|d| d.jid.to_string())
        .collect()
}

/// Truncates every file of `id`'s session store to 0 bytes (a disk fault,
/// a bad backup restore).
fn empty_session_files(data: &std::path::Path, id: &str) {
    let layout = DataLayout::new(data.to_path_buf());
    for file in layout.session_files(&DeviceId::parse(id).unwrap()) {
        if file.exists() {
            std::fs::write(&file, b"").unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_session_database_keeps_the_keys_and_the_logout_still_unlinks() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("t").await;
    let name = key_name(&rig.data(), &DeviceId::parse("t").unwrap());
    let keys = rig.secrets.get(&name).unwrap().expect("keyring entry");
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    empty_session_files(&stopped.dir.path().join("data"), "t");
    let rig = stopped.start().await;

    let d = rig
        .wait_for("t", "session_damaged", |d| {
            d.state_reason == StateReason::SessionDamaged
        })
        .await;
    assert_eq!((d.state, d.has_credentials), (DeviceState::Offline, true));
    assert_eq!(d.jid.as_deref(), Some(jid.to_string().as_str()));
    assert_eq!(
        rig.secrets.get(&name).unwrap().as_deref(),
        Some(keys.as_slice()),
        "the keys must survive the damaged store"
    );
    // Not retried: a damaged store does not heal by itself.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        rig.service.get("t").unwrap().state_reason,
        StateReason::SessionDamaged
    );
    let err = rig
        .service
        .reconnect("t", Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::SessionDamaged);
    assert_eq!(
        rig.secrets.get(&name).unwrap().as_deref(),
        Some(keys.as_slice())
    );

    // The logout rebuilds a client from the keys and ends the link.
    let outcome = rig.service.logout("t", Actor::Desktop).await.unwrap();
    assert!(outcome.unlink_confirmed, "{outcome:?}");
    assert!(linked_at_sim(&rig, PHONE).is_empty());
    let d = rig.service.get("t").unwrap();
    assert_eq!((d.state, d.jid), (DeviceState::Disconnected, None));
    assert_eq!(rig.secrets.get(&name).unwrap(), None);
    let layout = DataLayout::new(rig.data());
    assert!(!layout.has_session_files(&DeviceId::parse("t").unwrap()));
    let actions: Vec<_> = rig
        .service
        .history("t")
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert!(
        actions.contains(&HistoryAction::SessionDamaged),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_session_store_never_saves_a_fresh_device_over_existing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keyring: Arc<dyn SecretStore> = Arc::new(test_keyring());
    let id = DeviceId::parse("keys").unwrap();
    let path = dir.path().join("keys.sqlite3");
    let store = SessionStore::open(&path, Arc::clone(&keyring), &id).unwrap();
    store.create().await.unwrap();
    store.close();
    let name = secret_name(&id);
    let keys = keyring.get(&name).unwrap().expect("saved");

    std::fs::write(&path, b"").unwrap();
    let store = SessionStore::open(&path, Arc::clone(&keyring), &id).unwrap();
    assert!(!store.has_device().unwrap());
    let err = store.create().await.unwrap_err();
    assert!(err.to_string().contains(KEYS_WOULD_BE_REPLACED), "{err}");
    assert_eq!(keyring.get(&name).unwrap(), Some(keys));
    store.close();
    keyring.delete(&name).unwrap();
}

#[tokio::test]
async fn a_session_file_that_is_not_a_database_is_damage_not_a_new_device() {
    let dir = tempfile::tempdir().unwrap();
    let keyring: Arc<dyn SecretStore> = Arc::new(test_keyring());
    let id = DeviceId::parse("garbage").unwrap();
    let path = dir.path().join("garbage.sqlite3");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SessionStore::open(&path, keyring, &id)
        .err()
        .expect("refused");
    assert_eq!(err.code, ErrorCode::SessionDamaged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_behind_a_delete_act_on_the_new_device_only() {
    let rig = Rig::new().await;
    rig.linked("x").await;
    rig.sim.set_latency(Duration::from_millis(400));
    let service = rig.service.clone();
    let delete = tokio::spawn(async move { service.delete("x", Actor::Desktop).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let service = rig.service.clone();
    let create = tokio::spawn(async move { service.create(new_device("x"), Actor::Desktop).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let service = rig.service.clone();
    let login = tokio::spawn(async move { service.login_qr("x", Actor::Desktop).await });

    let deleted = delete.await.unwrap().unwrap();
    assert!(deleted.had_credentials);
    create.await.unwrap().expect("created after the delete");
    let qr = login.await.unwrap();
    // The login ran after the create, on the new device, alone.
    let qr = qr.expect("a QR code for the new device");
    assert_eq!(qr.device_id.as_str(), "x");
    assert_eq!(rig.service.get("x").unwrap().state, DeviceState::Pairing);
    rig.sim.set_latency(Duration::ZERO);
    rig.service.cancel_login("x", Actor::Desktop).await.unwrap();
    assert_eq!(
        rig.service.get("x").unwrap().state,
        DeviceState::Disconnected
    );
    // No client runs that nothing supervises, and the old link is gone.
    rig.sim
        .wait_until(WAIT, "every connection closed", |sim| {
            sim.connection_count() == 0
        })
        .await
        .expect("every connection closed");
    assert!(linked_at_sim(&rig, PHONE).is_empty());
}

/// The phone scans just as the admin cancels: whichever wins, no companion
/// stays linked at the simulator that the app does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_that_lands_while_the_login_is_cancelled_is_never_forgotten() {
    let rig = Rig::new().await;
    for trial in 0..8u64 {
        let id = format!("race-{trial}");
        let phone = format!("1555000{trial:04}");
        rig.service
            .create(new_device(&id), Actor::Desktop)
            .await
            .unwrap();
        let qr = rig.service.login_qr(&id, Actor::Desktop).await.unwrap();
        let sim = rig.sim.clone();
        let payload = qr_payload(&qr.svg);
        let scanning = phone.clone();
        let scan = tokio::spawn(async move { sim.phone(&scanning).scan(&payload).await });
        tokio::time::sleep(Duration::from_millis(trial * 3)).await;
        rig.service.cancel_login(&id, Actor::Desktop).await.unwrap();
        let _ = scan.await.unwrap();
        // Let a link the device holds finish logging in.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = rig.service.get(&id).unwrap();
        let linked = linked_at_sim(&rig, &phone);
        let pending: Vec<String> = rig
            .service
            .revocations()
            .unwrap()
            .into_iter()
            .map(|r| r.jid)
            .collect();
        for jid in &linked {
            assert!(
                d.jid.as_ref() == Some(jid) || pending.contains(jid),
                "trial {trial}: {jid} is linked but the app holds it neither as the device nor as a pending revocation: {d:?}"
            );
        }
        if d.has_credentials {
            rig.service.logout(&id, Actor::Desktop).await.unwrap();
        }
        // A late link whose first unlink raced its own signature ends as a
        // pending revocation: once those have run, nothing is left.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !rig.service.revocations().unwrap().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "trial {trial}: revocations stay pending"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            linked_at_sim(&rig, &phone).is_empty(),
            "trial {trial}: a companion the app does not hold: {d:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_ended_by_a_cancel_answers_login_cancelled_and_is_recorded_once() {
    let rig = Rig::new().await;
    rig.service
        .create(new_device("c"), Actor::Desktop)
        .await
        .unwrap();
    rig.sim.set_latency(Duration::from_millis(300));
    let service = rig.service.clone();
    let login = tokio::spawn(async move { service.login_qr("c", Actor::Desktop).await });
    rig.wait_for_state("c", DeviceState::Pairing).await;
    rig.service.cancel_login("c", Actor::Desktop).await.unwrap();
    let err = login.await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::LoginCancelled, "{err:?}");
    let logins: Vec<_> = rig
        .service
        .history("c")
        .unwrap()
        .into_iter()
        .filter(|e| e.action == HistoryAction::LoginQr)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(logins, vec![Outcome::Cancelled]);
}

#[tokio::test]
async fn a_delete_removes_the_crumbs_of_a_login_a_crash_interrupted() {
    let (dir, secrets, service) = offline_service().await;
    service
        .create(new_device("crumbs"), Actor::Desktop)
        .await
        .unwrap();
    let id = DeviceId::parse("crumbs").unwrap();
    let layout = DataLayout::new(dir.path().join("data"));
    // What a kill in the first milliseconds of a login could leave.
    let key = key_name(&dir.path().join("data"), &id);
    secrets.set(&key, b"{}").unwrap();
    std::fs::write(layout.session_db(&id), b"").unwrap();
    service.delete("crumbs", Actor::Desktop).await.unwrap();
    assert_eq!(secrets.get(&key).unwrap(), None);
    assert!(!layout.has_session_files(&id));
}

#[tokio::test]
async fn the_folder_lock_holds_when_the_lock_file_is_unlinked() {
    let (dir, secrets, _service) = offline_service().await;
    let data = dir.path().join("data");
    let _ = std::fs::remove_file(data.join("lock"));
    let mut config = ServiceConfig::new(&data, secrets);
    config.restore_on_open = false;
    let err = DeviceService::open(config).await.err().expect("refused");
    assert_eq!(err.code, ErrorCode::Busy);
}

/// Links `id`, makes WhatsApp fail its logout's unlink with `fault`, and
/// logs it out: the device is reset, the link's keys wait in a pending
/// revocation. Returns the link's JID.
async fn logout_left_pending(rig: &Rig, id: &str, fault: impl FnOnce(&Rig)) -> String {
    let (_, jid) = rig.linked(id).await;
    fault(rig);
    let outcome = rig.service.logout(id, Actor::Desktop).await.unwrap();
    assert!(!outcome.unlink_confirmed, "{outcome:?}");
    assert!(outcome.revocation_pending, "{outcome:?}");
    let d = rig.service.get(id).unwrap();
    assert_eq!(
        (d.state, d.phone_number, d.display_name, d.jid),
        (DeviceState::Disconnected, None, None, None)
    );
    let device_id = DeviceId::parse(id).unwrap();
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &device_id)).unwrap(),
        None
    );
    assert!(!DataLayout::new(rig.data()).has_session_files(&device_id));
    let jid = jid.to_string();
    assert!(
        rig.secrets
            .get(&revocation_key(&rig.data(), &jid))
            .unwrap()
            .is_some(),
        "the link's keys are kept"
    );
    assert_eq!(
        rig.service
            .revocations()
            .unwrap()
            .iter()
            .map(|r| r.jid.clone())
            .collect::<Vec<_>>(),
        vec![jid.clone()]
    );
    jid
}

/// Waits until no revocation is pending; checks that the link is gone at the
/// simulator and its keys from the keyring; returns how long it took.
async fn revocations_complete(rig: &Rig, jid: &str, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    while !rig.service.revocations().unwrap().is_empty() {
        assert!(
            started.elapsed() < within,
            "still pending: {:?}",
            rig.service.revocations()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !linked_at_sim(rig, PHONE).contains(&jid.to_owned()),
        "{jid} is still linked"
    );
    assert_eq!(
        rig.secrets.get(&revocation_key(&rig.data(), jid)).unwrap(),
        None
    );
    started.elapsed()
}

fn actions_of(rig: &Rig, id: &str) -> Vec<(HistoryAction, Outcome)> {
    rig.service
        .history(id)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.outcome))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_unlink_is_retried_until_whatsapp_confirms_it() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "refused", |rig| {
        rig.sim.set_logout_reply(LogoutReply::Error)
    })
    .await;
    // Refused again and again: it stays pending, with its attempts counted.
    rig.sim
        .wait_until(WAIT, "a retry refused", |sim| {
            sim.events()
                .iter()
                .filter(|e| matches!(e, SimEvent::LogoutNotHonoured { .. }))
                .count()
                >= 3
        })
        .await
        .unwrap();
    let pending = &rig.service.revocations().unwrap()[0];
    assert!(pending.attempts >= 2, "{pending:?}");
    assert!(linked_at_sim(&rig, PHONE).contains(&jid));
    rig.sim.clear_faults();
    let took = revocations_complete(&rig, &jid, WAIT).await;
    eprintln!("refused unlink: completed {took:?} after WhatsApp took it again");
    let actions = actions_of(&rig, "refused");
    assert!(actions.contains(&(HistoryAction::RevocationPending, Outcome::Ok)));
    assert!(actions.contains(&(HistoryAction::RevocationAttempt, Outcome::Failed)));
    assert_eq!(
        actions.last(),
        Some(&(HistoryAction::RevocationCompleted, Outcome::Ok))
    );
    // The device links again as usual.
    rig.service
        .login_qr("refused", Actor::Desktop)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_unlink_completes_by_itself_once_whatsapp_answers() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "silent", |rig| {
        rig.sim.set_logout_reply(LogoutReply::NoAnswer)
    })
    .await;
    rig.sim.clear_faults();
    let took = revocations_complete(&rig, &jid, WAIT).await;
    eprintln!("unanswered unlink: completed {took:?} after WhatsApp answered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_until_it_is_back() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "away", |rig| rig.sim.set_unreachable(true)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.service.revocations().unwrap().len(), 1);
    assert!(linked_at_sim(&rig, PHONE).contains(&jid));
    rig.sim.set_unreachable(false);
    let took = revocations_complete(&rig, &jid, WAIT).await;
    eprintln!("unreachable server: completed {took:?} after it was back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlink_honoured_after_the_client_gave_up_completes_on_the_next_try() {
    let rig = Rig::new().await;
    // Longer than the tests' 3 s unlink timeout.
    let jid = logout_left_pending(&rig, "late", |rig| {
        rig.sim
            .set_logout_reply(LogoutReply::HonouredLate { ms: 3_500 })
    })
    .await;
    let took = revocations_complete(&rig, &jid, WAIT).await;
    eprintln!("late unlink: completed {took:?} after the logout answered");
    let last = rig.service.history("late").unwrap().pop().unwrap();
    assert_eq!(last.action, HistoryAction::RevocationCompleted);
    assert!(last.detail.contains("unlinked already"), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_revocation_survives_a_restart_and_completes_after_it() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "restart", |rig| {
        rig.sim.set_logout_reply(LogoutReply::Error)
    })
    .await;
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    stopped.sim.clear_faults();
    let rig = stopped.start().await;
    let took = revocations_complete(&rig, &jid, WAIT).await;
    eprintln!("restart: completed {took:?} after the start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_a_pending_revocation_deletes_its_keys_and_is_recorded() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "forget", |rig| {
        rig.sim.set_logout_reply(LogoutReply::Error)
    })
    .await;
    rig.service
        .forget_revocation(&jid, Actor::Desktop)
        .await
        .unwrap();
    assert!(rig.service.revocations().unwrap().is_empty());
    assert_eq!(
        rig.secrets.get(&revocation_key(&rig.data(), &jid)).unwrap(),
        None
    );
    // Not unlinked: the admin chose so.
    assert!(linked_at_sim(&rig, PHONE).contains(&jid));
    let last = rig.service.history("forget").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.actor, last.outcome),
        (
            HistoryAction::RevocationForgotten,
            Actor::Desktop,
            Outcome::Ok
        )
    );
    let err = rig
        .service
        .forget_revocation(&jid, Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_now_runs_a_revocation_at_once() {
    let rig = Rig::new().await;
    let jid = logout_left_pending(&rig, "now", |rig| {
        rig.sim.set_logout_reply(LogoutReply::Error)
    })
    .await;
    let tried = rig
        .service
        .retry_revocation(&jid, Actor::Desktop)
        .await
        .unwrap();
    assert!(!tried.completed, "{tried:?}");
    rig.sim.clear_faults();
    let tried = rig.service.retry_revocation(&jid, Actor::Desktop).await;
    // The background retry may have won the race: then it is gone already.
    match tried {
        Ok(tried) => assert!(tried.completed, "{tried:?}"),
        Err(err) => assert_eq!(err.code, ErrorCode::NotFound),
    }
    revocations_complete(&rig, &jid, WAIT).await;
}

fn empty_file(path: &std::path::Path) {
    if path.exists() {
        std::fs::write(path, b"").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_app_database_restores_the_devices_its_folder_still_holds() {
    let rig = Rig::new().await;
    let (_, jid_a) = rig.linked("a").await;
    rig.linked("b").await;
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    let data = stopped.dir.path().join("data");
    let layout = DataLayout::new(data.clone());
    // "b" loses its session file too: only its keys are left.
    layout
        .remove_session_files(&DeviceId::parse("b").unwrap())
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        empty_file(std::path::Path::new(&format!(
            "{}{suffix}",
            layout.app_db().display()
        )));
    }
    let rig = stopped.start().await;
    let warnings = rig.service.startup_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("knew no device")),
        "{warnings:?}"
    );
    // "a" comes back as the linked device it is, and can be logged out.
    let a = rig.wait_for_state("a", DeviceState::LoggedIn).await;
    assert_eq!(a.jid.as_deref(), Some(jid_a.to_string().as_str()));
    assert_eq!(
        rig.service.history("a").unwrap()[0].action,
        HistoryAction::RecoveredDevice
    );
    let outcome = rig.service.logout("a", Actor::Desktop).await.unwrap();
    assert!(outcome.unlink_confirmed, "{outcome:?}");
    assert!(!linked_at_sim(&rig, PHONE).contains(&jid_a.to_string()));
    // "b" is shown, keys kept, and its delete removes them.
    let b = rig.service.get("b").unwrap();
    assert_eq!(
        (b.state, b.state_reason, b.has_credentials),
        (DeviceState::Offline, StateReason::SessionDamaged, true)
    );
    rig.service.delete("b", Actor::Desktop).await.unwrap();
    let b_keys = key_name(&rig.data(), &DeviceId::parse("b").unwrap());
    assert_eq!(rig.secrets.get(&b_keys).unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_app_database_is_set_aside_not_overwritten() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("kept").await;
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    let data = stopped.dir.path().join("data");
    let layout = DataLayout::new(data.clone());
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", layout.app_db().display()));
    }
    std::fs::write(layout.app_db(), vec![0x42; 8192]).unwrap();
    let rig = stopped.start().await;
    let warnings = rig.service.startup_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("set aside")),
        "{warnings:?}"
    );
    let aside: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(aside[0].path()).unwrap(), vec![0x42; 8192]);
    let d = rig.wait_for_state("kept", DeviceState::LoggedIn).await;
    assert_eq!(d.jid.as_deref(), Some(jid.to_string().as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_folders_with_the_same_device_id_keep_their_own_keys() {
    let a = Rig::new().await;
    let dir_b = tempfile::tempdir().unwrap();
    let data_b = dir_b.path().join("data");
    let b = DeviceService::open(wa_test_support::rig::config(&a.sim, &data_b, &a.secrets))
        .await
        .unwrap();
    let (_, jid_a) = a.linked("same").await;
    let keys_a = a
        .secrets
        .get(&key_name(&a.data(), &DeviceId::parse("same").unwrap()))
        .unwrap();
    assert!(keys_a.is_some());

    b.create(new_device("same"), Actor::Desktop).await.unwrap();
    let qr = b.login_qr("same", Actor::Desktop).await.unwrap();
    let jid_b = a
        .sim
        .phone("15550009999")
        .scan(&qr_payload(&qr.svg))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.get("same").unwrap().state != DeviceState::LoggedIn {
        assert!(tokio::time::Instant::now() < deadline, "b never logged in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B's login wrote B's entry, not A's.
    assert_eq!(
        a.secrets
            .get(&key_name(&a.data(), &DeviceId::parse("same").unwrap()))
            .unwrap(),
        keys_a
    );
    // Both still log in after a restart, and both links end with a logout.
    let a = a.stop().await.start().await;
    a.wait_for_state("same", DeviceState::LoggedIn).await;
    assert!(
        a.service
            .logout("same", Actor::Desktop)
            .await
            .unwrap()
            .unlink_confirmed
    );
    assert!(
        b.logout("same", Actor::Desktop)
            .await
            .unwrap()
            .unlink_confirmed
    );
    let linked: Vec<String> = a
        .sim
        .linked_companions()
        .into_iter()
        .map(|(_, d)| d.jid.to_string())
        .collect();
    assert!(!linked.contains(&jid_a.to_string()) && !linked.contains(&jid_b.to_string()));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_from_before_folder_scopes_is_moved_under_the_scope_once() {
    let rig = Rig::new().await;
    rig.linked("old-name").await;
    let id = DeviceId::parse("old-name").unwrap();
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    let data = stopped.dir.path().join("data");
    // The entry as earlier versions named it, and a folder they never moved.
    let scoped = key_name(&data, &id);
    let raw = stopped.secrets.get(&scoped).unwrap().unwrap();
    let mut entry: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    entry["entry"] = serde_json::json!(format!("device/{id}"));
    stopped
        .secrets
        .set(
            &format!("device/{id}"),
            &serde_json::to_vec(&entry).unwrap(),
        )
        .unwrap();
    stopped.secrets.delete(&scoped).unwrap();
    std::fs::remove_file(data.join("keyring-scope-moved")).unwrap();

    let rig = stopped.start().await;
    rig.wait_for_state("old-name", DeviceState::LoggedIn).await;
    assert_eq!(rig.secrets.get(&format!("device/{id}")).unwrap(), None);
    assert!(rig.secrets.get(&scoped).unwrap().is_some());
    assert!(
        rig.service
            .logout("old-name", Actor::Desktop)
            .await
            .unwrap()
            .unlink_confirmed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_app_database_wal_loses_no_device() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("wal").await;
    let stopped = rig.stop().await;
    stopped.wait_until_files_closed().await;
    let data = stopped.dir.path().join("data");
    let wal = format!("{}-wal", DataLayout::new(data.clone()).app_db().display());
    std::fs::write(&wal, vec![0x17; 64 * 1024]).unwrap();
    let rig = stopped.start().await;
    let d = rig.wait_for_state("wal", DeviceState::LoggedIn).await;
    assert_eq!(d.jid.as_deref(), Some(jid.to_string().as_str()));
    assert!(
        rig.service
            .logout("wal", Actor::Desktop)
            .await
            .unwrap()
            .unlink_confirmed
    );
}
