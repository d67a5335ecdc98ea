//! The OS keyring, on every OS: keyring-core with the native store of each
//! (the Secret Service on Linux, the Keychain on macOS, the Credential
//! Manager on Windows).
//!
//! keyring-core is the core of the `keyring` crate's 4.x line; the `keyring`
//! crate itself only bundles a choice of stores for small programs and its
//! documentation asks applications to link keyring-core and the stores they
//! want, which is what this does. Only [`open_native_store`] and the error
//! words differ by OS; only Linux is built and tested here.
//!
//! Entries are `(service, name)` pairs; `service` separates installations
//! (and test runs) sharing one keyring. On Linux, items carry the attributes
//! earlier versions of the app wrote (`service`, `username` = name, `target`
//! = `default`), so entries written by either version load in the other.
//!
//! Every call is bounded in time ([`CallDeadline`]). The native store is
//! opened on first use and shared by every clone (on Linux it holds one
//! D-Bus connection and one encrypted session, whose opening costs a key
//! exchange); a call that fails because that connection broke (keyring
//! daemon restarted, bus connection lost) is retried once on a new one.

use super::SecretStore;
use super::deadline::{CallDeadline, KEYRING_CALL_LIMIT};
use crate::error::{Result, ServiceError};
use keyring_core::{CredentialStore, Entry, Error as KeyringError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct KeyringSecretStore {
    service: String,
    native: Arc<Mutex<Option<Arc<CredentialStore>>>>,
    deadline: CallDeadline,
}

impl std::fmt::Debug for KeyringSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringSecretStore")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl KeyringSecretStore {
    /// The entries of `service`, each call bounded by [`KEYRING_CALL_LIMIT`].
    pub fn new(service: impl Into<String>) -> KeyringSecretStore {
        KeyringSecretStore::with_call_limit(service, KEYRING_CALL_LIMIT)
    }

    /// The entries of `service`, each call bounded by `limit`.
    pub fn with_call_limit(service: impl Into<String>, limit: Duration) -> KeyringSecretStore {
        KeyringSecretStore {
            service: service.into(),
            native: Arc::new(Mutex::new(None)),
            deadline: CallDeadline::new(limit),
        }
    }

    /// The service name the entries are stored under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Drops the shared native store; the next call opens a new one. For
    /// tests of the reconnect path; never needed otherwise.
    pub fn disconnect(&self) {
        *self.native.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Runs `op` on the entry `name`, on a thread of its own, within the
    /// deadline (see [`KeyringSecretStore::with_native`]).
    fn on_entry<T: Send + 'static>(
        &self,
        name: &str,
        op: impl Fn(&Entry) -> std::result::Result<T, KeyringError> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        let name = name.to_owned();
        self.deadline.run(move || {
            store.with_native(|native| {
                let entry = Entry::new_in_store_with_modifiers(
                    native,
                    &store.service,
                    &name,
                    &entry_modifiers(),
                )?;
                op(&entry)
            })
        })
    }

    /// Runs `op` with the shared native store, opening it if needed. A
    /// broken connection drops the store and `op` runs once more on a new
    /// one; any other error, or a second failure, is returned.
    fn with_native<T>(
        &self,
        op: impl Fn(&Arc<CredentialStore>) -> std::result::Result<T, KeyringError>,
    ) -> Result<T> {
        let mut retried = false;
        loop {
            let native = {
                let mut shared = self.native.lock().unwrap_or_else(|p| p.into_inner());
                match shared.as_ref() {
                    Some(native) => Arc::clone(native),
                    None => {
                        let native = open_native_store().map_err(keyring_error)?;
                        *shared = Some(Arc::clone(&native));
                        native
                    }
                }
            };
            match op(&native) {
                Ok(value) => return Ok(value),
                Err(err) if !retried && is_broken_connection(&err) => {
                    retried = true;
                    let mut shared = self.native.lock().unwrap_or_else(|p| p.into_inner());
                    if shared.as_ref().is_some_and(|s| Arc::ptr_eq(s, &native)) {
                        *shared = None;
                    }
                }
                Err(err) => return Err(keyring_error(err)),
            }
        }
    }
}

impl SecretStore for KeyringSecretStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.on_entry(name, |entry| match entry.get_secret() {
            Ok(secret) => Ok(Some(secret)),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(err) => Err(err),
        })
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<()> {
        let secret = zeroize::Zeroizing::new(secret.to_vec());
        // An existing entry is updated in place (so an entry another client
        // created keeps its identity); two entries of one name are refused.
        self.on_entry(name, move |entry| entry.set_secret(&secret))
    }

    fn delete(&self, name: &str) -> Result<()> {
        // Every match goes: a logout must leave no entry of the device.
        self.on_entry(name, |entry| match entry.delete_credential() {
            Ok(()) | Err(KeyringError::NoEntry) => Ok(()),
            Err(KeyringError::Ambiguous(entries)) => {
                for entry in entries {
                    match entry.delete_credential() {
                        Ok(()) | Err(KeyringError::NoEntry) => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(())
            }
            Err(err) => Err(err),
        })
    }

    /// On Linux, one Secret Service search and a batched read of every
    /// secret (see `secret_service`); elsewhere none, and callers read each
    /// entry with `get`.
    fn get_all(
        &self,
        prefix: &str,
        named_by: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Result<HashMap<String, Vec<u8>>> {
        #[cfg(target_os = "linux")]
        {
            super::secret_service::read_all(&self.deadline, &self.service, prefix, named_by)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (prefix, named_by);
            Ok(HashMap::new())
        }
    }
}

#[cfg(target_os = "linux")]
fn open_native_store() -> std::result::Result<Arc<CredentialStore>, KeyringError> {
    Ok(dbus_secret_service_keyring_store::Store::new()?)
}

#[cfg(target_os = "macos")]
fn open_native_store() -> std::result::Result<Arc<CredentialStore>, KeyringError> {
    Ok(apple_native_keyring_store::keychain::Store::new()?)
}

#[cfg(target_os = "windows")]
fn open_native_store() -> std::result::Result<Arc<CredentialStore>, KeyringError> {
    Ok(windows_native_keyring_store::Store::new()?)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
fn open_native_store() -> std::result::Result<Arc<CredentialStore>, KeyringError> {
    Err(KeyringError::NotSupportedByStore(
        "no OS keyring is supported on this platform".to_owned(),
    ))
}

/// On Linux, the `target` attribute earlier versions wrote (so lookups match
/// their items and theirs match ours; new items go to the default
/// collection) and a label naming the app in keyring browsers.
#[cfg(target_os = "linux")]
fn entry_modifiers() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("target", super::secret_service::ITEM_TARGET),
        ("label", "WA Device Admin"),
    ])
}

#[cfg(not(target_os = "linux"))]
fn entry_modifiers() -> HashMap<&'static str, &'static str> {
    HashMap::new()
}

/// Whether `err` means the native store's connection broke, so that a new
/// store may succeed.
fn is_broken_connection(err: &KeyringError) -> bool {
    match err {
        #[cfg(target_os = "linux")]
        KeyringError::PlatformFailure(source) | KeyringError::NoStorageAccess(source) => {
            super::secret_service::is_broken_connection(source.as_ref())
        }
        _ => false,
    }
}

/// Maps a keyring error to ours by its variant. No error is ever formatted
/// wholesale: some variants carry the secret itself (`BadEncoding`,
/// `BadDataFormat`).
pub(super) fn keyring_error(err: KeyringError) -> ServiceError {
    match err {
        KeyringError::NoStorageAccess(source) | KeyringError::PlatformFailure(source) => {
            platform_error(source.as_ref())
        }
        KeyringError::NoEntry => ServiceError::internal("keyring entry not found"),
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => {
            ServiceError::internal("a keyring entry is not in the expected format")
        }
        KeyringError::BadStoreFormat(_) => {
            ServiceError::keyring_unavailable("the keyring's own data is damaged")
        }
        KeyringError::TooLong(attribute, max) => ServiceError::internal(format!(
            "keyring attribute {attribute} is longer than {max}"
        )),
        KeyringError::Invalid(attribute, why) => {
            ServiceError::internal(format!("invalid keyring attribute {attribute}: {why}"))
        }
        KeyringError::Ambiguous(entries) => {
            ServiceError::internal(format!("{} keyring entries match one name", entries.len()))
        }
        KeyringError::NoDefaultStore | KeyringError::NotSupportedByStore(_) => {
            ServiceError::keyring_unavailable("no OS keyring is available on this system")
        }
        _ => ServiceError::internal("unexpected keyring error"),
    }
}

/// An OS keyring failure: `keyring_unavailable`, with the platform's words.
fn platform_error(source: &(dyn std::error::Error + Send + Sync + 'static)) -> ServiceError {
    #[cfg(target_os = "linux")]
    {
        super::secret_service::platform_error(source)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Keychain and Credential Manager errors describe the OS failure
        // (a status code and its text), never the secret.
        ServiceError::keyring_unavailable(format!("the OS keyring failed: {source}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn unavailable_keyring_errors_map_to_keyring_unavailable() {
        let err = keyring_error(KeyringError::NoStorageAccess("locked".into()));
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        let err = keyring_error(KeyringError::PlatformFailure("no bus".into()));
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        let err = keyring_error(KeyringError::NoDefaultStore);
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
    }

    #[test]
    fn bad_encoding_never_shows_the_secret() {
        for err in [
            KeyringError::BadEncoding(b"SECRET-BYTES".to_vec()),
            KeyringError::BadDataFormat(b"SECRET-BYTES".to_vec(), "bad".into()),
        ] {
            let err = keyring_error(err);
            assert!(!err.message.contains("SECRET"), "{err:?}");
            assert!(!format!("{err:?}").contains("83, 69, 67"), "{err:?}");
        }
    }
}
