//! Where long-term secrets live: the OS keyring, behind [`SecretStore`].
//!
//! Invariant: secret bytes go only through this trait. If the keyring cannot
//! be reached the operation fails with `keyring_unavailable`; nothing falls
//! back to a file.

use crate::error::{ErrorCode, Result, ServiceError};
use std::collections::HashMap;
use std::sync::Mutex;

/// A store of named secrets.
pub trait SecretStore: Send + Sync + 'static {
    /// The secret called `name`, or `None` if there is none.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Creates or replaces the secret called `name`.
    fn set(&self, name: &str, secret: &[u8]) -> Result<()>;
    /// Deletes the secret called `name`; deleting a missing one succeeds.
    fn delete(&self, name: &str) -> Result<()>;
}

/// The OS keyring through the `keyring` crate (Secret Service on Linux).
///
/// Entries are `(service, name)` pairs; `service` separates installations
/// (and test runs) sharing one keyring.
#[derive(Debug, Clone)]
pub struct KeyringSecretStore {
    service: String,
}

/// The keyring service name of the product.
pub const DEFAULT_KEYRING_SERVICE: &str = "wa-device-admin";

impl KeyringSecretStore {
    pub fn new(service: impl Into<String>) -> KeyringSecretStore {
        KeyringSecretStore {
            service: service.into(),
        }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        keyring::Entry::new(&self.service, name).map_err(map_keyring_error)
    }
}

impl Default for KeyringSecretStore {
    fn default() -> Self {
        KeyringSecretStore::new(DEFAULT_KEYRING_SERVICE)
    }
}

/// Maps a keyring error to ours. Written variant by variant because some
/// variants carry the secret itself (`BadEncoding`): no keyring error is ever
/// formatted wholesale.
pub fn map_keyring_error(err: keyring::Error) -> ServiceError {
    use keyring::Error as K;
    match err {
        K::NoStorageAccess(inner) => ServiceError::keyring_unavailable(inner),
        K::PlatformFailure(inner) => ServiceError::keyring_unavailable(inner),
        K::NoEntry => ServiceError::internal("keyring entry not found"),
        K::BadEncoding(_) => {
            ServiceError::internal("a keyring entry is not in the expected format")
        }
        K::TooLong(attr, max) => {
            ServiceError::internal(format!("keyring attribute {attr} is longer than {max}"))
        }
        K::Invalid(attr, why) => {
            ServiceError::internal(format!("invalid keyring attribute {attr}: {why}"))
        }
        K::Ambiguous(entries) => {
            ServiceError::internal(format!("{} keyring entries match one name", entries.len()))
        }
        _ => ServiceError::new(ErrorCode::Internal, "unexpected keyring error"),
    }
}

impl SecretStore for KeyringSecretStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.entry(name)?.get_secret() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_keyring_error(e)),
        }
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<()> {
        self.entry(name)?
            .set_secret(secret)
            .map_err(map_keyring_error)
    }

    fn delete(&self, name: &str) -> Result<()> {
        match self.entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_keyring_error(e)),
        }
    }
}

/// Secrets in process memory: for unit tests of logic that needs some store.
/// Never used by the product (it would lose credentials at exit).
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    entries: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemorySecretStore {
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

impl SecretStore for MemorySecretStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned())
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), secret.to_vec());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_keyring_errors_map_to_keyring_unavailable() {
        let err = map_keyring_error(keyring::Error::NoStorageAccess("locked".into()));
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        let err = map_keyring_error(keyring::Error::PlatformFailure("no bus".into()));
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
    }

    #[test]
    fn bad_encoding_never_shows_the_secret() {
        let err = map_keyring_error(keyring::Error::BadEncoding(b"SECRET-BYTES".to_vec()));
        assert!(!err.message.contains("SECRET"));
        assert!(!format!("{err:?}").contains("83, 69, 67"));
    }

    #[test]
    fn memory_store_deletes_missing_entries_without_error() {
        let store = MemorySecretStore::default();
        store
            .delete("nothing")
            .expect("delete of a missing entry succeeds");
        store.set("a", b"1").expect("set");
        assert_eq!(store.get("a").expect("get"), Some(b"1".to_vec()));
        store.delete("a").expect("delete");
        assert_eq!(store.get("a").expect("get"), None);
    }
}
