//! The REST API's `user:password` pair in the OS keyring, for admins who
//! prefer not to pass it on the command line or in the environment. Named
//! under the data folder's scope ([`super::KeyringNames::api_password`]).

use super::{SecretStore, UNSCOPED_API_PASSWORD};
use crate::error::{Result, ServiceError};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The keyring entry of one data folder's API pair.
#[derive(Clone)]
pub struct ApiPasswordEntry {
    store: Arc<dyn SecretStore>,
    name: String,
}

impl ApiPasswordEntry {
    /// The entry `name` (the folder's `KeyringNames::api_password()`) of
    /// `store`.
    pub fn new(store: Arc<dyn SecretStore>, name: String) -> ApiPasswordEntry {
        ApiPasswordEntry { store, name }
    }

    /// The stored `user:password` text, if one is set. A pair stored before
    /// entries were scoped by data folder ([`UNSCOPED_API_PASSWORD`]) is
    /// copied under the scope on first read; the old entry stays for the
    /// folders that still read it. Errors: `keyring_unavailable`, or
    /// `internal` for an entry that is not UTF-8 (its bytes are never shown).
    pub fn load(&self) -> Result<Option<Zeroizing<String>>> {
        let bytes = match self.store.get(&self.name)? {
            Some(bytes) => bytes,
            None => match self.store.get(UNSCOPED_API_PASSWORD)? {
                Some(bytes) => {
                    self.store.set(&self.name, &bytes)?;
                    bytes
                }
                None => return Ok(None),
            },
        };
        String::from_utf8(bytes)
            .map(|text| Some(Zeroizing::new(text)))
            .map_err(|_| {
                ServiceError::internal(
                    "the keyring entry of the API password is not UTF-8; set the password again",
                )
            })
    }

    /// Stores `pair` (`user:password`), replacing any stored one.
    pub fn save(&self, pair: &str) -> Result<()> {
        self.store.set(&self.name, pair.as_bytes())
    }

    /// Deletes the stored pair; deleting none succeeds.
    pub fn clear(&self) -> Result<()> {
        self.store.delete(&self.name)
    }
}

impl std::fmt::Debug for ApiPasswordEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPasswordEntry")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::secrets::MemorySecretStore;

    #[test]
    fn a_pair_from_before_scopes_is_copied_under_the_scope_and_kept() {
        let store = Arc::new(MemorySecretStore::default());
        store
            .set(UNSCOPED_API_PASSWORD, b"admin:old-pass")
            .expect("set");
        let entry = ApiPasswordEntry::new(store.clone(), "scope/api/basic-auth".into());
        let loaded = entry.load().expect("load").expect("a pair");
        assert_eq!(loaded.as_str(), "admin:old-pass");
        assert_eq!(
            store.get("scope/api/basic-auth").expect("get"),
            Some(b"admin:old-pass".to_vec())
        );
        assert!(store.get(UNSCOPED_API_PASSWORD).expect("get").is_some());
        entry.clear().expect("clear");
        assert_eq!(store.get("scope/api/basic-auth").expect("get"), None);
    }

    #[test]
    fn an_entry_that_is_not_text_is_an_error_that_shows_nothing() {
        let store = Arc::new(MemorySecretStore::default());
        store.set("s/api", &[0xff, 0xfe, b'x']).expect("set");
        let err = ApiPasswordEntry::new(store, "s/api".into())
            .load()
            .expect_err("not UTF-8");
        assert_eq!(err.code, ErrorCode::Internal);
        assert!(!err.message.contains('x'), "{err:?}");
    }
}
