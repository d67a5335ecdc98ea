//! Crash safety: a logout or delete killed between any two of its steps is
//! finished at the next start. The operation runs in a child process (this
//! test binary, one ignored test) that blocks after the chosen step; the
//! parent kills it there, reopens the service and checks that no credential
//! or session file outlived the logout and that no device claims credentials
//! it no longer has.

use crate::support::{key_name, revocation_key};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use wa_device_core::app_db::AppDatabase;
use wa_device_core::files::DataLayout;
use wa_device_core::session::store::DeviceSecrets;
use wa_device_core::{
    Actor, DeviceId, DeviceService, DeviceState, ErrorCode, KeyringSecretStore, LoginStep,
    NewDevice, SecretStore, ServerEndpoint, ServiceConfig, WipeStep,
};
use wa_test_support::keyring::rand_u64;

const STEPS: [(&str, WipeStep); 8] = [
    ("journaled", WipeStep::Journaled),
    ("unlinked", WipeStep::Unlinked),
    ("revocation_keys_copied", WipeStep::RevocationKeysCopied),
    ("revocation_recorded", WipeStep::RevocationRecorded),
    ("secrets_deleted", WipeStep::SecretsDeleted),
    ("device_reset", WipeStep::DeviceReset),
    ("session_files_deleted", WipeStep::SessionFilesDeleted),
    ("device_removed", WipeStep::DeviceRemoved),
];

fn config(data: &std::path::Path, keyring_service: &str) -> ServiceConfig {
    let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::new(keyring_service));
    let mut config = ServiceConfig::new(data, secrets);
    config.restore_on_open = false;
    // Nothing listens there: no test ever reaches a real server.
    config.server = ServerEndpoint::WebSocketUrl("ws://127.0.0.1:9/ws/chat".into());
    config.unlink_timeout = Duration::from_millis(300);
    config
}

/// A device "d" that has credentials: keyring entry, session store files and
/// the flag, as after a pairing.
async fn linked_device(data: &std::path::Path, keyring_service: &str) -> DeviceId {
    let service = DeviceService::open(config(data, keyring_service))
        .await
        .unwrap();
    let d = service
        .create(
            NewDevice {
                id: Some("d".into()),
                label: "D".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    drop(service);
    let layout = DataLayout::new(data.to_path_buf());
    let db = AppDatabase::open(&layout.app_db()).unwrap();
    let mut device = db.device(&d.id).unwrap().unwrap();
    device.has_credentials = true;
    device.state = DeviceState::Offline;
    device.jid = Some(JID.into());
    device.phone_number = Some("4915112345678".into());
    db.update_device(&mut device).unwrap();
    // Keys in the entry's format: a logout that WhatsApp does not confirm
    // keeps them for a pending revocation.
    let keys = DeviceSecrets {
        entry: Some(key_name(data, &d.id)),
        noise_key: vec![1; 64],
        identity_key: vec![2; 64],
        signed_pre_key: vec![3; 64],
        adv_secret_key: vec![4; 32],
        signed_pre_key_records: Default::default(),
    };
    KeyringSecretStore::new(keyring_service)
        .set(&key_name(data, &d.id), &serde_json::to_vec(&keys).unwrap())
        .unwrap();
    for file in &layout.session_files(&d.id)[..3] {
        std::fs::write(file, b"not a database").unwrap();
    }
    d.id
}

/// Runs the ignored test `child` of this binary on `data` until it prints
/// that it reached its step, then kills it. Returns whether it got there.
async fn kill_child_at(
    child: &str,
    data: &std::path::Path,
    keyring_service: &str,
    env: &[(&str, &str)],
) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--include-ignored", "--nocapture"])
        .env("WA_DEVICE_CORE_TEST_CHILD", "1")
        .env("CRASH_DATA_DIR", data)
        .env("CRASH_KEYRING_SERVICE", keyring_service)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reached = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("REACHED "))
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    reached
}

async fn kill_during(operation: &str, step: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keyring_service = format!("wa-device-admin-test-crash-{:016x}", rand_u64());
    let id = linked_device(&data, &keyring_service).await;

    let reached = kill_child_at(
        "crash::child_wipe_until_killed",
        &data,
        &keyring_service,
        &[("CRASH_OPERATION", operation), ("CRASH_STEP", step)],
    )
    .await;
    assert!(reached, "{operation}: the child never reached step {step}");

    let service = DeviceService::open(config(&data, &keyring_service))
        .await
        .unwrap();
    let layout = DataLayout::new(data.clone());
    let keyring = KeyringSecretStore::new(&keyring_service);
    assert_eq!(
        keyring.get(&key_name(&data, &id)).unwrap(),
        None,
        "{operation}/{step}: secret survived"
    );
    assert!(
        !layout.has_session_files(&id),
        "{operation}/{step}: session files survived"
    );
    match operation {
        "logout" => {
            let device = service.get("d").unwrap();
            assert_eq!(
                device.state,
                DeviceState::Disconnected,
                "{operation}/{step}"
            );
            assert!(!device.has_credentials);
            assert_eq!((device.jid, device.phone_number), (None, None));
        }
        _ => assert_eq!(service.get("d").unwrap_err().code, ErrorCode::NotFound),
    }
    let db = AppDatabase::open(&layout.app_db()).unwrap();
    assert!(db.pending_wipes().unwrap().is_empty());
    // The unlink could not be confirmed (no server): the link's keys moved to
    // exactly one pending revocation, whatever step the kill hit.
    let revocations = service.revocations().unwrap();
    assert_eq!(
        revocations
            .iter()
            .map(|r| r.jid.as_str())
            .collect::<Vec<_>>(),
        vec![JID],
        "{operation}/{step}"
    );
    let kept = keyring.get(&revocation_key(&data, JID)).unwrap();
    assert!(
        kept.is_some(),
        "{operation}/{step}: the link's keys are gone"
    );
    keyring.delete(&revocation_key(&data, JID)).unwrap();
}

const JID: &str = "4915112345678:3@s.whatsapp.net";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_killed_between_any_two_steps_is_finished_at_start_up() {
    for (step, _) in &STEPS[..7] {
        kill_during("logout", step).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_killed_between_any_two_steps_is_finished_at_start_up() {
    for (step, _) in &STEPS {
        kill_during("delete", step).await;
    }
}

/// In a child: tells the parent the step was reached, then blocks until
/// the parent kills the process.
fn wait_to_be_killed(step: impl std::fmt::Debug) -> ! {
    use std::io::Write;
    println!("REACHED {step:?}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

const LOGIN_STEPS: [(&str, LoginStep); 2] = [
    ("pairing_recorded", LoginStep::PairingRecorded),
    ("session_started", LoginStep::SessionStarted),
];

/// A QR login killed right after `step`: the next start and a delete leave
/// no keyring entry and no session file.
async fn kill_login_during(step: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keyring_service = format!("wa-device-admin-test-crash-{:016x}", rand_u64());
    let service = DeviceService::open(config(&data, &keyring_service))
        .await
        .unwrap();
    service
        .create(
            NewDevice {
                id: Some("l".into()),
                label: "L".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    service.shutdown().await;
    drop(service);

    let reached = kill_child_at(
        "crash::child_login_until_killed",
        &data,
        &keyring_service,
        &[("CRASH_STEP", step)],
    )
    .await;
    assert!(reached, "login: the child never reached step {step}");

    let service = DeviceService::open(config(&data, &keyring_service))
        .await
        .unwrap();
    let id = DeviceId::parse("l").unwrap();
    let device = service.get("l").unwrap();
    assert_eq!(
        (device.state, device.has_credentials),
        (DeviceState::Disconnected, false),
        "login/{step}"
    );
    service.delete("l", Actor::Desktop).await.unwrap();
    let keyring = KeyringSecretStore::new(&keyring_service);
    let layout = DataLayout::new(data.clone());
    assert_eq!(
        keyring.get(&key_name(&data, &id)).unwrap(),
        None,
        "login/{step}: a keyring entry survived"
    );
    assert!(
        !layout.has_session_files(&id),
        "login/{step}: session files survived"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_killed_at_each_early_step_leaves_nothing_a_delete_cannot_remove() {
    for (step, _) in &LOGIN_STEPS {
        kill_login_during(step).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash tests"]
async fn child_login_until_killed() {
    assert_eq!(
        std::env::var("WA_DEVICE_CORE_TEST_CHILD").as_deref(),
        Ok("1")
    );
    let data = std::env::var("CRASH_DATA_DIR").unwrap();
    let keyring_service = std::env::var("CRASH_KEYRING_SERVICE").unwrap();
    let step_name = std::env::var("CRASH_STEP").unwrap();
    let stop_at = LOGIN_STEPS.iter().find(|(n, _)| *n == step_name).unwrap().1;
    let mut config = config(std::path::Path::new(&data), &keyring_service);
    config.login_step_observer = Some(Arc::new(move |_id, step| {
        if step == stop_at {
            wait_to_be_killed(step);
        }
    }));
    let service = DeviceService::open(config).await.unwrap();
    let _ = service.login_qr("l", Actor::Desktop).await;
    panic!("the login finished without reaching step {step_name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the crash tests"]
async fn child_wipe_until_killed() {
    assert_eq!(
        std::env::var("WA_DEVICE_CORE_TEST_CHILD").as_deref(),
        Ok("1")
    );
    let data = std::env::var("CRASH_DATA_DIR").unwrap();
    let keyring_service = std::env::var("CRASH_KEYRING_SERVICE").unwrap();
    let operation = std::env::var("CRASH_OPERATION").unwrap();
    let step_name = std::env::var("CRASH_STEP").unwrap();
    let stop_at = STEPS.iter().find(|(n, _)| *n == step_name).unwrap().1;
    let mut config = config(std::path::Path::new(&data), &keyring_service);
    config.wipe_step_observer = Some(Arc::new(move |_id, step| {
        if step == stop_at {
            wait_to_be_killed(step);
        }
    }));
    let service = DeviceService::open(config).await.unwrap();
    let _ = match operation.as_str() {
        "logout" => service.logout("d", Actor::Desktop).await,
        _ => service.delete("d", Actor::Desktop).await,
    };
    panic!("the operation finished without reaching step {step_name}");
}
