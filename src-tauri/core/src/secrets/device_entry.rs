//! The format of a device's keyring entry: the secrets of one device's
//! WhatsApp session, as JSON, and what SQLite gets in their place.
//!
//! The device record's noise key, identity key and signed pre-key (each a
//! full key pair) and its ADV secret, and the signed pre-key records (which
//! hold private keys), go to one keyring entry per device; the session
//! store's SQLite row holds the record with all-zero placeholders
//! (`scrubbed`). Deleting a device's secrets is one delete.

use crate::error::ServiceError;
use crate::model::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};

/// What every device's keyring entry name starts with.
pub const SECRET_NAME_PREFIX: &str = "device/";

/// What every pending revocation's keyring entry name starts with.
pub const REVOCATION_NAME_PREFIX: &str = "revocation/";

/// The keyring entry name of the pending revocation of the link `jid`.
pub fn revocation_name(jid: &str) -> String {
    format!("{REVOCATION_NAME_PREFIX}{jid}")
}

/// The keyring entry `raw`, read under the name `from`, rewritten to be
/// stored under `to`: the keys stay, the name they carry changes.
pub fn secrets_renamed(raw: &[u8], from: &str, to: &str) -> crate::Result<Vec<u8>> {
    let mut secrets = parse_secrets(raw, from)
        .map_err(|why| ServiceError::internal(format!("the keyring entry {from} {why}")))?;
    secrets.entry = Some(to.to_owned());
    serde_json::to_vec(&secrets)
        .map_err(|e| ServiceError::internal(format!("cannot write a keyring entry: {e}")))
}

/// The keyring entry name of a device's secrets.
pub fn secret_name(id: &DeviceId) -> String {
    format!("{SECRET_NAME_PREFIX}{id}")
}

/// The secrets of one device, as stored in its keyring entry. Key pairs are
/// `private (32) || public (32)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSecrets {
    /// The name of the keyring entry this is stored in (see
    /// [`secret_entry_name`]). Absent from entries written before it
    /// existed; the next save of such a device adds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
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
    pub(crate) fn of(
        entry: &str,
        device: &Device,
        signed_pre_key_records: BTreeMap<u32, Vec<u8>>,
    ) -> DeviceSecrets {
        DeviceSecrets {
            entry: Some(entry.to_owned()),
            noise_key: key_pair_bytes(&device.noise_key),
            identity_key: key_pair_bytes(&device.identity_key),
            signed_pre_key: key_pair_bytes(&device.signed_pre_key),
            adv_secret_key: device.adv_secret_key.to_vec(),
            signed_pre_key_records,
        }
    }

    pub(crate) fn apply_to(&self, device: &mut Device) -> Result<()> {
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
pub(crate) fn scrubbed(device: &Device) -> Result<Device> {
    let mut copy = device.clone();
    copy.noise_key = placeholder_key_pair()?;
    copy.identity_key = placeholder_key_pair()?;
    copy.signed_pre_key = placeholder_key_pair()?;
    copy.adv_secret_key = [0u8; 32];
    Ok(copy)
}

/// The keyring entry name a stored [`DeviceSecrets`] says it is kept under,
/// if it says one. The keyring's bulk read takes names from here (see
/// [`super::SecretStore::get_all`]): the Secret Service hands many
/// items' secrets out in one call but each item's name only in a call of its
/// own.
pub fn secret_entry_name(raw: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Entry {
        entry: Option<String>,
    }
    serde_json::from_slice::<Entry>(raw).ok()?.entry
}

/// `raw` as the secrets of the entry `name`. An entry that says it belongs
/// under another name is refused: handed to this device it would fail the
/// login, and a failed login wipes the device.
///
/// The error says nothing of `raw`: serde's message may quote the input,
/// which is secret.
pub(crate) fn parse_secrets(
    raw: &[u8],
    name: &str,
) -> std::result::Result<DeviceSecrets, &'static str> {
    let secrets: DeviceSecrets =
        serde_json::from_slice(raw).map_err(|_| "is not in the expected format")?;
    match &secrets.entry {
        Some(entry) if entry != name => Err("belongs to another device"),
        _ => Ok(secrets),
    }
}
