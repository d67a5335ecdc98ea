//! A locked keyring whose unlock prompt nobody answers: every call ends
//! within seconds as `keyring_unavailable` saying the keyring is locked, and
//! a QR login says so too (by type: the API answers 503).
//!
//! Locking the keyring would fail every other test sharing it, so each test
//! here runs as a child process in a desktop session of its own (a private
//! D-Bus, gnome-keyring and X display, where the prompt opens and waits).

use crate::support::{assert_child_test, run_child_test};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wa_device_core::{
    Actor, DeviceService, ErrorCode, KeyringSecretStore, NewDevice, SecretStore, ServiceError,
};
use wa_sim::{SimConfig, Simulator};
use wa_test_support::rig::config;

/// The call limit in these tests; the product's is `KEYRING_CALL_LIMIT`.
const LIMIT: Duration = Duration::from_secs(2);
/// What a bounded call may take beyond its limit on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

/// Runs `test` of this binary under `tests/desktop-session.sh`.
fn run_in_own_desktop_session(test: &str) {
    run_child_test(test, |exe, args| {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/desktop-session.sh");
        let mut command = std::process::Command::new(script);
        command.arg(exe).args(args);
        command
    });
}

fn lock_the_keyring() {
    use dbus_secret_service::{EncryptionType, SecretService};
    let service = SecretService::connect(EncryptionType::Plain).unwrap();
    let collection = service.get_default_collection().unwrap();
    collection.lock().unwrap();
    assert!(collection.is_locked().unwrap());
}

fn assert_locked_within(started: Instant, err: &ServiceError) {
    assert_eq!(err.code, ErrorCode::KeyringUnavailable, "{err:?}");
    assert!(err.message.contains("locked"), "{err:?}");
    assert!(
        started.elapsed() < LIMIT + SLACK,
        "{:?} to fail: {err:?}",
        started.elapsed()
    );
}

#[test]
fn every_call_on_a_locked_keyring_ends_within_seconds() {
    run_in_own_desktop_session("locked_keyring::child_every_call_ends_within_seconds");
}

#[test]
#[ignore = "child process of every_call_on_a_locked_keyring_ends_within_seconds"]
fn child_every_call_ends_within_seconds() {
    assert_child_test();
    let store = KeyringSecretStore::with_call_limit("wa-device-admin-test-locked", LIMIT);
    store.set("device/a", b"secret-value").unwrap();
    lock_the_keyring();

    let started = Instant::now();
    let err = store.get("device/a").unwrap_err();
    assert_locked_within(started, &err);
    assert!(!err.message.contains("secret-value"));
    // The prompt is still open: the next calls do not wait out the limit
    // again, each says the keyring is locked.
    let started = Instant::now();
    assert_locked_within(started, &store.get("device/a").unwrap_err());
    assert_locked_within(started, &store.set("device/b", b"x").unwrap_err());
    assert_locked_within(started, &store.delete("device/a").unwrap_err());
    assert_locked_within(started, &store.get_all("device/", &|_| None).unwrap_err());
}

#[test]
fn a_qr_login_on_a_locked_keyring_is_keyring_unavailable() {
    run_in_own_desktop_session("locked_keyring::child_qr_login_is_keyring_unavailable");
}

#[test]
#[ignore = "child process of a_qr_login_on_a_locked_keyring_is_keyring_unavailable"]
fn child_qr_login_is_keyring_unavailable() {
    assert_child_test();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = Simulator::new(SimConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::with_call_limit(
            "wa-device-admin-test-locked-login",
            LIMIT,
        ));
        let service = DeviceService::open(config(&sim, &dir.path().join("data"), &secrets))
            .await
            .unwrap();
        service
            .create(
                NewDevice {
                    id: Some("locked".into()),
                    label: "Locked".into(),
                },
                Actor::Desktop,
            )
            .await
            .unwrap();
        lock_the_keyring();
        let started = Instant::now();
        let err = service
            .login_qr("locked", Actor::Desktop)
            .await
            .unwrap_err();
        assert_locked_within(started, &err);
        // Nothing was linked, and the device can try again once unlocked.
        assert!(sim.linked_companions().is_empty());
        let device = service.get("locked").unwrap();
        assert!(!device.has_credentials, "{device:?}");
        service.shutdown().await;
    });
}
