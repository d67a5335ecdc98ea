//! Conformance of the per-device session store to the whatsapp-rust storage
//! contract (`wacore::store::traits::Backend`). The reference semantics are
//! wacore's own `InMemoryBackend`: one scripted sequence runs against both and
//! every observable result must match. Further tests cover what only a file
//! store has: persistence, secrets kept out of the file, file modes and
//! broken files.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wa_device_core::session::store::{SessionStore, secret_name};
use wa_device_core::{DeviceId, ErrorCode, MemorySecretStore, SecretStore};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::libsignal::protocol::KeyPair;
use wacore::store::error::StoreError;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, PendingInboundKey, PendingInboundRow, SignalStore, TcTokenEntry,
};
use wacore::store::{CachedNoiseCert, CachedServerCertChain, Device, InMemoryBackend};
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::waproto::whatsapp::ADVSignedDeviceIdentity;

fn device_id() -> DeviceId {
    DeviceId::parse("conformance").unwrap()
}

// ---------------------------------------------------------------------------
// Transcript
// ---------------------------------------------------------------------------

/// Every observable result of a script: `#<n> <call as written> -> <result>`,
/// one line per call, or per field for a device.
#[derive(Default)]
struct Transcript {
    lines: Vec<String>,
    calls: usize,
}

impl Transcript {
    fn record<T: Debug>(&mut self, call: &str, result: Result<T, StoreError>) {
        let shown = match result {
            Ok(value) => format!("{value:?}"),
            Err(err) => format!("Err({err:?})"),
        };
        self.record_each(call, Ok(vec![shown]));
    }

    fn record_each(&mut self, call: &str, result: Result<Vec<String>, StoreError>) {
        // The compiler's pretty-printer wraps long calls.
        let call = call.split_whitespace().collect::<Vec<_>>().join(" ");
        let n = self.calls;
        self.calls += 1;
        match result {
            Ok(items) => {
                for item in items {
                    self.lines.push(format!("#{n} {call} -> {item}"));
                }
            }
            Err(err) => self.lines.push(format!("#{n} {call} -> Err({err:?})")),
        }
    }
}

/// Records `store.method(args)`'s result under its own source text, optionally
/// reshaped first (unordered collections sorted); `device:` records a loaded
/// device one field per line.
macro_rules! rec {
    ($t:ident, device: $call:expr) => {
        $t.record_each(stringify!($call), $call.await.map(device_fields))
    };
    ($t:ident, $call:expr) => {
        $t.record(stringify!($call), $call.await)
    };
    ($t:ident, $call:expr, $shape:expr) => {
        $t.record(stringify!($call), $call.await.map($shape))
    };
}

/// Order is not part of the contract for list results.
fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

fn sorted_by_lid(mut entries: Vec<LidPnMappingEntry>) -> Vec<LidPnMappingEntry> {
    entries.sort_by(|a, b| a.lid.cmp(&b.lid));
    entries
}

fn ordered_macs(macs: std::collections::HashMap<[u8; 32], Vec<u8>>) -> BTreeMap<[u8; 32], Vec<u8>> {
    macs.into_iter().collect()
}

/// `HashState`'s Debug prints a HashMap in random order.
fn hash_state(state: HashState) -> (u64, Vec<u8>, BTreeMap<String, Vec<u8>>, bool) {
    (
        state.version,
        state.hash.to_vec(),
        state.index_value_map.into_iter().collect(),
        state.mac_mismatch_fatal,
    )
}

/// `Device` has no Debug; its serialized form covers every persisted field,
/// the key pairs included.
fn device_fields(device: Option<Device>) -> Vec<String> {
    let Some(device) = device else {
        return vec!["None".into()];
    };
    match serde_json::to_value(&device).unwrap() {
        serde_json::Value::Object(fields) => fields
            .into_iter()
            .map(|(name, value)| format!("{name} = {value}"))
            .collect(),
        other => panic!("a device serializes as an object, not {other}"),
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

fn has_generated_secrets(device: &Device) -> bool {
    let pairs = [
        &device.noise_key,
        &device.identity_key,
        &device.signed_pre_key,
    ];
    pairs
        .iter()
        .all(|pair| !is_zero(pair.private_key.serialize().as_ref()))
        && !is_zero(&device.adv_secret_key)
}

// ---------------------------------------------------------------------------
// The script
// ---------------------------------------------------------------------------

const ALICE: &str = "15550000001@s.whatsapp.net";
const ALICE_DEV3: &str = "15550000001:3@s.whatsapp.net";
const BOB_LID: &str = "100000000000002@lid";
const BOB_LID_DEV7: &str = "100000000000002:7@lid";
const NOBODY: &str = "19990000000@s.whatsapp.net";

/// A user and one whose number starts with it: state of the longer one must
/// not count for the shorter.
const CAROL_USER: &str = "4915100000001";
const CAROL_DEV5: &str = "4915100000001:5@s.whatsapp.net";
const CAROL_LID: &str = "4915100000001@lid";
const LONGER_USER: &str = "49151000000012";
const LONGER_USER_JID: &str = "49151000000012@s.whatsapp.net";

const GROUP_1: &str = "120363000000000001@g.us";
const GROUP_2: &str = "120363000000000002@g.us";
const GROUP_3: &str = "120363000000000003@g.us";
const SENDER_KEY_1: &str = "120363000000000001@g.us::15550000001::3";
const SENDER_KEY_2: &str = "120363000000000001@g.us::100000000000002::7";
const DEVICE_A: &str = "15550000001:3@s.whatsapp.net";
const DEVICE_B: &str = "100000000000002:7@lid";
const DEVICE_C: &str = "100000000000003@lid";

const REGULAR: &str = "regular";
const CRITICAL: &str = "critical_block";

const CHAT: &str = "15550000001@s.whatsapp.net";
const OTHER_CHAT: &str = "120363000000000001@g.us";
const SENDER: &str = "100000000000002@lid";
const OTHER_SENDER: &str = "100000000000003@lid";

/// Sent-message and pending-inbound rows are stamped with the current time by
/// the store itself: sweeps use cutoffs no clock can come near.
const LONG_AGO: i64 = 1_000_000_000; // 2001
const FAR_FUTURE: i64 = 4_102_444_800; // 2100

/// App-state sync key ids, set in the order B then A: "latest" is the most
/// recently set, not the greatest.
const SYNC_KEY_B: &[u8] = &[0, 0, 0, 0, 0xB0, 0x0B];
const SYNC_KEY_A: &[u8] = &[0, 0, 0, 0, 0x0A, 0xA0];

fn index(i: u8) -> [u8; 32] {
    [i; 32]
}

fn mac(i: u8, value: u8) -> AppStateMutationMAC {
    AppStateMutationMAC {
        index_mac: index(i).to_vec(),
        value_mac: vec![value; 32],
    }
}

fn sync_key(fill: u8, timestamp: i64) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![fill; 32],
        fingerprint: vec![fill, 1, 2, 3],
        timestamp,
    }
}

fn hash(version: u64, fill: u8, values: &[(&str, u8)], fatal: bool) -> HashState {
    HashState {
        version,
        hash: [fill; 128],
        index_value_map: values
            .iter()
            .map(|(k, v)| (k.to_string(), vec![*v; 32]))
            .collect(),
        mac_mismatch_fatal: fatal,
    }
}

fn mapping(lid: &str, phone: &str, created: i64, updated: i64, source: &str) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: created,
        updated_at: updated,
        learning_source: source.into(),
    }
}

fn device_list(user: &str, devices: Vec<DeviceInfo>, timestamp: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices,
        timestamp,
        phash: None,
        raw_id: None,
    }
}

fn tc(token: &[u8], token_timestamp: i64, sender_timestamp: Option<i64>) -> TcTokenEntry {
    TcTokenEntry {
        token: token.to_vec(),
        token_timestamp,
        sender_timestamp,
    }
}

fn secret(
    chat: &str,
    sender: &str,
    msg_id: &str,
    fill: u8,
    expires_at: i64,
    message_ts: i64,
) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: chat.into(),
        sender: sender.into(),
        msg_id: msg_id.into(),
        secret: [fill; 32],
        expires_at,
        message_ts,
    }
}

fn shared(address: &str) -> Arc<str> {
    Arc::from(address)
}

/// A paired-looking device with every persisted field away from its default.
fn fixture_device() -> Device {
    let mut device = Device::new();
    device.pn = Some("15551230000:12@s.whatsapp.net".parse().unwrap());
    device.lid = Some("100000000000009:12@lid".parse().unwrap());
    device.push_name = "Conformance".into();
    device.account = Some(Arc::new(ADVSignedDeviceIdentity {
        details: Some(vec![1, 2, 3]),
        account_signature_key: Some(vec![4; 32]),
        account_signature: Some(vec![5; 64]),
        device_signature: Some(vec![6; 64]),
    }));
    device.app_version_last_fetched_ms = 1_700_000_000_000;
    device.edge_routing_info = Some(vec![8, 9, 10]);
    device.props_hash = Some("props-hash".into());
    device.next_pre_key_id = 812;
    device.first_unupload_pre_key_id = 800;
    device.server_has_prekeys = true;
    device.nct_salt = Some(vec![7; 16]);
    device.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert {
            key: [11; 32],
            not_before: 1_600_000_000,
            not_after: 1_900_000_000,
        },
        leaf: CachedNoiseCert {
            key: [12; 32],
            not_before: 1_650_000_000,
            not_after: 1_800_000_000,
        },
    });
    device.login_counter = 5;
    device.lid_migrated = true;
    device.read_receipts_disabled = true;
    device
}

/// Touches every method of the five traits except `snapshot_db` and
/// `resource_report`, in the order a client would (the device first), and
/// leaves data in every area for [`observe`].
async fn script<B: Backend>(store: &B, fixture: &Device) -> Vec<String> {
    let mut t = Transcript::default();

    // --- DeviceStore ---
    rec!(t, store.exists());
    rec!(t, device: store.load());
    rec!(t, store.load_all_signed_prekeys(), sorted);
    rec!(t, store.create());
    rec!(t, store.exists());
    rec!(t, store.load(), |d: Option<Device>| d
        .map(|d| has_generated_secrets(&d)));
    rec!(t, store.save(fixture));
    rec!(t, device: store.load());
    let mut renamed = fixture.clone();
    renamed.push_name = "Renamed".into();
    renamed.login_counter = 6;
    renamed.edge_routing_info = None;
    rec!(t, store.save(&renamed));
    rec!(t, device: store.load());
    rec!(t, store.save(fixture));

    // --- Identities ---
    rec!(t, store.load_identity(ALICE));
    rec!(t, store.put_identity(ALICE, [1; 32]));
    rec!(t, store.put_identity(ALICE, [2; 32]));
    rec!(t, store.load_identity(ALICE));
    let identities = [
        (shared(ALICE_DEV3), [3; 32]),
        (shared(BOB_LID), [4; 32]),
        (shared(ALICE), [9; 32]),
        // A repeat inside one batch wins like a later write.
        (shared(ALICE), [5; 32]),
    ];
    rec!(t, store.put_identities_batch(&identities));
    rec!(t, store.put_identities_batch(&[]));
    rec!(t, store.load_identity(ALICE));
    rec!(t, store.load_identity(ALICE_DEV3));
    rec!(t, store.load_identity(BOB_LID));
    rec!(t, store.delete_identity(BOB_LID));
    rec!(t, store.delete_identity(NOBODY));
    rec!(t, store.load_identity(BOB_LID));

    // --- Sessions ---
    rec!(t, store.get_session(ALICE));
    rec!(t, store.has_session(ALICE));
    rec!(t, store.put_session(ALICE, b"session-1"));
    rec!(t, store.put_session(ALICE, b"session-2"));
    rec!(t, store.get_session(ALICE));
    rec!(t, store.has_session(ALICE));
    let sessions = [
        (shared(BOB_LID_DEV7), Bytes::from_static(b"bob-session")),
        (shared(ALICE), Bytes::from_static(b"session-3-superseded")),
        (shared(ALICE), Bytes::from_static(b"session-3")),
    ];
    rec!(t, store.put_sessions_batch(&sessions));
    rec!(t, store.put_sessions_batch(&[]));
    rec!(t, store.get_session(ALICE));
    rec!(t, store.get_session(BOB_LID_DEV7));
    rec!(t, store.delete_session(BOB_LID_DEV7));
    rec!(t, store.delete_session(NOBODY));
    rec!(t, store.has_session(BOB_LID_DEV7));
    rec!(t, store.get_session(BOB_LID_DEV7));

    // --- Signal state per user: `user@…` and `user:…` match, `user2@…` not ---
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.put_session(LONGER_USER_JID, b"longer"));
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.has_signal_state_for_user(LONGER_USER));
    // No wildcards: `_` and `%` stand for themselves.
    rec!(t, store.has_signal_state_for_user("4915100000001_"));
    rec!(t, store.has_signal_state_for_user("4915%"));
    rec!(t, store.put_identity(CAROL_DEV5, [6; 32]));
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.delete_identity(CAROL_DEV5));
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.put_session(CAROL_LID, b"carol"));
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.delete_session(CAROL_LID));
    rec!(t, store.has_signal_state_for_user(CAROL_USER));
    rec!(t, store.has_signal_state_for_user("15550000001"));

    // --- Pre-keys ---
    rec!(t, store.get_max_prekey_id());
    rec!(t, store.load_prekey(1));
    rec!(t, store.store_prekey(1, b"prekey-1", false));
    rec!(t, store.store_prekey(2, b"prekey-2", true));
    rec!(t, store.store_prekey(1, b"prekey-1b", true));
    let batch = [
        (3, Bytes::from_static(b"prekey-3")),
        (4, Bytes::from_static(b"prekey-4")),
        (10, Bytes::from_static(b"prekey-10")),
        (4, Bytes::from_static(b"prekey-4b")),
    ];
    rec!(t, store.store_prekeys_batch(&batch, false));
    rec!(
        t,
        store.store_prekeys_batch(&[(5, Bytes::from_static(b"prekey-5"))], true)
    );
    rec!(t, store.store_prekeys_batch(&[], true));
    rec!(t, store.load_prekey(1));
    rec!(t, store.load_prekey(2));
    rec!(t, store.load_prekeys_batch(&[10, 99, 1, 4]), sorted);
    rec!(t, store.load_prekeys_batch(&[]), sorted);
    rec!(t, store.get_max_prekey_id());
    rec!(t, store.remove_prekey(10));
    rec!(t, store.remove_prekey(77));
    // 10 was consumed after an upload snapshot that still listed it; 42 never existed.
    rec!(t, store.mark_prekeys_uploaded(&[3, 10, 42]));
    rec!(t, store.mark_prekeys_uploaded(&[]));
    rec!(t, store.load_prekey(10));
    rec!(t, store.load_prekey(42));
    rec!(t, store.load_prekey(3));
    rec!(
        t,
        store.load_prekeys_batch(&[1, 2, 3, 4, 5, 10, 42]),
        sorted
    );
    rec!(t, store.get_max_prekey_id());

    // --- Signed pre-keys ---
    rec!(t, store.load_signed_prekey(1));
    rec!(t, store.store_signed_prekey(1, b"signed-1"));
    rec!(t, store.store_signed_prekey(2, b"signed-2"));
    rec!(t, store.store_signed_prekey(1, b"signed-1b"));
    rec!(t, store.load_signed_prekey(1));
    rec!(t, store.load_signed_prekey(2));
    rec!(t, store.load_all_signed_prekeys(), sorted);
    // Saving the device must keep the records stored next to its secrets.
    rec!(t, store.save(fixture));
    rec!(t, store.load_all_signed_prekeys(), sorted);
    rec!(t, device: store.load());
    rec!(t, store.remove_signed_prekey(2));
    rec!(t, store.remove_signed_prekey(9));
    rec!(t, store.load_signed_prekey(2));
    rec!(t, store.load_all_signed_prekeys(), sorted);

    // --- Sender keys ---
    rec!(t, store.get_sender_key(SENDER_KEY_1));
    rec!(t, store.put_sender_key(SENDER_KEY_1, b"sender-key-1"));
    rec!(t, store.put_sender_key(SENDER_KEY_1, b"sender-key-1b"));
    rec!(t, store.get_sender_key(SENDER_KEY_1));
    let sender_keys = [
        (shared(SENDER_KEY_2), Bytes::from_static(b"sender-key-2")),
        (shared(SENDER_KEY_1), Bytes::from_static(b"sender-key-1c")),
    ];
    rec!(t, store.put_sender_keys_batch(&sender_keys));
    rec!(t, store.put_sender_keys_batch(&[]));
    rec!(t, store.get_sender_key(SENDER_KEY_1));
    rec!(t, store.get_sender_key(SENDER_KEY_2));
    rec!(t, store.delete_sender_key(SENDER_KEY_2));
    rec!(t, store.delete_sender_key(NOBODY));
    rec!(t, store.get_sender_key(SENDER_KEY_2));

    // --- App-state sync keys ---
    rec!(t, store.get_latest_sync_key_id());
    rec!(t, store.get_sync_key(SYNC_KEY_B));
    rec!(t, store.set_sync_key(SYNC_KEY_B, sync_key(0xB1, 100)));
    rec!(t, store.get_latest_sync_key_id());
    rec!(t, store.set_sync_key(SYNC_KEY_A, sync_key(0xA1, 200)));
    rec!(t, store.get_latest_sync_key_id());
    rec!(t, store.set_sync_key(SYNC_KEY_B, sync_key(0xB2, 300)));
    rec!(t, store.get_latest_sync_key_id());
    rec!(t, store.get_sync_key(SYNC_KEY_A));
    rec!(t, store.get_sync_key(SYNC_KEY_B));
    rec!(t, store.get_sync_key(&[9, 9, 9]));
    rec!(t, store.set_sync_key(SYNC_KEY_A, sync_key(0xA2, 400)));
    rec!(t, store.get_latest_sync_key_id());

    // --- App-state versions ---
    rec!(t, store.get_version(REGULAR), hash_state);
    rec!(
        t,
        store.set_version(REGULAR, hash(3, 7, &[("a", 1), ("b", 2)], false))
    );
    rec!(t, store.set_version(REGULAR, hash(4, 8, &[("c", 3)], true)));
    rec!(t, store.set_version(CRITICAL, hash(1, 9, &[], false)));
    rec!(t, store.get_version(REGULAR), hash_state);
    rec!(t, store.get_version(CRITICAL), hash_state);
    rec!(t, store.get_version("never_synced"), hash_state);

    // --- Mutation MACs ---
    rec!(
        t,
        store.put_mutation_macs(REGULAR, 4, &[mac(1, 10), mac(2, 20), mac(3, 30)])
    );
    rec!(t, store.put_mutation_macs(CRITICAL, 1, &[mac(1, 99)]));
    rec!(t, store.put_mutation_macs(REGULAR, 5, &[mac(2, 21)]));
    rec!(t, store.put_mutation_macs(REGULAR, 6, &[]));
    rec!(t, store.get_mutation_mac(REGULAR, &index(2)));
    rec!(t, store.get_mutation_mac(REGULAR, &index(9)));
    rec!(t, store.get_mutation_mac("never_synced", &index(1)));
    rec!(
        t,
        store.get_mutation_macs(REGULAR, &[index(1), index(2), index(9)]),
        ordered_macs
    );
    rec!(t, store.get_mutation_macs(REGULAR, &[]), ordered_macs);
    rec!(
        t,
        store.delete_mutation_macs(REGULAR, &[index(1).to_vec(), index(9).to_vec()])
    );
    rec!(t, store.delete_mutation_macs(REGULAR, &[]));
    rec!(t, store.get_mutation_mac(REGULAR, &index(1)));
    rec!(
        t,
        store.get_mutation_macs(CRITICAL, &[index(1)]),
        ordered_macs
    );
    rec!(t, store.clear_mutation_macs(REGULAR));
    rec!(t, store.clear_mutation_macs("never_synced"));
    rec!(
        t,
        store.get_mutation_macs(REGULAR, &[index(1), index(2), index(3)]),
        ordered_macs
    );
    rec!(
        t,
        store.get_mutation_macs(CRITICAL, &[index(1)]),
        ordered_macs
    );
    rec!(t, store.put_mutation_macs(REGULAR, 7, &[mac(4, 40)]));

    // --- Sender-key devices ---
    rec!(t, store.get_sender_key_devices(GROUP_1), sorted);
    rec!(
        t,
        store.set_sender_key_status(GROUP_1, &[(DEVICE_A, true), (DEVICE_B, false)])
    );
    rec!(
        t,
        store.set_sender_key_status(GROUP_1, &[(DEVICE_B, true), (DEVICE_C, false)])
    );
    rec!(
        t,
        store.set_sender_key_status(GROUP_2, &[(DEVICE_A, false), (DEVICE_C, true)])
    );
    rec!(t, store.set_sender_key_status(GROUP_2, &[]));
    rec!(t, store.get_sender_key_devices(GROUP_1), sorted);
    rec!(t, store.get_sender_key_devices(GROUP_2), sorted);
    rec!(t, store.delete_sender_key_device_rows(&[DEVICE_A, NOBODY]));
    rec!(t, store.delete_sender_key_device_rows(&[]));
    rec!(t, store.get_sender_key_devices(GROUP_1), sorted);
    rec!(t, store.get_sender_key_devices(GROUP_2), sorted);
    rec!(t, store.clear_sender_key_devices(GROUP_1));
    rec!(t, store.clear_sender_key_devices(GROUP_3));
    rec!(t, store.get_sender_key_devices(GROUP_1), sorted);
    rec!(t, store.get_sender_key_devices(GROUP_2), sorted);
    rec!(t, store.set_sender_key_status(GROUP_3, &[(DEVICE_A, true)]));
    rec!(t, store.clear_all_sender_key_devices());
    rec!(t, store.get_sender_key_devices(GROUP_2), sorted);
    rec!(t, store.get_sender_key_devices(GROUP_3), sorted);
    rec!(t, store.set_sender_key_status(GROUP_2, &[(DEVICE_B, true)]));

    // --- LID-PN mappings ---
    // An update repeats `created_at`: whether a store keeps the first one
    // (the sqlite store) or takes the new one (the in-memory store) is not
    // settled by the contract.
    rec!(t, store.get_lid_mapping("100000000000001"));
    rec!(t, store.get_pn_mapping("15550000001"));
    rec!(
        t,
        store.put_lid_mapping(&mapping(
            "100000000000001",
            "15550000001",
            100,
            100,
            "usync"
        ))
    );
    rec!(
        t,
        store.put_lid_mapping(&mapping(
            "100000000000001",
            "15550000001",
            100,
            200,
            "peer_pn_message"
        ))
    );
    rec!(t, store.get_lid_mapping("100000000000001"));
    rec!(t, store.get_pn_mapping("15550000001"));
    let mappings = [
        mapping("100000000000002", "15550000002", 300, 300, "usync"),
        mapping("100000000000003", "15550000003", 310, 310, "usync"),
    ];
    rec!(t, store.put_lid_mappings(&mappings));
    rec!(t, store.put_lid_mappings(&[]));
    rec!(t, store.get_pn_mapping("15550000002"));
    rec!(t, store.get_all_lid_mappings(), sorted_by_lid);
    // The LID moves to another phone; what the old phone then maps to is
    // where the stores knowingly differ, so it is not asked.
    rec!(
        t,
        store.put_lid_mapping(&mapping(
            "100000000000001",
            "15550000004",
            100,
            400,
            "usync"
        ))
    );
    rec!(t, store.get_lid_mapping("100000000000001"));
    rec!(t, store.get_pn_mapping("15550000004"));
    // A phone learns a second, newer LID.
    rec!(
        t,
        store.put_lid_mapping(&mapping(
            "100000000000005",
            "15550000002",
            500,
            500,
            "usync"
        ))
    );
    rec!(t, store.get_pn_mapping("15550000002"));
    rec!(t, store.get_lid_mapping("100000000000002"));
    rec!(t, store.get_all_lid_mappings(), sorted_by_lid);

    // --- Base keys ---
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-1"));
    rec!(t, store.save_base_key(ALICE, "M1", b"base-1"));
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-1"));
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-2"));
    rec!(t, store.has_same_base_key(ALICE, "M2", b"base-1"));
    rec!(t, store.has_same_base_key(BOB_LID, "M1", b"base-1"));
    rec!(t, store.save_base_key(ALICE, "M1", b"base-2"));
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-1"));
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-2"));
    rec!(t, store.delete_base_key(ALICE, "M1"));
    rec!(t, store.delete_base_key(ALICE, "never"));
    rec!(t, store.has_same_base_key(ALICE, "M1", b"base-2"));
    rec!(t, store.save_base_key(BOB_LID, "M3", b"base-3"));

    // --- Device registry ---
    rec!(t, store.get_devices("15550000001"));
    let first = DeviceListRecord {
        phash: Some("2:abcdef".into()),
        raw_id: Some(7),
        ..device_list(
            "15550000001",
            vec![
                DeviceInfo::new(0, None),
                DeviceInfo::new(3, Some(2)).with_hosting(true),
            ],
            100,
        )
    };
    rec!(t, store.update_device_list(first));
    rec!(t, store.get_devices("15550000001"));
    rec!(
        t,
        store.update_device_list(device_list(
            "15550000001",
            vec![DeviceInfo::new(0, None)],
            200
        ))
    );
    rec!(t, store.get_devices("15550000001"));
    let lists = vec![
        device_list(
            "100000000000002",
            vec![DeviceInfo::new(0, Some(0)), DeviceInfo::new(7, Some(1))],
            300,
        ),
        device_list("100000000000003", vec![], 310),
    ];
    rec!(t, store.update_device_lists(lists));
    rec!(t, store.update_device_lists(vec![]));
    rec!(t, store.get_devices("100000000000002"));
    rec!(t, store.get_devices("100000000000003"));
    rec!(t, store.delete_devices("100000000000002"));
    rec!(t, store.delete_devices("never"));
    rec!(t, store.get_devices("100000000000002"));

    // --- Group metadata ---
    rec!(t, store.get_group_metadata(GROUP_1));
    rec!(t, store.put_group_metadata(GROUP_1, b"metadata-v1"));
    rec!(t, store.put_group_metadata(GROUP_1, b"metadata-v2"));
    rec!(t, store.get_group_metadata(GROUP_1));
    rec!(t, store.put_group_metadata(GROUP_2, b"metadata-g2"));
    rec!(t, store.delete_group_metadata(GROUP_1));
    rec!(t, store.delete_group_metadata(GROUP_3));
    rec!(t, store.get_group_metadata(GROUP_1));
    rec!(t, store.get_group_metadata(GROUP_2));

    // --- Trusted-contact tokens ---
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.get_all_tc_token_jids(), sorted);
    rec!(
        t,
        store.put_tc_token("j1@lid", &tc(&[1, 2], 1000, Some(900)))
    );
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.put_tc_token("j1@lid", &tc(&[3], 1100, None)));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.store_received_tc_token("j1@lid", &[4], 1050));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.store_received_tc_token("j1@lid", &[5], 1100));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.store_received_tc_token("j1@lid", &[6], 1200));
    rec!(t, store.touch_tc_token_sender_timestamp("j1@lid", 1300));
    rec!(t, store.touch_tc_token_sender_timestamp("j1@lid", 1250));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.store_received_tc_token("j1@lid", &[7], 1400));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.touch_tc_token_sender_timestamp("j2@lid", 5000));
    rec!(t, store.get_tc_token("j2@lid"));
    // A placeholder never blocks the first real token, however old.
    rec!(t, store.store_received_tc_token("j2@lid", &[8], 4000));
    rec!(t, store.get_tc_token("j2@lid"));
    rec!(t, store.store_received_tc_token("j3@lid", &[9], 4000));
    rec!(t, store.get_tc_token("j3@lid"));
    rec!(t, store.delete_tc_token("j3@lid"));
    rec!(t, store.delete_tc_token("never@lid"));
    rec!(t, store.get_tc_token("j3@lid"));
    rec!(t, store.get_all_tc_token_jids(), sorted);
    // Expiry at token cutoff 2000, sender cutoff 3000 (both inclusive-live).
    rec!(
        t,
        store.put_tc_token("token-at-cutoff@lid", &tc(&[1], 2000, None))
    );
    rec!(
        t,
        store.put_tc_token("token-stale@lid", &tc(&[1], 1999, None))
    );
    rec!(
        t,
        store.put_tc_token("sender-at-cutoff@lid", &tc(&[1], 1, Some(3000)))
    );
    rec!(
        t,
        store.put_tc_token("both-stale@lid", &tc(&[1], 1, Some(2999)))
    );
    rec!(
        t,
        store.put_tc_token("empty-token@lid", &tc(&[], 9999, None))
    );
    rec!(
        t,
        store.touch_tc_token_sender_timestamp("fresh-placeholder@lid", 3500)
    );
    rec!(t, store.delete_expired_tc_tokens(2000, 3000));
    rec!(t, store.get_all_tc_token_jids(), sorted);
    rec!(t, store.delete_expired_tc_tokens(2000, 3000));

    // --- Sent messages ---
    rec!(t, store.take_sent_message(CHAT, "m1"));
    rec!(t, store.store_sent_message(CHAT, "m1", b"payload-1"));
    rec!(t, store.store_sent_message(CHAT, "m2", b"payload-2"));
    rec!(t, store.store_sent_message(CHAT, "m1", b"payload-1b"));
    rec!(
        t,
        store.store_sent_message(OTHER_CHAT, "m1", b"payload-other")
    );
    rec!(t, store.take_sent_message(CHAT, "m1"));
    rec!(t, store.take_sent_message(CHAT, "m1"));
    rec!(t, store.delete_expired_sent_messages(LONG_AGO));
    rec!(t, store.take_sent_message(OTHER_CHAT, "m1"));
    rec!(t, store.delete_expired_sent_messages(FAR_FUTURE));
    rec!(t, store.take_sent_message(CHAT, "m2"));
    rec!(t, store.store_sent_message(CHAT, "m3", b"payload-3"));

    // --- Pending inbound ---
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i1"));
    rec!(
        t,
        store.store_pending_inbound(CHAT, SENDER, "i1", b"inbound-a")
    );
    rec!(
        t,
        store.store_pending_inbound(CHAT, SENDER, "i1", b"inbound-a2")
    );
    rec!(
        t,
        store.store_pending_inbound(CHAT, OTHER_SENDER, "i1", b"inbound-b")
    );
    rec!(
        t,
        store.store_pending_inbound(OTHER_CHAT, SENDER, "i1", b"inbound-c")
    );
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i1"));
    rec!(t, store.get_pending_inbound(CHAT, OTHER_SENDER, "i1"));
    rec!(t, store.get_pending_inbound(OTHER_CHAT, SENDER, "i1"));
    let rows = [
        PendingInboundRow {
            chat: CHAT,
            sender: SENDER,
            id: "i2",
            message: b"inbound-d",
        },
        PendingInboundRow {
            chat: CHAT,
            sender: SENDER,
            id: "i3",
            message: b"inbound-e",
        },
    ];
    rec!(t, store.store_pending_inbound_batch(&rows));
    rec!(t, store.store_pending_inbound_batch(&[]));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i2"));
    rec!(t, store.delete_pending_inbound(CHAT, OTHER_SENDER, "i1"));
    rec!(t, store.delete_pending_inbound(CHAT, OTHER_SENDER, "never"));
    rec!(t, store.get_pending_inbound(CHAT, OTHER_SENDER, "i1"));
    let keys = [
        PendingInboundKey {
            chat: CHAT,
            sender: SENDER,
            id: "i2",
        },
        PendingInboundKey {
            chat: CHAT,
            sender: SENDER,
            id: "never",
        },
    ];
    rec!(t, store.delete_pending_inbound_batch(&keys));
    rec!(t, store.delete_pending_inbound_batch(&[]));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i2"));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i3"));
    rec!(t, store.delete_expired_pending_inbound(LONG_AGO));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i1"));
    rec!(t, store.delete_expired_pending_inbound(FAR_FUTURE));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i3"));
    rec!(
        t,
        store.store_pending_inbound(CHAT, SENDER, "i4", b"inbound-f")
    );

    // --- Message secrets ---
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m1"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m1"));
    rec!(t, store.put_msg_secret(CHAT, SENDER, "m1", &[1; 32]));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m1"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m1"));
    let first_batch = vec![
        // Never-expiring m1 stays never-expiring.
        secret(CHAT, SENDER, "m1", 2, 500, 100),
        secret(CHAT, SENDER, "m2", 3, 500, 100),
        // A repeat inside one batch merges like a later write.
        secret(CHAT, SENDER, "m2", 4, 400, 0),
        secret(CHAT, SENDER, "m3", 5, 600, 50),
        secret(CHAT, OTHER_SENDER, "m3", 6, 0, 70),
    ];
    rec!(t, store.put_msg_secrets(first_batch));
    let second_batch = vec![
        secret(CHAT, SENDER, "m3", 7, 700, 40),
        // An expiring write does not shorten a never-expiring row.
        secret(CHAT, OTHER_SENDER, "m3", 8, 800, 90),
    ];
    rec!(t, store.put_msg_secrets(second_batch));
    rec!(t, store.put_msg_secrets(vec![]));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m1"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m2"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m3"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, OTHER_SENDER, "m3"));
    rec!(t, store.get_msg_secret_with_ts(OTHER_CHAT, SENDER, "m3"));
    rec!(t, store.delete_expired_msg_secrets(499));
    // A deadline equal to the cutoff has passed.
    rec!(t, store.delete_expired_msg_secrets(500));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m2"));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m3"));
    rec!(t, store.delete_expired_msg_secrets(FAR_FUTURE));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m3"));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m1"));
    rec!(t, store.get_msg_secret(CHAT, OTHER_SENDER, "m3"));
    rec!(
        t,
        store.put_msg_secrets(vec![secret(CHAT, SENDER, "m4", 9, FAR_FUTURE + 1, 1)])
    );

    rec!(t, store.exists());
    rec!(t, device: store.load());
    t.lines
}

/// Reads back a sample of what [`script`] leaves in every area, without
/// writing (except `take_sent_message`, which is the only read of that area).
async fn observe<B: Backend>(store: &B) -> Vec<String> {
    let mut t = Transcript::default();
    rec!(t, store.exists());
    rec!(t, device: store.load());
    rec!(t, store.load_all_signed_prekeys(), sorted);
    rec!(t, store.load_identity(ALICE));
    rec!(t, store.load_identity(ALICE_DEV3));
    rec!(t, store.load_identity(BOB_LID));
    rec!(t, store.get_session(ALICE));
    rec!(t, store.get_session(LONGER_USER_JID));
    rec!(t, store.has_signal_state_for_user("15550000001"));
    rec!(
        t,
        store.load_prekeys_batch(&[1, 2, 3, 4, 5, 10, 42]),
        sorted
    );
    rec!(t, store.get_max_prekey_id());
    rec!(t, store.get_sender_key(SENDER_KEY_1));
    rec!(t, store.get_sender_key(SENDER_KEY_2));
    rec!(t, store.get_latest_sync_key_id());
    rec!(t, store.get_sync_key(SYNC_KEY_A));
    rec!(t, store.get_sync_key(SYNC_KEY_B));
    rec!(t, store.get_version(REGULAR), hash_state);
    rec!(t, store.get_version(CRITICAL), hash_state);
    rec!(
        t,
        store.get_mutation_macs(REGULAR, &[index(1), index(2), index(4)]),
        ordered_macs
    );
    rec!(
        t,
        store.get_mutation_macs(CRITICAL, &[index(1)]),
        ordered_macs
    );
    rec!(t, store.get_sender_key_devices(GROUP_2), sorted);
    rec!(t, store.get_all_lid_mappings(), sorted_by_lid);
    rec!(t, store.get_pn_mapping("15550000002"));
    rec!(t, store.has_same_base_key(BOB_LID, "M3", b"base-3"));
    rec!(t, store.get_devices("15550000001"));
    rec!(t, store.get_devices("100000000000003"));
    rec!(t, store.get_devices("100000000000002"));
    rec!(t, store.get_group_metadata(GROUP_2));
    rec!(t, store.get_all_tc_token_jids(), sorted);
    rec!(t, store.get_tc_token("j2@lid"));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i4"));
    rec!(t, store.take_sent_message(CHAT, "m3"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, SENDER, "m4"));
    rec!(t, store.get_msg_secret_with_ts(CHAT, OTHER_SENDER, "m3"));
    // What the script deleted stays deleted.
    rec!(t, store.take_sent_message(CHAT, "m1"));
    rec!(t, store.load_prekey(10));
    rec!(t, store.get_sender_key_devices(GROUP_1), sorted);
    rec!(t, store.get_group_metadata(GROUP_1));
    rec!(t, store.get_tc_token("j1@lid"));
    rec!(t, store.get_pending_inbound(CHAT, SENDER, "i3"));
    rec!(t, store.get_msg_secret(CHAT, SENDER, "m2"));
    t.lines
}

/// Panics with the first line where `actual` leaves `reference`, the lines
/// before it, and the later differing lines.
fn assert_same_transcript(reference: &[String], actual: &[String], what: &str) {
    if reference == actual {
        return;
    }
    const LATER_SHOWN: usize = 20;
    let first = reference
        .iter()
        .zip(actual)
        .position(|(r, a)| r != a)
        .unwrap_or(reference.len().min(actual.len()));
    let mut report = format!("{what} departs from the in-memory reference at line {first}\n");
    for line in &reference[first.saturating_sub(3)..first] {
        report.push_str(&format!("  (same)     {line}\n"));
    }
    let at = |lines: &[String]| lines.get(first).cloned().unwrap_or("<end>".into());
    report.push_str(&format!(
        "  reference: {}\n  {what}: {}\n",
        at(reference),
        at(actual)
    ));
    let later: Vec<(&String, &String)> = reference
        .iter()
        .zip(actual)
        .skip(first + 1)
        .filter(|(r, a)| r != a)
        .collect();
    if reference.len() != actual.len() {
        report.push_str(&format!(
            "{} lines in the reference, {} in {what}\n",
            reference.len(),
            actual.len()
        ));
    }
    if !later.is_empty() {
        report.push_str(&format!(
            "{} later lines differ too (possibly knock-on effects), first {}:\n",
            later.len(),
            later.len().min(LATER_SHOWN)
        ));
        for (r, a) in later.iter().take(LATER_SHOWN) {
            report.push_str(&format!("  reference: {r}\n  {what}: {a}\n"));
        }
    }
    panic!("{report}");
}

/// Every method of `Backend` but `snapshot_db` and `resource_report`.
const BACKEND_METHODS: &[&str] = &[
    // SignalStore
    "put_identity",
    "put_identities_batch",
    "load_identity",
    "delete_identity",
    "get_session",
    "put_session",
    "put_sessions_batch",
    "delete_session",
    "has_session",
    "has_signal_state_for_user",
    "store_prekey",
    "store_prekeys_batch",
    "load_prekey",
    "load_prekeys_batch",
    "mark_prekeys_uploaded",
    "remove_prekey",
    "get_max_prekey_id",
    "store_signed_prekey",
    "load_signed_prekey",
    "load_all_signed_prekeys",
    "remove_signed_prekey",
    "put_sender_key",
    "put_sender_keys_batch",
    "get_sender_key",
    "delete_sender_key",
    // AppSyncStore
    "get_sync_key",
    "set_sync_key",
    "get_version",
    "set_version",
    "put_mutation_macs",
    "get_mutation_mac",
    "get_mutation_macs",
    "delete_mutation_macs",
    "clear_mutation_macs",
    "get_latest_sync_key_id",
    // ProtocolStore
    "get_sender_key_devices",
    "set_sender_key_status",
    "clear_sender_key_devices",
    "delete_sender_key_device_rows",
    "clear_all_sender_key_devices",
    "get_lid_mapping",
    "get_pn_mapping",
    "put_lid_mapping",
    "put_lid_mappings",
    "get_all_lid_mappings",
    "save_base_key",
    "has_same_base_key",
    "delete_base_key",
    "update_device_list",
    "update_device_lists",
    "get_devices",
    "delete_devices",
    "get_group_metadata",
    "put_group_metadata",
    "delete_group_metadata",
    "get_tc_token",
    "put_tc_token",
    "delete_tc_token",
    "get_all_tc_token_jids",
    "delete_expired_tc_tokens",
    "touch_tc_token_sender_timestamp",
    "store_received_tc_token",
    "store_sent_message",
    "take_sent_message",
    "delete_expired_sent_messages",
    "store_pending_inbound",
    "get_pending_inbound",
    "delete_pending_inbound",
    "delete_expired_pending_inbound",
    "store_pending_inbound_batch",
    "delete_pending_inbound_batch",
    // MsgSecretStore
    "put_msg_secret",
    "put_msg_secrets",
    "get_msg_secret",
    "get_msg_secret_with_ts",
    "delete_expired_msg_secrets",
    // DeviceStore
    "save",
    "load",
    "exists",
    "create",
];

/// The method a transcript line records: `#n store.<method>(…) -> …`.
fn called_method(line: &str) -> Option<&str> {
    let call = line.split_once(" store.")?.1;
    Some(&call[..call.find('(')?])
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_script_calls_every_backend_method() {
    let transcript = script(&InMemoryBackend::new(), &fixture_device()).await;
    let called: std::collections::BTreeSet<&str> =
        transcript.iter().filter_map(|l| called_method(l)).collect();
    let missing: Vec<&&str> = BACKEND_METHODS
        .iter()
        .filter(|m| !called.contains(**m))
        .collect();
    assert!(missing.is_empty(), "never called: {missing:?}");
    assert_eq!(BACKEND_METHODS.len(), 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_store_behaves_like_the_in_memory_reference() {
    let fixture = fixture_device();
    let reference = script(&InMemoryBackend::new(), &fixture).await;

    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let store =
        SessionStore::open(&dir.path().join("session.sqlite3"), secrets, &device_id()).unwrap();
    let actual = script(&store, &fixture).await;

    assert_same_transcript(&reference, &actual, "session store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_written_is_there_after_reopening() {
    let fixture = fixture_device();
    let in_memory = InMemoryBackend::new();
    script(&in_memory, &fixture).await;
    let reference = observe(&in_memory).await;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.sqlite3");
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let store = SessionStore::open(&path, Arc::clone(&secrets), &device_id()).unwrap();
    script(&store, &fixture).await;
    drop(store);

    let reopened = SessionStore::open(&path, secrets, &device_id()).unwrap();
    let actual = observe(&reopened).await;
    assert_same_transcript(&reference, &actual, "reopened session store");
}

/// Every encoding in which a secret could plausibly land in the file: raw,
/// hex (either case) and a JSON number list.
fn encodings(secret: &[u8]) -> Vec<Vec<u8>> {
    let lower: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let decimal = secret
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    vec![
        secret.to_vec(),
        lower.clone().into_bytes(),
        lower.to_uppercase().into_bytes(),
        decimal.into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database file and, when present, its `-wal` and `-shm` siblings.
fn database_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let sibling = PathBuf::from(name);
        if sibling.exists() {
            files.push(sibling);
        }
    }
    files
}

fn assert_no_secret_in_files(path: &Path, secrets: &[(&str, Vec<u8>)], when: &str) {
    for file in database_files(path) {
        let bytes = std::fs::read(&file).unwrap();
        for (name, secret) in secrets {
            for encoding in encodings(secret) {
                assert!(
                    !contains(&bytes, &encoding),
                    "{when}: {} holds the {name}",
                    file.display()
                );
            }
        }
    }
}

fn any_file_contains(path: &Path, needle: &[u8]) -> bool {
    database_files(path)
        .iter()
        .any(|file| contains(&std::fs::read(file).unwrap(), needle))
}

fn private_key(pair: &KeyPair) -> Vec<u8> {
    pair.private_key.serialize().to_vec()
}

fn public_key(pair: &KeyPair) -> Vec<u8> {
    pair.public_key.public_key_bytes().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.sqlite3");
    let secret_store = Arc::new(MemorySecretStore::default());
    let secrets: Arc<dyn SecretStore> = secret_store.clone();
    let id = device_id();

    let mut device = Device::new();
    // Proves the device row did reach the files the secrets must stay out of.
    device.push_name = "push-name-that-must-reach-the-file".into();
    let signed_pre_key_record: Vec<u8> = (0..96).map(|_| rand::random::<u8>()).collect();
    let needles = [
        ("noise private key", private_key(&device.noise_key)),
        ("noise public key", public_key(&device.noise_key)),
        ("identity private key", private_key(&device.identity_key)),
        ("identity public key", public_key(&device.identity_key)),
        (
            "signed pre-key private key",
            private_key(&device.signed_pre_key),
        ),
        ("ADV secret", device.adv_secret_key.to_vec()),
        ("signed pre-key record", signed_pre_key_record.clone()),
    ];

    let store = SessionStore::open(&path, Arc::clone(&secrets), &id).unwrap();
    store.save(&device).await.unwrap();
    store
        .store_signed_prekey(device.signed_pre_key_id, &signed_pre_key_record)
        .await
        .unwrap();
    assert_no_secret_in_files(&path, &needles, "while open");
    drop(store);
    assert_no_secret_in_files(&path, &needles, "after closing");
    assert!(any_file_contains(&path, device.push_name.as_bytes()));
    assert_eq!(secret_store.names(), vec![secret_name(&id)]);

    let reopened = SessionStore::open(&path, secrets, &id).unwrap();
    let loaded = reopened.load().await.unwrap().unwrap();
    for (name, original, back) in [
        ("noise", &device.noise_key, &loaded.noise_key),
        ("identity", &device.identity_key, &loaded.identity_key),
        (
            "signed pre-key",
            &device.signed_pre_key,
            &loaded.signed_pre_key,
        ),
    ] {
        assert_eq!(
            private_key(back),
            private_key(original),
            "{name} private key"
        );
        assert_eq!(public_key(back), public_key(original), "{name} public key");
    }
    assert_eq!(loaded.adv_secret_key, device.adv_secret_key);
    assert_eq!(
        reopened
            .load_signed_prekey(device.signed_pre_key_id)
            .await
            .unwrap(),
        Some(signed_pre_key_record)
    );
}

fn assert_private(path: &Path, when: &str) {
    use std::os::unix::fs::PermissionsExt;
    let files = database_files(path);
    for file in &files {
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{when}: {} has mode {mode:o}", file.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_files_are_private() {
    // With the usual umask 022 a plainly created file would be 0644.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.sqlite3");
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let store = SessionStore::open(&path, secrets, &device_id()).unwrap();
    store.save(&fixture_device()).await.unwrap();
    store.put_session(ALICE, b"session").await.unwrap();
    assert!(path.exists());
    assert_private(&path, "while open");
    drop(store);
    assert_private(&path, "after closing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_database_is_session_damage_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.sqlite3");
    let garbage = b"this is not an SQLite database\n".repeat(256);
    std::fs::write(&path, &garbage).unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let err = match SessionStore::open(&path, secrets, &device_id()) {
        Ok(_) => panic!("opened a file that is not a database"),
        Err(err) => err,
    };
    assert_eq!(err.code, ErrorCode::SessionDamaged, "{err:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "a failed open must leave the file as it was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_a_device_whose_secrets_are_missing_or_unreadable_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.sqlite3");
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let id = device_id();
    let store = SessionStore::open(&path, Arc::clone(&secrets), &id).unwrap();
    store.save(&fixture_device()).await.unwrap();
    drop(store);

    secrets.delete(&secret_name(&id)).unwrap();
    let reopened = SessionStore::open(&path, Arc::clone(&secrets), &id).unwrap();
    assert!(reopened.exists().await.unwrap());
    match reopened.load().await {
        Err(_) => {}
        Ok(device) => panic!(
            "loaded a device without its secrets (found: {})",
            device.is_some()
        ),
    }
    drop(reopened);

    secrets
        .set(&secret_name(&id), b"not what the store writes")
        .unwrap();
    let reopened = SessionStore::open(&path, secrets, &id).unwrap();
    match reopened.load().await {
        Err(_) => {}
        Ok(device) => panic!(
            "loaded a device from an unreadable secret (found: {})",
            device.is_some()
        ),
    }
}

/// What `load()` gives after `create()` on a saved device. The client calls
/// `create()` only when `exists()` is false, yet a create on an existing
/// device must not replace its credentials: the in-memory store keeps the
/// device, the library's SQLite store refuses the insert.
async fn device_after_create_on_existing<B: Backend>(store: &B, fixture: &Device) -> Vec<String> {
    store.save(fixture).await.unwrap();
    // Ok or Err are both acceptable; the device after it is what counts.
    let _ = store.create().await;
    device_fields(store.load().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_on_an_existing_device_keeps_its_credentials() {
    let fixture = fixture_device();
    let expected = device_fields(Some(fixture.clone()));
    let reference = device_after_create_on_existing(&InMemoryBackend::new(), &fixture).await;
    assert_eq!(reference, expected);

    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
    let store =
        SessionStore::open(&dir.path().join("session.sqlite3"), secrets, &device_id()).unwrap();
    let actual = device_after_create_on_existing(&store, &fixture).await;
    assert_same_transcript(&reference, &actual, "session store");
}
