//! The keyring-backed secret store against the real Secret Service.

use crate::support::{assert_child_test, run_child_test};
use wa_device_core::{ErrorCode, KeyringSecretStore, SecretStore};
use wa_test_support::keyring::test_keyring;

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
fn all_entries_with_a_prefix_are_read_in_one_pass() {
    let store = test_keyring();
    let other_service = test_keyring();
    store.set("device/a", b"secret a").unwrap();
    store.set("device/b", b"secret b").unwrap();
    store.set("api/basic-auth", b"not a device").unwrap();
    other_service
        .set("device/c", b"another installation")
        .unwrap();
    let all = store.get_all("device/", &|_| None).unwrap();
    assert_eq!(all.len(), 2, "{:?}", all.keys().collect::<Vec<_>>());
    assert_eq!(all["device/a"], b"secret a");
    assert_eq!(all["device/b"], b"secret b");
    store.delete("device/a").unwrap();
    assert_eq!(
        store
            .get_all("device/", &|_| None)
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["device/b"]
    );
    for name in ["device/b", "api/basic-auth"] {
        store.delete(name).unwrap();
    }
    other_service.delete("device/c").unwrap();
    assert!(store.get_all("", &|_| None).unwrap().is_empty());
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

#[test]
fn a_missing_entry_reads_as_none() {
    let store = test_keyring();
    assert_eq!(store.get("device/missing").unwrap(), None);
    store.set("device/present", b"x").unwrap();
    assert_eq!(store.get("device/missing").unwrap(), None);
    store.delete("device/present").unwrap();
}

#[test]
fn entries_written_by_the_keyring_crate_load_and_the_other_way_round() {
    let store = test_keyring();
    let old = keyring3::Entry::new(store.service(), "device/old").unwrap();
    old.set_secret(b"written by keyring 3").unwrap();
    assert_eq!(
        store.get("device/old").unwrap(),
        Some(b"written by keyring 3".to_vec())
    );
    // An update replaces the existing item rather than adding a second one
    // (the keyring crate would then call the entry ambiguous).
    store.set("device/old", b"updated").unwrap();
    assert_eq!(old.get_secret().unwrap(), b"updated".to_vec());
    store.delete("device/old").unwrap();
    assert!(matches!(old.get_secret(), Err(keyring3::Error::NoEntry)));

    store.set("device/new", b"written by the store").unwrap();
    let new = keyring3::Entry::new(store.service(), "device/new").unwrap();
    assert_eq!(new.get_secret().unwrap(), b"written by the store".to_vec());
    new.delete_credential().unwrap();
    assert_eq!(store.get("device/new").unwrap(), None);
}

#[test]
fn many_threads_share_one_store() {
    let store = test_keyring();
    std::thread::scope(|scope| {
        for t in 0..16 {
            let store = store.clone();
            scope.spawn(move || {
                for round in 0..5 {
                    let name = format!("device/t{t}");
                    let secret = format!("thread {t} round {round}").into_bytes();
                    store.set(&name, &secret).unwrap();
                    assert_eq!(store.get(&name).unwrap(), Some(secret));
                    // Every thread also writes and reads one shared entry.
                    store.set("device/shared", &[t as u8]).unwrap();
                    let shared = store.get("device/shared").unwrap().unwrap();
                    assert_eq!(shared.len(), 1);
                    assert!(shared[0] < 16);
                }
                store.delete(&format!("device/t{t}")).unwrap();
            });
        }
    });
    for t in 0..16 {
        assert_eq!(store.get(&format!("device/t{t}")).unwrap(), None);
    }
    store.delete("device/shared").unwrap();
    assert_eq!(store.get("device/shared").unwrap(), None);
}

#[test]
fn the_store_reconnects_after_its_connection_is_dropped() {
    let store = test_keyring();
    store.set("device/a", b"before").unwrap();
    store.disconnect();
    assert_eq!(store.get("device/a").unwrap(), Some(b"before".to_vec()));
    store.disconnect();
    store.set("device/a", b"after").unwrap();
    store.disconnect();
    store.delete("device/a").unwrap();
    assert_eq!(store.get("device/a").unwrap(), None);
}

#[test]
fn one_connection_makes_a_read_cheap() {
    // The keyring crate took 13 to 25 ms per read (a new D-Bus connection
    // and a new encrypted session each time). With the shared session a
    // read is one search and one GetSecret round trip. The bound is loose
    // (a loaded debug build on a shared machine) but far below a new
    // session per call.
    let store = test_keyring();
    store.set("device/timed", b"x").unwrap();
    let started = std::time::Instant::now();
    for _ in 0..50 {
        assert!(store.get("device/timed").unwrap().is_some());
    }
    let per_read = started.elapsed() / 50;
    store.delete("device/timed").unwrap();
    assert!(
        per_read < std::time::Duration::from_millis(10),
        "{per_read:?} per read"
    );
}

/// Runs `test` of this binary in a child process whose environment has no
/// D-Bus session bus, so there is no Secret Service to talk to.
pub fn run_without_secret_service(test: &str) {
    run_child_test(test, |exe, args| {
        let mut command = std::process::Command::new(exe);
        command.args(args).env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/wa-device-core-test-bus",
        );
        command
    });
}

#[test]
fn without_secret_service_every_call_is_keyring_unavailable() {
    run_without_secret_service("keyring_store::child_keyring_without_secret_service");
}

#[test]
#[ignore = "child process of without_secret_service_every_call_is_keyring_unavailable"]
fn child_keyring_without_secret_service() {
    assert_child_test();
    let store = KeyringSecretStore::new("wa-device-admin-test-unavailable");
    let get = store.get("device/a").unwrap_err();
    assert_eq!(get.code, ErrorCode::KeyringUnavailable, "{get:?}");
    let set = store.set("device/a", b"secret-value").unwrap_err();
    assert_eq!(set.code, ErrorCode::KeyringUnavailable, "{set:?}");
    assert!(!set.message.contains("secret-value"));
    let delete = store.delete("device/a").unwrap_err();
    assert_eq!(delete.code, ErrorCode::KeyringUnavailable, "{delete:?}");
}

/// The name a test secret carries: `entry=<name>;<rest>`.
fn carried_name(secret: &[u8]) -> Option<String> {
    let (name, _) = std::str::from_utf8(secret)
        .ok()?
        .strip_prefix("entry=")?
        .split_once(';')?;
    Some(name.to_owned())
}

/// Adds an item the way another client could, bypassing the store's
/// one-item-per-name rule.
fn add_raw_item(store: &KeyringSecretStore, username: &str, secret: &[u8]) {
    let service =
        dbus_secret_service::SecretService::connect(dbus_secret_service::EncryptionType::Dh)
            .unwrap();
    service
        .get_default_collection()
        .unwrap()
        .create_item(
            "raw item",
            std::collections::HashMap::from([
                ("service", store.service()),
                ("username", username),
                ("target", "default"),
            ]),
            secret,
            false,
            "text/plain",
        )
        .unwrap();
}

/// Whether test entry `i` carries its name.
type CarriesName = fn(usize) -> bool;

#[test]
fn a_read_of_all_entries_names_them_by_secret_or_attribute_and_leaves_out_duplicates() {
    // (entries, which carry their name): 3 and 70 without (the names are
    // read on one connection, then on several), 70 with most carrying it.
    let rounds: [(usize, CarriesName); 3] = [(3, |_| false), (70, |_| false), (70, |i| i % 3 != 0)];
    for (round, (count, carries)) in rounds.into_iter().enumerate() {
        let store = test_keyring();
        let secret_of = |i: usize| {
            if carries(i) {
                format!("entry=device/d{i};secret {i}")
            } else {
                format!("secret {i}")
            }
        };
        for i in 0..count {
            store
                .set(&format!("device/d{i}"), secret_of(i).as_bytes())
                .unwrap();
        }
        // A second item named d1: which of the two is right cannot be
        // known, so neither is used.
        add_raw_item(&store, "device/d1", b"another secret");
        let mut left_out = vec![1];
        if round == 2 {
            // A secret that says it is d2's, under another name: the name
            // it carries counts (its attribute is not read), so d2 has two
            // entries and `device/elsewhere` none.
            add_raw_item(&store, "device/elsewhere", b"entry=device/d2;stray");
            left_out.push(2);
        }
        let mut seen: Vec<_> = store
            .get_all("device/", &carried_name)
            .unwrap()
            .into_iter()
            .collect();
        seen.sort();
        let mut expected: Vec<(String, Vec<u8>)> = (0..count)
            .filter(|i| !left_out.contains(i))
            .map(|i| (format!("device/d{i}"), secret_of(i).into_bytes()))
            .collect();
        expected.sort();
        assert_eq!(seen, expected, "round {round}");
        for i in 0..count {
            store.delete(&format!("device/d{i}")).unwrap();
        }
        store.delete("device/elsewhere").unwrap();
        assert!(store.get_all("", &|_| None).unwrap().is_empty());
    }
}
