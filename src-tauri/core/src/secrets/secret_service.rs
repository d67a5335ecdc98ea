//! Linux only: the start-up read of every entry in one pass, straight from
//! the freedesktop Secret Service, and the words of its errors.
//!
//! The portable store ([`super::KeyringSecretStore`]) reads one entry per
//! call, and gnome-keyring answers each search by scanning its items: a
//! restore of N devices would cost O(N²) in the daemon. This is one search
//! for the whole service, then every item's secret, a batch of items per
//! call (see `batch`), then the names of the items whose secret carries
//! none. Each step is bounded by the store's [`CallDeadline`]; a failure
//! fails the read, and callers fall back to one `get` per entry.

use super::batch;
use super::deadline::CallDeadline;
use crate::error::{Result, ServiceError};
use dbus_secret_service::{self as ss, EncryptionType, Item, SecretService};
use std::collections::HashMap;
use std::time::Duration;

/// The `target` attribute of every item: what the `keyring` 3 crate gave
/// entries created without one, and so what earlier versions wrote.
pub(super) const ITEM_TARGET: &str = "default";

/// Below this many items a bulk read uses one connection: opening more (a
/// D-Bus connection and an encrypted session each) would cost more than it
/// saves.
const BULK_READ_MIN_ITEMS: usize = 64;

/// Connections a bulk read spreads its name lookups over.
const BULK_READ_CONNECTIONS: usize = 4;

/// What reading a batch of items may add to the deadline: a thousand
/// entries take a second or two on a loaded machine, and only the search
/// (which unlocks) can wait on a prompt.
const BULK_READ_TIME_PER_ITEM: Duration = Duration::from_millis(20);

/// Every secret of `service` whose name starts with `prefix`, by name (see
/// [`super::SecretStore::get_all`]).
pub(super) fn read_all(
    deadline: &CallDeadline,
    service: &str,
    prefix: &str,
    named_by: &dyn Fn(&[u8]) -> Option<String>,
) -> Result<HashMap<String, Vec<u8>>> {
    let searched = service.to_owned();
    let paths = deadline.run(move || search(&searched))?;
    if paths.is_empty() {
        return Ok(HashMap::new());
    }
    let reading = deadline.limit() + BULK_READ_TIME_PER_ITEM * paths.len() as u32;
    let read = paths.clone();
    let mut secrets = deadline.run_within(reading, move || {
        let reader = batch::BatchReader::open().map_err(platform_failure)?;
        let mut secrets = HashMap::with_capacity(read.len());
        for share in read.chunks(batch::BATCH_ITEMS) {
            secrets.extend(reader.read(share).map_err(platform_failure)?);
        }
        Ok(secrets)
    })?;
    // An item left out (deleted since the search) is skipped: the device's
    // own lookup reports it.
    let mut entries: Vec<(Option<String>, dbus::Path<'static>, Vec<u8>)> = paths
        .into_iter()
        .filter_map(|path| {
            let secret = secrets.remove(&path)?;
            Some((named_by(&secret), path, secret))
        })
        .collect();
    let unnamed: Vec<dbus::Path<'static>> = entries
        .iter()
        .filter(|(name, _, _)| name.is_none())
        .map(|(_, path, _)| path.clone())
        .collect();
    if !unnamed.is_empty() {
        let count = unnamed.len();
        let mut recorded = deadline
            .run_within(
                deadline.limit() + BULK_READ_TIME_PER_ITEM * count as u32,
                move || names_of(&unnamed),
            )?
            .into_iter();
        for (name, _, _) in entries.iter_mut().filter(|(name, _, _)| name.is_none()) {
            *name = recorded.next().flatten();
        }
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

/// The paths of every item of `service`, unlocking locked ones (which may
/// prompt). The search carries no secret: its session needs no key exchange.
fn search(service: &str) -> Result<Vec<dbus::Path<'static>>> {
    let connection = SecretService::connect(EncryptionType::Plain).map_err(platform_failure)?;
    let found = connection
        .search_items(HashMap::from([
            ("service", service),
            ("target", ITEM_TARGET),
        ]))
        .map_err(platform_failure)?;
    if !found.locked.is_empty() {
        connection
            .unlock_all(&found.locked.iter().collect::<Vec<_>>())
            .map_err(platform_failure)?;
    }
    Ok(found
        .unlocked
        .into_iter()
        .chain(found.locked)
        .map(|item| item.path)
        .collect())
}

/// The `username` attribute (the name) of each item, in order.
fn names_of(items: &[dbus::Path<'static>]) -> Result<Vec<Option<String>>> {
    let count = if items.len() < BULK_READ_MIN_ITEMS {
        1
    } else {
        BULK_READ_CONNECTIONS
    };
    // Attributes carry no secret: these sessions need no key exchange.
    let connections = (0..count)
        .map(|_| SecretService::connect(EncryptionType::Plain))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(platform_failure)?;
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
                            Ok(Item::new(&service, path.clone())
                                .get_attributes()?
                                .remove("username"))
                        })
                        .collect::<std::result::Result<Vec<_>, ss::Error>>()
                })
            })
            .collect();
        let mut names = Vec::with_capacity(items.len());
        for worker in workers {
            names.extend(
                worker
                    .join()
                    .map_err(|_| ServiceError::internal("a keyring reading thread panicked"))?
                    .map_err(platform_failure)?,
            );
        }
        Ok(names)
    })
}

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

/// Whether a Secret Service failure means the connection or session broke
/// (the keyring daemon restarted, the bus connection dropped), so that a
/// new connection may succeed.
pub(super) fn is_broken_connection(
    source: &(dyn std::error::Error + Send + Sync + 'static),
) -> bool {
    matches!(source.downcast_ref::<ss::Error>(), Some(ss::Error::Dbus(_)))
}

/// A Secret Service failure as ours, recognised by type (the store wraps
/// dbus-secret-service's error). Written variant by variant: no error is
/// ever formatted wholesale, so no secret can reach a message.
pub(super) fn platform_error(
    source: &(dyn std::error::Error + Send + Sync + 'static),
) -> ServiceError {
    match source.downcast_ref::<ss::Error>() {
        Some(err) => secret_service_error(err),
        None => ServiceError::keyring_unavailable("the Secret Service failed"),
    }
}

fn platform_failure(err: ss::Error) -> ServiceError {
    secret_service_error(&err)
}

fn secret_service_error(err: &ss::Error) -> ServiceError {
    match err {
        ss::Error::Dbus(e) => ServiceError::keyring_unavailable(dbus_words(e.name())),
        ss::Error::Unavailable => {
            ServiceError::keyring_unavailable("no D-Bus session or Secret Service provider found")
        }
        ss::Error::Locked => ServiceError::keyring_unavailable("the keyring is locked"),
        ss::Error::Prompt => ServiceError::keyring_unavailable(
            "the keyring is locked and its unlock prompt was dismissed",
        ),
        ss::Error::NoResult => {
            ServiceError::keyring_unavailable("the keyring has no default collection")
        }
        ss::Error::Crypto(_) => {
            ServiceError::internal("the Secret Service session could not decrypt a secret")
        }
        _ => ServiceError::internal("unexpected Secret Service error"),
    }
}

/// A D-Bus failure in words, from the error's name alone: its message can
/// hold socket paths and bus addresses, which are no business of an admin
/// reading an error.
fn dbus_words(name: Option<&str>) -> &'static str {
    match name.and_then(|n| n.strip_prefix("org.freedesktop.DBus.Error.")) {
        Some("ServiceUnknown" | "NameHasNoOwner") => "no Secret Service provider is running",
        Some("NoServer" | "FileNotFound" | "Disconnected" | "BadAddress" | "Spawn.ChildExited") => {
            "the D-Bus session bus cannot be reached"
        }
        Some("NoReply" | "Timeout" | "TimedOut") => "the Secret Service did not answer in time",
        Some("AccessDenied" | "AuthFailed") => "D-Bus refused access to the Secret Service",
        Some("UnknownMethod" | "UnknownObject" | "UnknownInterface" | "NotSupported") => {
            "the Secret Service provider does not support what was asked"
        }
        _ => "the D-Bus call to the Secret Service failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn dbus_failures_are_told_by_name_without_paths() {
        let no_bus = dbus::Error::new_custom(
            "org.freedesktop.DBus.Error.NoServer",
            "Failed to connect to socket /run/user/0/bus: Connection refused",
        );
        let err = secret_service_error(&ss::Error::Dbus(no_bus));
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        assert!(
            err.message
                .ends_with(": the D-Bus session bus cannot be reached"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("/run"), "{}", err.message);
        let odd = dbus::Error::new_custom("com.example.Odd", "/tmp/secret/path");
        let err = secret_service_error(&ss::Error::Dbus(odd));
        assert!(!err.message.contains('/'), "{}", err.message);
    }

    #[test]
    fn a_locked_or_dismissed_keyring_says_it_is_locked() {
        for err in [ss::Error::Locked, ss::Error::Prompt] {
            let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
            let mapped = platform_error(boxed.as_ref());
            assert_eq!(mapped.code, ErrorCode::KeyringUnavailable);
            assert!(mapped.message.contains("locked"), "{mapped:?}");
        }
    }

    #[test]
    fn duplicated_and_foreign_names_are_left_out() {
        let names = vec![
            Some("device/a".to_owned()),
            Some("device/b".to_owned()),
            Some("device/b".to_owned()),
            Some("api/basic-auth".to_owned()),
            None,
        ];
        assert_eq!(
            unique_names(names, "device/"),
            vec![Some("device/a".to_owned()), None, None, None, None]
        );
    }
}
