//! The whatsapp-rust session store of one device: the library's SQLite store,
//! with the long-term secrets moved out of it into the OS keyring.
//!
//! Everything delegates to [`SqliteStore`] except:
//! - the device record (`DeviceStore::save/load/create`): the noise key, the
//!   identity key, the signed pre-key (each a full key pair) and the ADV secret
//!   go to the keyring; the SQLite row holds all-zero placeholders of the same
//!   lengths, so the library's schema stays untouched;
//! - signed pre-key records (`store/load/remove_signed_prekey`), which hold
//!   private keys: kept in the same keyring entry.
//!
//! One keyring entry per device (named by [`secret_name`]) holds all of them,
//! so deleting a device's secrets is a single delete.
//!
//! Invariant: no code path hands a secret byte to the SQLite store. `create()`
//! is intercepted because the library's own version would write freshly
//! generated keys straight into SQLite.

use crate::model::DeviceId;
use crate::secrets::SecretStore;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust_sqlite_storage::SqliteStore;

/// What every device's keyring entry name starts with.
pub const SECRET_NAME_PREFIX: &str = "device/";

/// The keyring entry name of a device's secrets.
pub fn secret_name(id: &DeviceId) -> String {
    format!("{SECRET_NAME_PREFIX}{id}")
}

/// The secrets of one device, as stored in its keyring entry. Key pairs are
/// `private (32) || public (32)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSecrets {
    pub noise_key: Vec<u8>,
    pub identity_key: Vec<u8>,
    pub signed_pre_key: Vec<u8>,
    pub adv_secret_key: Vec<u8>,
    #[serde(default)]
    pub signed_pre_key_records: BTreeMap<u32, Vec<u8>>,
}

impl std::fmt::Debug for DeviceSecrets {
    // Never print key material, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSecrets")
            .field("signed_pre_key_records", &self.signed_pre_key_records.len())
            .finish_non_exhaustive()
    }
}

fn key_pair_bytes(pair: &KeyPair) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(pair.private_key.serialize());
    bytes.extend_from_slice(pair.public_key.public_key_bytes());
    bytes
}

fn key_pair_from_bytes(bytes: &[u8]) -> Result<KeyPair> {
    let invalid = || StoreError::Validation("a key pair in the keyring entry is malformed".into());
    if bytes.len() != 64 {
        return Err(invalid());
    }
    let private = PrivateKey::deserialize(&bytes[..32]).map_err(|_| invalid())?;
    let public = PublicKey::from_djb_public_key_bytes(&bytes[32..]).map_err(|_| invalid())?;
    Ok(KeyPair::new(public, private))
}

/// The stand-in written to SQLite instead of a real key pair.
fn placeholder_key_pair() -> Result<KeyPair> {
    key_pair_from_bytes(&[0u8; 64])
}

impl DeviceSecrets {
    fn of(device: &Device, signed_pre_key_records: BTreeMap<u32, Vec<u8>>) -> DeviceSecrets {
        DeviceSecrets {
            noise_key: key_pair_bytes(&device.noise_key),
            identity_key: key_pair_bytes(&device.identity_key),
            signed_pre_key: key_pair_bytes(&device.signed_pre_key),
            adv_secret_key: device.adv_secret_key.to_vec(),
            signed_pre_key_records,
        }
    }

    fn apply_to(&self, device: &mut Device) -> Result<()> {
        device.noise_key = key_pair_from_bytes(&self.noise_key)?;
        device.identity_key = key_pair_from_bytes(&self.identity_key)?;
        device.signed_pre_key = key_pair_from_bytes(&self.signed_pre_key)?;
        device.adv_secret_key = self.adv_secret_key.as_slice().try_into().map_err(|_| {
            StoreError::Validation("the ADV secret in the keyring entry is malformed".into())
        })?;
        Ok(())
    }
}

/// A copy of `device` fit for SQLite: every secret replaced by zeros.
fn scrubbed(device: &Device) -> Result<Device> {
    let mut copy = device.clone();
    copy.noise_key = placeholder_key_pair()?;
    copy.identity_key = placeholder_key_pair()?;
    copy.signed_pre_key = placeholder_key_pair()?;
    copy.adv_secret_key = [0u8; 32];
    Ok(copy)
}

fn keyring_error(err: crate::ServiceError) -> StoreError {
    // The service error message carries no secret (see `secrets`).
    StoreError::Connection(err.message.into())
}

/// The error is dropped by callers on purpose: serde's message may quote
/// the input, which is secret.
fn parse_secrets(raw: &[u8]) -> std::result::Result<DeviceSecrets, serde_json::Error> {
    serde_json::from_slice(raw)
}

/// The session store of one device (see the module docs).
pub struct KeyringBackedStore {
    inner: SqliteStore,
    secrets: Arc<dyn SecretStore>,
    secret_name: String,
    /// What the keyring entry holds, once read or written: saves that change
    /// no secret (most of them) then cost no keyring round trip.
    cached: Mutex<Option<DeviceSecrets>>,
}

impl KeyringBackedStore {
    pub fn new(inner: SqliteStore, secrets: Arc<dyn SecretStore>, id: &DeviceId) -> Self {
        KeyringBackedStore {
            inner,
            secrets,
            secret_name: secret_name(id),
            cached: Mutex::new(None),
        }
    }

    /// Seeds the cache with the keyring entry's content, read by the caller.
    pub fn prime(&self, raw: &[u8]) -> crate::Result<()> {
        let secrets = parse_secrets(raw).map_err(|_| {
            crate::ServiceError::internal(
                "the device's keyring entry is not in the expected format",
            )
        })?;
        self.set_cached(secrets);
        Ok(())
    }

    fn cached(&self) -> Option<DeviceSecrets> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_cached(&self, secrets: DeviceSecrets) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(secrets);
    }

    async fn read_secrets(&self) -> Result<Option<DeviceSecrets>> {
        if let Some(cached) = self.cached() {
            return Ok(Some(cached));
        }
        let store = Arc::clone(&self.secrets);
        let name = self.secret_name.clone();
        let raw = tokio::task::spawn_blocking(move || store.get(&name))
            .await
            .map_err(|e| StoreError::Connection(Box::new(e)))?
            .map_err(keyring_error)?;
        let Some(raw) = raw else { return Ok(None) };
        let secrets = parse_secrets(&raw).map_err(|_| {
            StoreError::Validation(
                "the device's keyring entry is not in the expected format".into(),
            )
        })?;
        self.set_cached(secrets.clone());
        Ok(Some(secrets))
    }

    async fn write_secrets(&self, secrets: DeviceSecrets) -> Result<()> {
        if self.cached().as_ref() == Some(&secrets) {
            return Ok(());
        }
        let raw =
            serde_json::to_vec(&secrets).map_err(|e| StoreError::Serialization(Box::new(e)))?;
        let store = Arc::clone(&self.secrets);
        let name = self.secret_name.clone();
        tokio::task::spawn_blocking(move || store.set(&name, &raw))
            .await
            .map_err(|e| StoreError::Connection(Box::new(e)))?
            .map_err(keyring_error)?;
        self.set_cached(secrets);
        Ok(())
    }

    async fn signed_pre_key_records(&self) -> Result<BTreeMap<u32, Vec<u8>>> {
        Ok(self
            .read_secrets()
            .await?
            .map(|s| s.signed_pre_key_records)
            .unwrap_or_default())
    }

    async fn update_records(&self, change: impl FnOnce(&mut BTreeMap<u32, Vec<u8>>)) -> Result<()> {
        let mut secrets = self.read_secrets().await?.ok_or_else(|| {
            StoreError::Validation("no keyring entry for this device's credentials".into())
        })?;
        change(&mut secrets.signed_pre_key_records);
        self.write_secrets(secrets).await
    }
}

#[async_trait]
impl SignalStore for KeyringBackedStore {
    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        let record = record.to_vec();
        self.update_records(|records| {
            records.insert(id, record);
        })
        .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.signed_pre_key_records().await?.remove(&id))
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self.signed_pre_key_records().await?.into_iter().collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.update_records(|records| {
            records.remove(&id);
        })
        .await
    }

    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.inner.put_identity(address, key).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.inner.put_identities_batch(identities).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.inner.load_identity(address).await
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.inner.delete_identity(address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        self.inner.get_session(address).await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.inner.has_session(address).await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        self.inner.has_signal_state_for_user(user).await
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.inner.put_session(address, session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.inner.put_sessions_batch(sessions).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.inner.delete_session(address).await
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.inner.store_prekey(id, record, uploaded).await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        self.inner.store_prekeys_batch(keys, uploaded).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.inner.load_prekey(id).await
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        self.inner.load_prekeys_batch(ids).await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.inner.remove_prekey(id).await
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        self.inner.mark_prekeys_uploaded(ids).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        self.inner.get_max_prekey_id().await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.inner.put_sender_key(address, record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.inner.put_sender_keys_batch(sender_keys).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_sender_key(address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.inner.delete_sender_key(address).await
    }
}

#[async_trait]
impl AppSyncStore for KeyringBackedStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.inner.get_sync_key(key_id).await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.inner.set_sync_key(key_id, key).await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        self.inner.get_version(name).await
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.inner.set_version(name, state).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        self.inner.put_mutation_macs(name, version, mutations).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get_mutation_mac(name, index_mac).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<std::collections::HashMap<[u8; 32], Vec<u8>>> {
        self.inner.get_mutation_macs(name, index_macs).await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        self.inner.delete_mutation_macs(name, index_macs).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.inner.clear_mutation_macs(name).await
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.inner.get_latest_sync_key_id().await
    }
}

#[async_trait]
impl ProtocolStore for KeyringBackedStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.inner.get_sender_key_devices(group_jid).await
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.inner.set_sender_key_status(group_jid, entries).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.inner.clear_sender_key_devices(group_jid).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.inner.clear_all_sender_key_devices().await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        self.inner.delete_sender_key_device_rows(device_jids).await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.inner.get_lid_mapping(lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        self.inner.get_pn_mapping(phone).await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.inner.put_lid_mapping(entry).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        self.inner.put_lid_mappings(entries).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.inner.get_all_lid_mappings().await
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.inner
            .save_base_key(address, message_id, base_key)
            .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.inner
            .has_same_base_key(address, message_id, current_base_key)
            .await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.inner.delete_base_key(address, message_id).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.inner.update_device_list(record).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        self.inner.update_device_lists(records).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.inner.get_devices(user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.inner.delete_devices(user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_group_metadata(group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.inner.put_group_metadata(group_jid, blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.inner.delete_group_metadata(group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.inner.get_tc_token(jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.inner.put_tc_token(jid, entry).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.inner.delete_tc_token(jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.inner.get_all_tc_token_jids().await
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.inner
            .delete_expired_tc_tokens(token_cutoff, sender_cutoff)
            .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        self.inner
            .store_received_tc_token(jid, token, token_timestamp)
            .await
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        self.inner
            .touch_tc_token_sender_timestamp(jid, sender_timestamp)
            .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.inner
            .store_sent_message(chat_jid, message_id, payload)
            .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.inner.take_sent_message(chat_jid, message_id).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.inner
            .delete_expired_sent_messages(cutoff_timestamp)
            .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.inner
            .store_pending_inbound(chat, sender, id, message)
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.inner.get_pending_inbound(chat, sender, id).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.inner.delete_pending_inbound(chat, sender, id).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.inner
            .delete_expired_pending_inbound(cutoff_timestamp)
            .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.inner.store_pending_inbound_batch(rows).await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.inner.delete_pending_inbound_batch(keys).await
    }
}

#[async_trait]
impl MsgSecretStore for KeyringBackedStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        self.inner.put_msg_secrets(entries).await
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.inner.get_msg_secret(chat, sender, msg_id).await
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.inner
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.inner
            .delete_expired_msg_secrets(cutoff_timestamp)
            .await
    }
}

#[async_trait]
impl DeviceStore for KeyringBackedStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let records = self.signed_pre_key_records().await?;
        self.write_secrets(DeviceSecrets::of(device, records))
            .await?;
        self.inner.save(&scrubbed(device)?).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(mut device) = self.inner.load().await? else {
            return Ok(None);
        };
        let secrets = self.read_secrets().await?.ok_or_else(|| {
            StoreError::Validation(
                "the session store exists but the device's keyring entry is missing".into(),
            )
        })?;
        secrets.apply_to(&mut device)?;
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        self.inner.exists().await
    }

    async fn create(&self) -> Result<i32> {
        // Not delegated: the library's create() writes fresh keys to SQLite.
        // save() upserts the row with placeholders, secrets to the keyring.
        self.save(&Device::new()).await?;
        Ok(self.inner.device_id())
    }

    async fn snapshot_db(&self, name: &str, extra_content: Option<&[u8]>) -> Result<()> {
        self.inner.snapshot_db(name, extra_content).await
    }

    async fn resource_report(&self) -> wacore::stats::StorageResourceReport {
        self.inner.resource_report().await
    }
}
