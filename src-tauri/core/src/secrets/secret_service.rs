//! The OS keyring on Linux: the freedesktop Secret Service, over D-Bus.

use super::SecretStore;
use super::batch;
use crate::error::{ErrorCode, Result, ServiceError};
use dbus_secret_service::{self as ss, EncryptionType, Item, SecretService};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The OS keyring: the freedesktop Secret Service on Linux (gnome-keyring,
/// KWallet), spoken to directly over D-Bus.
///
/// Entries are `(service, name)` pairs; `service` separates installations
/// (and test runs) sharing one keyring.
///
/// One D-Bus connection and one encrypted (Diffie-Hellman, AES) Secret
/// Service session are opened on first use and shared by every clone of the
/// store: opening them costs a key exchange and several round trips, which
/// the `keyring` crate paid on every call (13 to 25 ms each). Calls are
/// serialized on that connection (the blocking D-Bus client is not `Sync`,
/// and gnome-keyring answers one request at a time anyway). A call that
/// fails with a D-Bus error is retried once on a fresh connection and
/// session, so a restarted keyring daemon or a dropped bus connection heals
/// by itself.
///
/// Items are the ones the `keyring` 3 crate writes, so entries written by
/// earlier versions of the app load unchanged (and the other way round):
/// attributes `service`, `username` (= `name`), `target` = `default`,
/// `application`; new items go to the default collection; lookups search
/// every collection by `service`, `username` and `target`.
#[derive(Clone)]
pub struct KeyringSecretStore {
    service: String,
    connection: Arc<Mutex<Option<SecretService>>>,
}

impl std::fmt::Debug for KeyringSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringSecretStore")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The keyring service name of the product.
pub const DEFAULT_KEYRING_SERVICE: &str = "wa-device-admin";

/// The `target` attribute `keyring` 3 gives entries created without one.
const KEYRING_TARGET: &str = "default";
/// The `application` attribute `keyring` 3 writes (informational only:
/// lookups do not use it).
const KEYRING_APPLICATION: &str = "rust-keyring";
const SECRET_CONTENT_TYPE: &str = "text/plain";

impl KeyringSecretStore {
    pub fn new(service: impl Into<String>) -> KeyringSecretStore {
        KeyringSecretStore {
            service: service.into(),
            connection: Arc::new(Mutex::new(None)),
        }
    }

    /// The service name the entries are stored under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Drops the shared connection and session; the next call opens new
    /// ones. For tests of the reconnect path; never needed otherwise.
    pub fn disconnect(&self) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn search_attributes<'a>(&'a self, name: &'a str) -> HashMap<&'a str, &'a str> {
        HashMap::from([
            ("service", self.service.as_str()),
            ("username", name),
            ("target", KEYRING_TARGET),
        ])
    }

    /// Runs `op` on the shared connection, opening it if needed. A D-Bus
    /// failure (daemon restarted, bus connection lost, session gone) drops
    /// the connection and retries `op` once on a fresh one; any other error,
    /// or a second failure, is returned.
    fn with_service<T>(
        &self,
        mut op: impl FnMut(&SecretService) -> std::result::Result<T, ss::Error>,
    ) -> Result<T> {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let mut retried = false;
        loop {
            let service = match connection.as_ref() {
                Some(service) => service,
                None => connection.insert(
                    SecretService::connect(EncryptionType::Dh).map_err(map_secret_service_error)?,
                ),
            };
            match op(service) {
                Ok(value) => return Ok(value),
                Err(ss::Error::Dbus(_)) if !retried => {
                    retried = true;
                    *connection = None;
                }
                Err(e) => return Err(map_secret_service_error(e)),
            }
        }
    }

    /// The `username` attribute (the name) of each item, in order.
    fn names_of(&self, items: &[&dbus::Path<'static>]) -> Result<Vec<Option<String>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let count = if items.len() < BULK_READ_MIN_ITEMS {
            1
        } else {
            BULK_READ_CONNECTIONS
        };
        // Attributes carry no secret: these sessions need no key exchange.
        let connections = (0..count)
            .map(|_| SecretService::connect(EncryptionType::Plain))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(map_secret_service_error)?;
        let chunk = items.len().div_ceil(connections.len());
        // A connection is not `Sync`: each thread owns one.
        std::thread::scope(|scope| {
            let workers: Vec<_> = connections
                .into_iter()
                .zip(items.chunks(chunk))
                .map(|(service, share)| {
                    scope.spawn(move || {
                        share
                            .iter()
                            .map(|path| {
                                Ok(Item::new(&service, (*path).clone())
                                    .get_attributes()?
                                    .remove("username"))
                            })
                            .collect::<std::result::Result<Vec<_>, ss::Error>>()
                    })
                })
                .collect();
            let mut names = Vec::with_capacity(items.len());
            for worker in workers {
                names.extend(join_keyring_worker(worker)?);
            }
            Ok(names)
        })
    }
}

/// Below this many items a bulk read uses one connection: opening more (a
/// D-Bus connection and an encrypted session each) would cost more than it
/// saves.
const BULK_READ_MIN_ITEMS: usize = 64;

/// Connections a bulk read spreads its calls over (see
/// [`KeyringSecretStore::get_all`]).
const BULK_READ_CONNECTIONS: usize = 4;

/// For each item's name, the name if it starts with `prefix` and no other
/// item has it; a duplicated name is left out for every item that has it.
fn unique_names(names: Vec<Option<String>>, prefix: &str) -> Vec<Option<String>> {
    let mut entries_per_name: HashMap<&str, usize> = HashMap::new();
    for name in names.iter().flatten() {
        *entries_per_name.entry(name.as_str()).or_default() += 1;
    }
    let unique: Vec<bool> = names
        .iter()
        .map(|name| {
            name.as_deref().is_some_and(|name| {
                name.starts_with(prefix) && entries_per_name.get(name) == Some(&1)
            })
        })
        .collect();
    names
        .into_iter()
        .zip(unique)
        .map(|(name, unique)| name.filter(|_| unique))
        .collect()
}

fn join_keyring_worker<T>(
    worker: std::thread::ScopedJoinHandle<'_, std::result::Result<T, ss::Error>>,
) -> Result<T> {
    worker
        .join()
        .map_err(|_| ServiceError::internal("a keyring reading thread panicked"))?
        .map_err(map_secret_service_error)
}

/// The items matching a search, unlocking locked ones (which may prompt,
/// as the `keyring` crate does).
fn matching_items<'a>(
    service: &'a SecretService,
    attributes: HashMap<&str, &str>,
) -> std::result::Result<Vec<Item<'a>>, ss::Error> {
    let found = service.search_items(attributes)?;
    for item in &found.locked {
        item.unlock()?;
    }
    let mut items = found.unlocked;
    items.extend(found.locked);
    Ok(items)
}

/// Maps a Secret Service error to ours. Written variant by variant: no
/// error is ever formatted wholesale, so no secret can reach a message.
fn map_secret_service_error(err: ss::Error) -> ServiceError {
    match err {
        ss::Error::Dbus(e) => ServiceError::keyring_unavailable(format!(
            "D-Bus: {}: {}",
            e.name().unwrap_or("unknown error"),
            e.message().unwrap_or("")
        )),
        ss::Error::Unavailable => {
            ServiceError::keyring_unavailable("no D-Bus session or Secret Service provider found")
        }
        ss::Error::Locked => ServiceError::keyring_unavailable("the keyring is locked"),
        ss::Error::Prompt => {
            ServiceError::keyring_unavailable("the keyring unlock prompt was dismissed")
        }
        ss::Error::NoResult => {
            ServiceError::keyring_unavailable("the keyring has no default collection")
        }
        ss::Error::Crypto(_) => {
            ServiceError::internal("the Secret Service session could not decrypt a secret")
        }
        _ => ServiceError::internal("unexpected Secret Service error"),
    }
}

impl Default for KeyringSecretStore {
    fn default() -> Self {
        KeyringSecretStore::new(DEFAULT_KEYRING_SERVICE)
    }
}

/// Maps an error of the `keyring` crate to ours (the store no longer uses
/// that crate; kept for callers that still do).
///
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
        let found = self.with_service(|service| {
            let items = matching_items(service, self.search_attributes(name))?;
            match items.as_slice() {
                [] => Ok(Ok(None)),
                [item] => Ok(Ok(Some(item.get_secret()?))),
                more => Ok(Err(more.len())),
            }
        })?;
        found.map_err(ambiguous_error)
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<()> {
        let done = self.with_service(|service| {
            let items = matching_items(service, self.search_attributes(name))?;
            match items.as_slice() {
                // Update in place, as `keyring` 3 does, so an entry another
                // client created keeps its identity.
                [item] => item.set_secret(secret, SECRET_CONTENT_TYPE).map(Ok),
                [] => {
                    let collection = service.get_default_collection()?;
                    collection.ensure_unlocked()?;
                    let mut attributes = self.search_attributes(name);
                    attributes.insert("application", KEYRING_APPLICATION);
                    let label =
                        format!("{name}@{}:{KEYRING_TARGET} (wa-device-admin)", self.service);
                    collection
                        .create_item(&label, attributes, secret, true, SECRET_CONTENT_TYPE)
                        .map(|_| Ok(()))
                }
                more => Ok(Err(more.len())),
            }
        })?;
        done.map_err(ambiguous_error)
    }

    /// One `SearchItems` for the whole service, then every item's secret, a
    /// batch of items per call (see `batch`), then the names of the items
    /// whose secret carries none. gnome-keyring answers a search by scanning
    /// its items, so a lookup per device costs O(N) each and a restore of N
    /// devices O(N²) in the daemon; this is one scan.
    ///
    /// The Secret Service has no call for many items' attributes: a name
    /// not carried by its secret costs a call of its own. Those calls run on
    /// connections of their own (not the shared one, which other callers
    /// keep using meanwhile): one, or past [`BULK_READ_MIN_ITEMS`] items
    /// [`BULK_READ_CONNECTIONS`], because each is a round trip through the
    /// bus daemon to the keyring daemon, and on one connection both daemons
    /// and this process mostly wait on each other.
    fn get_all(
        &self,
        prefix: &str,
        named_by: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Result<HashMap<String, Vec<u8>>> {
        let paths = self.with_service(|service| {
            let attributes = HashMap::from([
                ("service", self.service.as_str()),
                ("target", KEYRING_TARGET),
            ]);
            Ok(matching_items(service, attributes)?
                .into_iter()
                .map(|item| item.path)
                .collect::<Vec<_>>())
        })?;
        if paths.is_empty() {
            return Ok(HashMap::new());
        }
        let mut secrets = HashMap::with_capacity(paths.len());
        {
            let reader = batch::BatchReader::open().map_err(map_secret_service_error)?;
            for share in paths.chunks(batch::BATCH_ITEMS) {
                secrets.extend(reader.read(share).map_err(map_secret_service_error)?);
            }
        }
        // An item left out (deleted since the search) is skipped: the
        // device's own lookup reports it.
        let mut entries: Vec<(Option<String>, dbus::Path<'static>, Vec<u8>)> = paths
            .into_iter()
            .filter_map(|path| {
                let secret = secrets.remove(&path)?;
                Some((named_by(&secret), path, secret))
            })
            .collect();
        let mut unnamed: Vec<_> = entries
            .iter_mut()
            .filter(|(name, _, _)| name.is_none())
            .collect();
        let recorded =
            self.names_of(&unnamed.iter().map(|(_, path, _)| path).collect::<Vec<_>>())?;
        for ((name, _, _), recorded) in unnamed.iter_mut().zip(recorded) {
            *name = recorded;
        }
        let (names, secrets): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .map(|(name, _, secret)| (name, secret))
            .unzip();
        Ok(unique_names(names, prefix)
            .into_iter()
            .zip(secrets)
            .filter_map(|(name, secret)| Some((name?, secret)))
            .collect())
    }

    fn delete(&self, name: &str) -> Result<()> {
        // Every match goes: a logout must leave no entry of the device.
        self.with_service(|service| {
            for item in matching_items(service, self.search_attributes(name))? {
                item.delete()?;
            }
            Ok(())
        })
    }
}

fn ambiguous_error(count: usize) -> ServiceError {
    ServiceError::internal(format!("{count} keyring entries match one name"))
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
}
