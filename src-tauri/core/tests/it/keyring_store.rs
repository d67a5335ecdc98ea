//! The keyring-backed secret store against the real Secret Service.

use crate::support::test_keyring;
use wa_device_core::{ErrorCode, KeyringSecretStore, SecretStore};

#[test]
fn secrets_round_trip_through_the_real_keyring() {
    let store = test_keyring();
    let secret: Vec<u8> = (0..=255).collect();
    assert_eq!(store.get("device/a").unwrap(), None);
    store.set("device/a", &secret).unwrap();
    assert_eq!(store.get("device/a").unwrap(), Some(secret.clone()));
    store.set("device/a", b"replaced").unwrap();
    assert_eq!(store.get("device/a").unwrap(), Some(b"replaced".to_vec()));
    // Entries are separate per name.
    assert_eq!(store.get("device/b").unwrap(), None);
    store.delete("device/a").unwrap();
    assert_eq!(store.get("device/a").unwrap(), None);
}

#[test]
fn deleting_a_missing_entry_succeeds() {
    let store = test_keyring();
    store.delete("device/never-set").unwrap();
    store.delete("device/never-set").unwrap();
}

#[test]
fn entries_are_separated_by_service_name() {
    let one = test_keyring();
    let two = test_keyring();
    one.set("device/x", b"one").unwrap();
    assert_eq!(two.get("device/x").unwrap(), None);
    one.delete("device/x").unwrap();
}

/// Runs `test` of this binary in a child process whose environment has no
/// D-Bus session bus, so there is no Secret Service to talk to.
pub fn run_without_secret_service(test: &str) {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/wa-device-core-test-bus",
        )
        .env("WA_DEVICE_CORE_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child test {test} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn without_secret_service_every_call_is_keyring_unavailable() {
    run_without_secret_service("keyring_store::child_keyring_without_secret_service");
}

#[test]
#[ignore = "child process of without_secret_service_every_call_is_keyring_unavailable"]
fn child_keyring_without_secret_service() {
    assert_eq!(
        std::env::var("WA_DEVICE_CORE_TEST_CHILD").as_deref(),
        Ok("1")
    );
    let store = KeyringSecretStore::new("wa-device-admin-test-unavailable");
    let get = store.get("device/a").unwrap_err();
    assert_eq!(get.code, ErrorCode::KeyringUnavailable, "{get:?}");
    let set = store.set("device/a", b"secret-value").unwrap_err();
    assert_eq!(set.code, ErrorCode::KeyringUnavailable, "{set:?}");
    assert!(!set.message.contains("secret-value"));
    let delete = store.delete("device/a").unwrap_err();
    assert_eq!(delete.code, ErrorCode::KeyringUnavailable, "{delete:?}");
}
