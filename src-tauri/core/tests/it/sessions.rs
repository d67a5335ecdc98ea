//! Sessions against the WhatsApp simulator (`wa-sim`) with the real
//! whatsapp-rust client, real SQLite files and the real keyring.

use crate::support::key_name;
use std::sync::Arc;
use std::time::Duration;
use wa_device_core::session::store::DeviceSecrets;
use wa_device_core::{
    Actor, DeviceState, HistoryAction, NewDevice, SecretStore, ServiceEvent, StateReason,
};
use wa_sim::{LogoutReply, Simulator};
use wa_test_support::qr::qr_payload;
use wa_test_support::rig::{PHONE, Rig, WAIT};

fn linked_jids(sim: &Simulator) -> Vec<String> {
    sim.phone(PHONE)
        .linked_devices()
        .into_iter()
        .map(|d| d.jid.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_login_links_the_device_and_logs_it_in() {
    let rig = Rig::new().await;
    rig.service
        .create(
            NewDevice {
                id: Some("desk".into()),
                label: "Desk".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    let mut events = rig.service.subscribe();
    let started = std::time::Instant::now();
    let qr = rig.service.login_qr("desk", Actor::Desktop).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(qr.svg.starts_with("<?xml") && qr.svg.contains("<svg"));
    assert!(qr.expires_at > chrono::Utc::now());
    assert_eq!(rig.service.get("desk").unwrap().state, DeviceState::Pairing);

    let jid = rig
        .sim
        .phone(PHONE)
        .scan(&qr_payload(&qr.svg))
        .await
        .unwrap();
    let device = rig.wait_for_state("desk", DeviceState::LoggedIn).await;
    assert!(device.has_credentials);
    assert_eq!(device.phone_number.as_deref(), Some(PHONE));
    assert_eq!(device.jid.as_deref(), Some(jid.to_string().as_str()));
    assert_eq!(device.display_name.as_deref(), Some("Simulated Phone"));
    assert!(device.last_connected_at.is_some());
    assert_eq!(linked_jids(&rig.sim), vec![jid.to_string()]);

    let mut saw_qr = false;
    let mut saw_pairing = false;
    while let Ok(event) = events.try_recv() {
        match event {
            ServiceEvent::QrCode(code) => saw_qr |= code == qr,
            ServiceEvent::DeviceChanged { device } => {
                saw_pairing |= device.state == DeviceState::Pairing
            }
            _ => {}
        }
    }
    assert!(saw_qr && saw_pairing);
    let actions: Vec<_> = rig
        .service
        .history("desk")
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            HistoryAction::Create,
            HistoryAction::LoginQr,
            HistoryAction::Paired
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_material_is_stored_in_any_file_of_the_data_folder() {
    let rig = Rig::new().await;
    let (device, _) = rig.linked("scan").await;
    let raw = rig
        .secrets
        .get(&key_name(&rig.data(), &device.id))
        .unwrap()
        .expect("keyring entry");
    let secrets: DeviceSecrets = serde_json::from_slice(&raw).unwrap();
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("noise private key", secrets.noise_key[..32].to_vec()),
        ("identity private key", secrets.identity_key[..32].to_vec()),
        (
            "signed pre-key private key",
            secrets.signed_pre_key[..32].to_vec(),
        ),
        ("ADV secret", secrets.adv_secret_key.clone()),
    ];
    for (_, needle) in &needles {
        assert_eq!(needle.len(), 32);
        assert!(
            needle.iter().any(|b| *b != 0),
            "a real key, not a placeholder"
        );
    }
    // Let the client flush whatever it writes, then read every file.
    rig.service.shutdown().await;
    let mut files = Vec::new();
    let mut dirs = vec![rig.data()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path)
            } else {
                files.push(path)
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("device-scan.sqlite3"))
    );
    for file in &files {
        // SQLite may drop its -wal/-shm files as the last connection closes.
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        for (what, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{what} found in {}",
                file.display()
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_unlinks_at_whatsapp_and_wipes_everything() {
    let rig = Rig::new().await;
    let (device, _) = rig.linked("out").await;
    let started = std::time::Instant::now();
    let outcome = rig
        .service
        .logout("out", Actor::RestApi("ops".into()))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        outcome.had_credentials && outcome.unlink_confirmed,
        "{outcome:?}"
    );
    assert!(linked_jids(&rig.sim).is_empty());
    let after = rig.service.get("out").unwrap();
    assert_eq!(
        (after.state, after.state_reason),
        (DeviceState::Disconnected, StateReason::LoggedOut)
    );
    assert_eq!(
        (after.phone_number, after.display_name, after.jid),
        (None, None, None)
    );
    assert!(!after.has_credentials);
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &device.id)).unwrap(),
        None
    );
    assert!(!wa_device_core::files::DataLayout::new(rig.data()).has_session_files(&device.id));
    let last = rig.service.history("out").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.actor),
        (HistoryAction::Logout, Actor::RestApi("ops".into()))
    );
    assert!(last.detail.contains("confirmed"), "{}", last.detail);
    // Again: already disconnected, nothing changes.
    let again = rig.service.logout("out", Actor::Desktop).await.unwrap();
    assert!(!again.had_credentials);
    assert_eq!(
        rig.service.get("out").unwrap(),
        rig.service.get("out").unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_unlink_still_wipes_locally_and_says_so() {
    for reply in [LogoutReply::Error, LogoutReply::NoAnswer] {
        let rig = Rig::new().await;
        let (device, jid) = rig.linked("stuck").await;
        rig.sim.set_logout_reply(reply);
        let outcome = rig.service.logout("stuck", Actor::Desktop).await.unwrap();
        assert!(
            outcome.had_credentials && !outcome.unlink_confirmed,
            "{reply:?}: {outcome:?}"
        );
        // The device is reset all the same; the link's keys wait in a
        // pending revocation (see the `links` tests for how it ends).
        assert!(outcome.revocation_pending, "{outcome:?}");
        assert!(
            outcome.message.contains("pending revocation"),
            "{}",
            outcome.message
        );
        assert_eq!(
            linked_jids(&rig.sim),
            vec![jid.to_string()],
            "still linked at the phone"
        );
        assert_eq!(
            rig.service.get("stuck").unwrap().state,
            DeviceState::Disconnected
        );
        assert_eq!(
            rig.secrets.get(&key_name(&rig.data(), &device.id)).unwrap(),
            None
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_code_login_links_the_device() {
    let rig = Rig::new().await;
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
    assert_eq!(code.code.len(), 9);
    assert_eq!(code.code.as_bytes()[4], b'-');
    assert!(code.expires_at > chrono::Utc::now() + chrono::Duration::seconds(60));
    rig.sim.phone(PHONE).enter_code(&code.code).await.unwrap();
    let device = rig.wait_for_state("code", DeviceState::LoggedIn).await;
    assert_eq!(device.phone_number.as_deref(), Some(PHONE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_from_the_phone_wipes_the_device() {
    let rig = Rig::new().await;
    let (device, jid) = rig.linked("gone").await;
    let mut events = rig.service.subscribe();
    rig.sim.phone(PHONE).remove_device(&jid).unwrap();
    let after = rig.wait_for_state("gone", DeviceState::Disconnected).await;
    assert_eq!(after.state_reason, StateReason::RemovedFromPhone);
    // The state changes at step 3 of the wipe; the session files go after.
    rig.wait_for_history("gone", HistoryAction::RemovedFromPhone)
        .await;
    assert!(!after.has_credentials && after.jid.is_none());
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &device.id)).unwrap(),
        None
    );
    let left: Vec<_> = wa_device_core::files::DataLayout::new(rig.data())
        .session_files(&device.id)
        .into_iter()
        .filter(|f| f.exists())
        .collect();
    assert!(left.is_empty(), "session files outlived the wipe: {left:?}");
    let mut noticed = false;
    while let Ok(event) = events.try_recv() {
        noticed |= matches!(
            event,
            ServiceEvent::Notice {
                reason: StateReason::RemovedFromPhone,
                ..
            }
        );
    }
    assert!(noticed);
    let last = rig.service.history("gone").unwrap().pop().unwrap();
    assert_eq!(
        (last.action, last.actor),
        (HistoryAction::RemovedFromPhone, Actor::Whatsapp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_banned_and_outdated_go_offline_with_the_reason() {
    let rig = Rig::new().await;
    let (_, jid) = rig.linked("r").await;
    assert!(rig.sim.replace(&jid));
    let d = rig.wait_for_state("r", DeviceState::Offline).await;
    assert_eq!(d.state_reason, StateReason::Replaced);
    assert!(d.has_credentials);

    // The admin reconnects; then a ban.
    rig.service.reconnect("r", Actor::Desktop).await.unwrap();
    rig.wait_for_state("r", DeviceState::LoggedIn).await;
    rig.sim.ban(&jid, 101, Duration::from_secs(3600));
    let d = rig
        .wait_for("r", "banned", |d| {
            d.state_reason == StateReason::TemporarilyBanned
        })
        .await;
    assert_eq!(d.state, DeviceState::Offline);
    let until = d.ban_expires_at.expect("ban expiry");
    assert!(until > chrono::Utc::now() + chrono::Duration::minutes(50));

    rig.sim.clear_faults();
    rig.service.reconnect("r", Actor::Desktop).await.unwrap();
    rig.wait_for_state("r", DeviceState::LoggedIn).await;
    rig.sim.set_client_outdated(true);
    rig.service.reconnect("r", Actor::Desktop).await.unwrap();
    let d = rig
        .wait_for("r", "outdated", |d| {
            d.state_reason == StateReason::ClientOutdated
        })
        .await;
    assert_eq!(d.state, DeviceState::Offline);
    // Offline devices can still be logged out; the unlink cannot get through.
    let outcome = rig.service.logout("r", Actor::Desktop).await.unwrap();
    assert!(!outcome.unlink_confirmed);
    assert_eq!(
        rig.service.get("r").unwrap().state,
        DeviceState::Disconnected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_reconnect_by_themselves() {
    let rig = Rig::new().await;
    rig.linked("drop").await;
    let logins = || {
        rig.sim
            .events()
            .iter()
            .filter(|e| matches!(e, wa_sim::SimEvent::LoggedIn { .. }))
            .count()
    };
    let before = logins();
    rig.sim.drop_connections();
    // A login after the drop, not the state the drop found.
    rig.wait_for("drop", "logged in again", |d| {
        d.state == DeviceState::LoggedIn && logins() > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_with_credentials_reconnect_at_start_up() {
    let rig = Rig::new().await;
    rig.linked("a").await;
    let rig = rig.stop().await.start().await;
    // Not connected yet: the state says so from the moment `open` returns.
    let restoring = rig.service.get("a").unwrap();
    assert_eq!(
        (restoring.state, restoring.state_reason),
        (DeviceState::Connecting, StateReason::Restoring)
    );
    rig.wait_for_state("a", DeviceState::LoggedIn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_written_before_entries_carried_their_name_restores_and_gains_it() {
    let rig = Rig::new().await;
    let (device, _) = rig.linked("old").await;
    let stopped = rig.stop().await;
    // The entry as session 4 wrote it: the same JSON without `entry`.
    let name = key_name(&stopped.dir.path().join("data"), &device.id);
    let mut entry: serde_json::Value =
        serde_json::from_slice(&stopped.secrets.get(&name).unwrap().unwrap()).unwrap();
    assert_eq!(entry["entry"], serde_json::json!(name));
    entry.as_object_mut().unwrap().remove("entry");
    stopped
        .secrets
        .set(&name, &serde_json::to_vec(&entry).unwrap())
        .unwrap();

    let rig = stopped.start().await;
    rig.wait_for_state("old", DeviceState::LoggedIn).await;
    // The save after the login wrote the name in.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let raw = rig.secrets.get(&name).unwrap().unwrap();
        let secrets: DeviceSecrets = serde_json::from_slice(&raw).unwrap();
        if secrets.entry.as_deref() == Some(name.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry never gained its name"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rig.service.shutdown().await;
}

/// The real keyring, with its bulk read held until released: the start-up
/// restore's keyring read, made to last as long as a test needs.
struct HeldBulkRead {
    keyring: Arc<dyn SecretStore>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl SecretStore for HeldBulkRead {
    fn get(&self, name: &str) -> wa_device_core::Result<Option<Vec<u8>>> {
        self.keyring.get(name)
    }
    fn set(&self, name: &str, secret: &[u8]) -> wa_device_core::Result<()> {
        self.keyring.set(name, secret)
    }
    fn delete(&self, name: &str) -> wa_device_core::Result<()> {
        self.keyring.delete(name)
    }
    fn get_all(
        &self,
        prefix: &str,
        named_by: &dyn Fn(&[u8]) -> Option<String>,
    ) -> wa_device_core::Result<std::collections::HashMap<String, Vec<u8>>> {
        let _ = self.release.lock().unwrap().recv();
        self.keyring.get_all(prefix, named_by)
    }
}

/// The files this process has open whose path starts with `prefix` (the
/// database, its `-wal` and `-shm`, deleted or not).
fn open_files_under(prefix: &std::path::Path) -> Vec<String> {
    let prefix = prefix.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.starts_with(&prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_while_the_restore_reads_the_keyring_closes_the_store_opened_ahead() {
    let rig = Rig::new().await;
    rig.linked("kept").await;
    let (gone, _) = rig.linked("gone").await;
    let gone_db = wa_device_core::files::DataLayout::new(rig.data()).session_db(&gone.id);
    let stopped = rig.stop().await;
    let (release, held) = std::sync::mpsc::channel();
    let held: Arc<dyn SecretStore> = Arc::new(HeldBulkRead {
        keyring: Arc::clone(&stopped.secrets),
        release: std::sync::Mutex::new(held),
    });
    let rig = stopped.start_with(held).await;
    // The devices wait for the keyring read; their stores open meanwhile.
    let deadline = tokio::time::Instant::now() + WAIT;
    while open_files_under(&gone_db).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store was never opened ahead"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = rig.service.logout("gone", Actor::Desktop).await.unwrap();
    assert!(
        outcome.had_credentials && outcome.unlink_confirmed,
        "{outcome:?}"
    );
    assert_eq!(open_files_under(&gone_db), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(rig.data().join("sessions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("gone"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &gone.id)).unwrap(),
        None
    );

    release.send(()).unwrap();
    rig.wait_for_state("kept", DeviceState::LoggedIn).await;
    let gone = rig.service.get("gone").unwrap();
    assert_eq!(gone.state, DeviceState::Disconnected);
    assert!(!gone.has_credentials);
    rig.service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_while_pairing_cancels_the_login() {
    let rig = Rig::new().await;
    rig.service
        .create(
            NewDevice {
                id: Some("p".into()),
                label: "P".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    let qr = rig.service.login_qr("p", Actor::Desktop).await.unwrap();
    let outcome = rig.service.logout("p", Actor::Desktop).await.unwrap();
    assert!(!outcome.had_credentials);
    let d = rig.service.get("p").unwrap();
    assert_eq!(d.state, DeviceState::Disconnected);
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &d.id)).unwrap(),
        None
    );
    // The QR of the cancelled login no longer links anything.
    assert!(
        rig.sim
            .phone(PHONE)
            .scan(&qr_payload(&qr.svg))
            .await
            .is_err()
    );
    // A new login starts a fresh client.
    let again = rig.service.login_qr("p", Actor::Desktop).await.unwrap();
    assert_ne!(qr_payload(&again.svg), qr_payload(&qr.svg));
    rig.service.cancel_login("p", Actor::Desktop).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logouts_at_once_unlink_once() {
    let rig = Rig::new().await;
    rig.linked("twice").await;
    let (one, two) = tokio::join!(
        rig.service.logout("twice", Actor::Desktop),
        rig.service.logout("twice", Actor::RestApi("ops".into()))
    );
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(
        [one.had_credentials, two.had_credentials]
            .iter()
            .filter(|b| **b)
            .count(),
        1,
        "{one:?} {two:?}"
    );
    assert!(one.unlink_confirmed || two.unlink_confirmed);
    assert!(linked_jids(&rig.sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_reconnect_unlinks_and_removes() {
    let rig = Rig::new().await;
    let (device, _) = rig.linked("del").await;
    let reconnect = rig.service.reconnect("del", Actor::Desktop);
    let delete = rig.service.delete("del", Actor::Desktop);
    let (_, deleted) = tokio::join!(reconnect, delete);
    assert!(deleted.unwrap().had_credentials);
    assert_eq!(
        rig.service.get("del").unwrap_err().code,
        wa_device_core::ErrorCode::NotFound
    );
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &device.id)).unwrap(),
        None
    );
    assert!(linked_jids(&rig.sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_qr_codes_return_the_device_to_disconnected() {
    let rig = Rig::new().await;
    rig.service
        .create(
            NewDevice {
                id: Some("late".into()),
                label: "Late".into(),
            },
            Actor::Desktop,
        )
        .await
        .unwrap();
    rig.service.login_qr("late", Actor::Desktop).await.unwrap();
    // 60 s + 5 x 20 s of QR refs, compressed by TIME_FACTOR.
    let d = rig
        .wait_for("late", "expired", |d| {
            d.state_reason == StateReason::QrExpired
        })
        .await;
    assert_eq!(d.state, DeviceState::Disconnected);
    assert_eq!(
        rig.secrets.get(&key_name(&rig.data(), &d.id)).unwrap(),
        None
    );
    // A new login starts a fresh client.
    rig.service.login_qr("late", Actor::Desktop).await.unwrap();
    assert_eq!(rig.service.get("late").unwrap().state, DeviceState::Pairing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_while_pairing_or_linked_is_busy() {
    let rig = Rig::new().await;
    rig.linked("busy").await;
    let err = rig
        .service
        .login_qr("busy", Actor::Desktop)
        .await
        .unwrap_err();
    assert_eq!(err.code, wa_device_core::ErrorCode::Busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_server_faults_end_in_logged_in_again() {
    let rig = Rig::new().await;
    rig.linked("f").await;
    // Refused logins (503) are retried with backoff by the client.
    rig.sim.fail_next_logins_with_503(2);
    rig.service.reconnect("f", Actor::Desktop).await.unwrap();
    rig.wait_for_state("f", DeviceState::LoggedIn).await;
    // A new server key forces the XX fallback handshake.
    rig.sim.rotate_server_key();
    rig.service.reconnect("f", Actor::Desktop).await.unwrap();
    let d = rig.wait_for_state("f", DeviceState::LoggedIn).await;
    assert!(d.has_credentials);
    let actions: Vec<_> = rig
        .service
        .history("f")
        .unwrap()
        .iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| **a == HistoryAction::Reconnect)
            .count(),
        2
    );
}
