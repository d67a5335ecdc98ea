//! The app database on real files.

use std::os::unix::fs::PermissionsExt;
use wa_device_core::app_db::{AppDatabase, PendingWipe};
use wa_device_core::{
    Actor, Device, DeviceId, DeviceState, ErrorCode, HistoryAction, HistoryEntry, Outcome,
    StateReason,
};

fn device(id: &str) -> Device {
    Device::created(
        DeviceId::parse(id).unwrap(),
        format!("label of {id}"),
        wa_device_core::app_db::now(),
    )
}

#[test]
fn database_is_private_in_wal_mode_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite3");
    let db = AppDatabase::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), 4);
    let mut d = device("phone-1");
    db.insert_device(&mut d).unwrap();
    d.state = DeviceState::Offline;
    d.state_reason = StateReason::TemporarilyBanned;
    d.ban_expires_at = Some(wa_device_core::app_db::now());
    d.has_credentials = true;
    d.phone_number = Some("4915112345678".into());
    db.update_device(&mut d).unwrap();

    // WAL mode shows as the -wal file next to the database.
    assert!(dir.path().join("app.sqlite3-wal").exists());
    for name in ["app.sqlite3", "app.sqlite3-wal", "app.sqlite3-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
    }
    drop(db);

    let db = AppDatabase::open(&path).unwrap();
    assert_eq!(db.schema_version().unwrap(), 4, "migrations run once");
    assert_eq!(db.devices().unwrap(), vec![d.clone()]);
    assert_eq!(db.device(&d.id).unwrap(), Some(d));
}

#[test]
fn every_save_takes_a_higher_revision_and_a_reopen_continues_above_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite3");
    let db = AppDatabase::open(&path).unwrap();
    let (mut a, mut b) = (device("a"), device("b"));
    db.insert_device(&mut a).unwrap();
    db.insert_device(&mut b).unwrap();
    let inserted = (a.revision, b.revision);
    db.update_device(&mut a).unwrap();
    assert!(0 < inserted.0 && inserted.0 < inserted.1 && inserted.1 < a.revision);
    // A list reads each device with the revision its last save took.
    let listed: Vec<u64> = db.devices().unwrap().iter().map(|d| d.revision).collect();
    assert_eq!(listed, vec![a.revision, b.revision]);
    let removal = db.next_revision();
    assert!(removal > a.revision);
    drop(db);

    let db = AppDatabase::open(&path).unwrap();
    db.update_device(&mut b).unwrap();
    assert!(
        b.revision > a.revision,
        "a reopened database continues above the saved ones"
    );
    assert_eq!(db.device(&b.id).unwrap(), Some(b));
}

#[test]
fn duplicate_ids_are_already_exists_and_missing_updates_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let db = AppDatabase::open(&dir.path().join("app.sqlite3")).unwrap();
    db.insert_device(&mut device("a")).unwrap();
    let err = db.insert_device(&mut device("a")).unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyExists);
    let err = db.update_device(&mut device("b")).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(db.remove_device(&DeviceId::parse("a").unwrap()).unwrap());
    assert!(!db.remove_device(&DeviceId::parse("a").unwrap()).unwrap());
}

#[test]
fn history_is_per_device_in_order_and_outlives_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let db = AppDatabase::open(&dir.path().join("app.sqlite3")).unwrap();
    let mut a = device("a");
    db.insert_device(&mut a).unwrap();
    let entry = |id: &str, action, actor| HistoryEntry {
        at: wa_device_core::app_db::now(),
        device_id: id.into(),
        action,
        actor,
        outcome: Outcome::Ok,
        detail: String::new(),
    };
    db.append_history(&entry("a", HistoryAction::Create, Actor::Desktop))
        .unwrap();
    db.append_history(&entry("b", HistoryAction::Create, Actor::Desktop))
        .unwrap();
    db.append_history(&entry(
        "a",
        HistoryAction::Logout,
        Actor::RestApi("ops".into()),
    ))
    .unwrap();
    db.remove_device(&a.id).unwrap();
    let history = db.history(&a.id).unwrap();
    let actions: Vec<_> = history
        .iter()
        .map(|e| (e.action, e.actor.clone()))
        .collect();
    assert_eq!(
        actions,
        vec![
            (HistoryAction::Create, Actor::Desktop),
            (HistoryAction::Logout, Actor::RestApi("ops".into()))
        ]
    );
}

#[test]
fn pending_wipes_are_journaled_until_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite3");
    let db = AppDatabase::open(&path).unwrap();
    let id = DeviceId::parse("a").unwrap();
    let wipe = PendingWipe {
        device_id: id.clone(),
        delete_device: false,
        unlink_confirmed: false,
        actor: Actor::Desktop,
    };
    db.begin_wipe(&wipe).unwrap();
    // A delete that starts over an unfinished logout keeps "delete".
    db.begin_wipe(&PendingWipe {
        delete_device: true,
        ..wipe.clone()
    })
    .unwrap();
    db.set_wipe_unlink_confirmed(&id).unwrap();
    drop(db);
    let db = AppDatabase::open(&path).unwrap();
    assert_eq!(
        db.pending_wipes().unwrap(),
        vec![PendingWipe {
            delete_device: true,
            unlink_confirmed: true,
            ..wipe
        }]
    );
    db.end_wipe(&id).unwrap();
    assert!(db.pending_wipes().unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = AppDatabase::open(&path).err().unwrap();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("newer"), "{}", err.message);
}
