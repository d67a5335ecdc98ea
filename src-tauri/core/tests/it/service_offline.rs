//! Service operations that need no WhatsApp server: devices, validation,
//! history, logout and delete of devices without credentials, crash recovery
//! of journaled wipes, and an unavailable keyring.

use crate::keyring_store::run_without_secret_service;
use crate::support::key_name;
use std::sync::Arc;
use wa_device_core::app_db::{AppDatabase, PendingWipe};
use wa_device_core::files::DataLayout;
use wa_device_core::{
    Actor, DeviceService, DeviceState, ErrorCode, HistoryAction, KeyringSecretStore, NewDevice,
    Outcome, SecretStore, ServiceConfig, ServiceEvent, StateReason,
};
use wa_test_support::keyring::test_keyring;
use wa_test_support::offline::offline_service;

fn new_device(id: &str) -> NewDevice {
    NewDevice {
        id: Some(id.to_owned()),
        label: format!("Label {id}"),
    }
}

#[tokio::test]
async fn devices_are_created_listed_renamed_and_announced() {
    let (_dir, _secrets, service) = offline_service().await;
    let mut events = service.subscribe();

    let a = service
        .create(new_device("front-desk"), Actor::Desktop)
        .await
        .unwrap();
    assert_eq!(a.id.as_str(), "front-desk");
    assert_eq!(a.state, DeviceState::Disconnected);
    assert_eq!(a.state_reason, StateReason::Created);
    assert!(!a.has_credentials);
    let ServiceEvent::DeviceChanged { device } = events.recv().await.unwrap() else {
        panic!("expected a device event");
    };
    assert_eq!(device, a);

    let generated = service
        .create(
            NewDevice {
                id: None,
                label: "  Spare  ".into(),
            },
            Actor::RestApi("ops".into()),
        )
        .await
        .unwrap();
    assert!(generated.id.as_str().starts_with("device-"));
    assert_eq!(generated.label, "Spare");

    let renamed = service
        .rename("front-desk", "Reception", Actor::Desktop)
        .await
        .unwrap();
    assert_eq!(renamed.label, "Reception");
    assert!(
        renamed.revision > a.revision,
        "a save takes a higher revision"
    );
    assert_eq!(service.get("front-desk").unwrap(), renamed);
    let ids: Vec<String> = service
        .list()
        .unwrap()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    let mut expected = vec!["front-desk".to_owned(), generated.id.to_string()];
    expected.sort();
    assert_eq!(ids, expected);

    let err = service
        .create(new_device("front-desk"), Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
}

#[tokio::test]
async fn bad_ids_are_rejected_by_every_operation() {
    let (dir, _secrets, service) = offline_service().await;
    let long = "a".repeat(65);
    for bad in ["../etc", "..", "", long.as_str(), "tél", "a/b", "a b", "📱"] {
        let codes = [
            service
                .create(new_device(bad), Actor::Desktop)
                .await
                .map(|_| ()),
            service.get(bad).map(|_| ()),
            service.rename(bad, "x", Actor::Desktop).await.map(|_| ()),
            service.login_qr(bad, Actor::Desktop).await.map(|_| ()),
            service
                .login_code(bad, "+49 151 2345678", Actor::Desktop)
                .await
                .map(|_| ()),
            service.cancel_login(bad, Actor::Desktop).await.map(|_| ()),
            service.reconnect(bad, Actor::Desktop).await.map(|_| ()),
            service.logout(bad, Actor::Desktop).await.map(|_| ()),
            service.delete(bad, Actor::Desktop).await.map(|_| ()),
            service.history(bad).map(|_| ()),
            service.history_csv(bad).map(|_| ()),
        ];
        for (i, result) in codes.into_iter().enumerate() {
            assert_eq!(
                result.unwrap_err().code,
                ErrorCode::InvalidId,
                "operation {i} with {bad:?}"
            );
        }
    }
    // Nothing was created anywhere for those ids.
    assert!(service.list().unwrap().is_empty());
    assert!(!dir.path().join("etc").exists());
}

#[tokio::test]
async fn bad_phone_numbers_and_labels_are_rejected() {
    let (_dir, _secrets, service) = offline_service().await;
    service
        .create(new_device("p"), Actor::Desktop)
        .await
        .unwrap();
    for bad in [
        "49 151 CALLME",
        "123456",
        "1234567890123456",
        "0151 2345678",
        "",
        "+",
    ] {
        let err = service
            .login_code("p", bad, Actor::Desktop)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPhone, "{bad:?}");
    }
    assert_eq!(service.get("p").unwrap().state, DeviceState::Disconnected);
    let err = service
        .rename("p", &"x".repeat(101), Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidLabel);
    let err = service
        .create(
            NewDevice {
                id: Some("q".into()),
                label: "a\u{7}b".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidLabel);
}

#[tokio::test]
async fn unknown_ids_are_not_found() {
    let (_dir, _secrets, service) = offline_service().await;
    let results = [
        service.get("ghost").map(|_| ()),
        service
            .rename("ghost", "x", Actor::Desktop)
            .await
            .map(|_| ()),
        service.login_qr("ghost", Actor::Desktop).await.map(|_| ()),
        service
            .login_code("ghost", "4915123456789", Actor::Desktop)
            .await
            .map(|_| ()),
        service
            .cancel_login("ghost", Actor::Desktop)
            .await
            .map(|_| ()),
        service.reconnect("ghost", Actor::Desktop).await.map(|_| ()),
        service.logout("ghost", Actor::Desktop).await.map(|_| ()),
        service.delete("ghost", Actor::Desktop).await.map(|_| ()),
        service.history("ghost").map(|_| ()),
    ];
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(
            result.unwrap_err().code,
            ErrorCode::NotFound,
            "operation {i}"
        );
    }
}

#[tokio::test]
async fn reconnect_without_credentials_is_an_error_not_a_no_op() {
    let (_dir, _secrets, service) = offline_service().await;
    service
        .create(new_device("d"), Actor::Desktop)
        .await
        .unwrap();
    let err = service.reconnect("d", Actor::Desktop).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NoCredentials);
    let last = service.history("d").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.outcome),
        (HistoryAction::Reconnect, Outcome::Failed)
    );
}

#[tokio::test]
async fn logout_of_a_disconnected_device_succeeds_and_changes_nothing() {
    let (_dir, _secrets, service) = offline_service().await;
    let before = service
        .create(new_device("d"), Actor::Desktop)
        .await
        .unwrap();
    let outcome = service.logout("d", Actor::Desktop).await.unwrap();
    assert!(!outcome.had_credentials);
    assert!(!outcome.unlink_confirmed);
    assert_eq!(service.get("d").unwrap(), before);
    // Twice at once: both succeed, still nothing changed.
    let (one, two) = tokio::join!(
        service.logout("d", Actor::Desktop),
        service.logout("d", Actor::RestApi("ops".into()))
    );
    assert!(one.is_ok() && two.is_ok());
    assert_eq!(service.get("d").unwrap(), before);
}

#[tokio::test]
async fn delete_removes_the_device_but_keeps_its_history() {
    let (_dir, _secrets, service) = offline_service().await;
    let created = service
        .create(new_device("d"), Actor::Desktop)
        .await
        .unwrap();
    let mut events = service.subscribe();
    let outcome = service
        .delete("d", Actor::RestApi("alice".into()))
        .await
        .unwrap();
    assert!(!outcome.had_credentials);
    assert_eq!(service.get("d").unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(
        service.delete("d", Actor::Desktop).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let mut removed = None;
    while let Ok(event) = events.try_recv() {
        if let ServiceEvent::DeviceRemoved {
            device_id,
            revision,
        } = event
        {
            assert_eq!(device_id.as_str(), "d");
            removed = Some(revision);
        }
    }
    let removed = removed.expect("a device_removed event was sent");
    assert!(
        removed > created.revision,
        "the removal outranks every snapshot of the device"
    );
    let history = service.history("d").unwrap();
    let actions: Vec<_> = history.iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![HistoryAction::Create, HistoryAction::Delete]);
    assert_eq!(history[1].actor, Actor::RestApi("alice".into()));
}

#[tokio::test]
async fn history_exports_as_csv() {
    let (_dir, _secrets, service) = offline_service().await;
    service
        .create(new_device("d"), Actor::Desktop)
        .await
        .unwrap();
    service
        .rename("d", "=cmd|' /C calc'!A0", Actor::RestApi("bob".into()))
        .await
        .unwrap();
    let csv = service.history_csv("d").unwrap();
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "time,device_id,action,actor,outcome,detail");
    assert!(lines[1].contains(",d,create,desktop,ok,"), "{}", lines[1]);
    assert!(lines[2].contains(",d,rename,api:bob,ok,"), "{}", lines[2]);
    assert_eq!(lines.len(), 4, "{csv}");
}

#[tokio::test]
async fn the_data_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _secrets, _service) = offline_service().await;
    let data = dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("sessions")), 0o700);
    assert_eq!(mode(&data.join("app.sqlite3")), 0o600);
}

/// A logout journaled but not finished (the process died) is finished when
/// the service opens: keyring entry and session files gone, device reset.
#[tokio::test]
async fn journaled_wipes_are_finished_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secrets: Arc<dyn SecretStore> = Arc::new(test_keyring());
    let layout = DataLayout::new(data.clone());
    let (logout_id, delete_id) = {
        let mut config = ServiceConfig::new(&data, Arc::clone(&secrets));
        config.restore_on_open = false;
        let service = DeviceService::open(config).await.unwrap();
        let a = service
            .create(new_device("a"), Actor::Desktop)
            .await
            .unwrap();
        let b = service
            .create(new_device("b"), Actor::Desktop)
            .await
            .unwrap();
        (a.id, b.id)
    };
    // What a crash in the middle of a logout of `a` and a delete of `b`
    // leaves behind: devices claiming credentials, secrets, session files.
    let db = AppDatabase::open(&layout.app_db()).unwrap();
    for (id, delete_device) in [(&logout_id, false), (&delete_id, true)] {
        let mut device = db.device(id).unwrap().unwrap();
        device.has_credentials = true;
        device.state = DeviceState::LoggedIn;
        device.jid = Some("4915112345678:3@s.whatsapp.net".into());
        db.update_device(&mut device).unwrap();
        secrets.set(&key_name(&data, id), b"{}").unwrap();
        std::fs::write(layout.session_db(id), b"x").unwrap();
        std::fs::write(layout.session_files(id)[1].clone(), b"x").unwrap();
        db.begin_wipe(&PendingWipe {
            device_id: id.clone(),
            delete_device,
            unlink_confirmed: false,
            actor: Actor::Desktop,
        })
        .unwrap();
    }
    drop(db);

    let mut config = ServiceConfig::new(&data, Arc::clone(&secrets));
    config.restore_on_open = false;
    let service = DeviceService::open(config).await.unwrap();
    let a = service.get("a").unwrap();
    assert_eq!(a.state, DeviceState::Disconnected);
    assert!(!a.has_credentials);
    assert_eq!(a.jid, None);
    assert_eq!(service.get("b").unwrap_err().code, ErrorCode::NotFound);
    for id in [&logout_id, &delete_id] {
        assert_eq!(secrets.get(&key_name(&data, id)).unwrap(), None);
        assert!(!layout.has_session_files(id));
    }
    let recovered = service.history("a").unwrap().pop().unwrap();
    assert_eq!(recovered.action, HistoryAction::RecoveredWipe);
    assert!(
        recovered.detail.contains("did not confirm"),
        "{}",
        recovered.detail
    );
}

#[tokio::test]
async fn without_a_keyring_devices_can_be_viewed_but_not_linked() {
    run_without_secret_service("service_offline::child_service_without_secret_service");
}

#[tokio::test]
#[ignore = "child process of without_a_keyring_devices_can_be_viewed_but_not_linked"]
async fn child_service_without_secret_service() {
    crate::support::assert_child_test();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let secrets: Arc<dyn SecretStore> =
        Arc::new(KeyringSecretStore::new("wa-device-admin-test-unavailable"));
    let mut config = ServiceConfig::new(&data, secrets);
    config.restore_on_open = false;
    let service = DeviceService::open(config.clone()).await.unwrap();
    service
        .create(new_device("plain"), Actor::Desktop)
        .await
        .unwrap();
    service
        .create(new_device("linked"), Actor::Desktop)
        .await
        .unwrap();
    // `linked` claims credentials, as after a pairing in an earlier run.
    let db = AppDatabase::open(&DataLayout::new(data.clone()).app_db()).unwrap();
    let mut linked = db
        .device(&wa_device_core::DeviceId::parse("linked").unwrap())
        .unwrap()
        .unwrap();
    linked.has_credentials = true;
    linked.state = DeviceState::Offline;
    linked.state_reason = StateReason::Replaced;
    db.update_device(&mut linked).unwrap();

    assert_eq!(service.list().unwrap().len(), 2);
    assert_eq!(service.get("linked").unwrap(), linked);
    assert!(service.history("plain").is_ok());

    let err = service.login_qr("plain", Actor::Desktop).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    let err = service
        .login_code("plain", "4915112345678", Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    let err = service
        .reconnect("linked", Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    let err = service.logout("linked", Actor::Desktop).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    let err = service.delete("linked", Actor::Desktop).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    // Nothing changed, nothing was written instead of the keyring.
    assert_eq!(service.get("linked").unwrap(), linked);
    assert_eq!(
        service.get("plain").unwrap().state,
        DeviceState::Disconnected
    );
    let sessions: Vec<_> = std::fs::read_dir(data.join("sessions")).unwrap().collect();
    assert!(sessions.is_empty(), "{sessions:?}");
    // A restart still works, without a keyring.
    drop(service);
    let service = DeviceService::open(config).await.unwrap();
    assert_eq!(service.list().unwrap().len(), 2);
}

#[tokio::test]
async fn a_data_folder_serves_one_service_at_a_time() {
    let (dir, secrets, service) = offline_service().await;
    let folder = dir.path().join("data");
    let mut config = ServiceConfig::new(&folder, Arc::clone(&secrets));
    config.restore_on_open = false;
    let second = DeviceService::open(config.clone()).await;
    let err = second
        .err()
        .expect("a second service on the same folder is refused");
    assert_eq!(err.code, ErrorCode::Busy);
    assert!(
        err.message.contains("another WA Device Admin"),
        "{}",
        err.message
    );

    service.shutdown().await;
    let reopened = DeviceService::open(config).await;
    assert!(reopened.is_ok(), "the folder opens again after shutdown");
}
