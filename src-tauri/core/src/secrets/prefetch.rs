//! The start-up restore's read of every device's keyring entry, handed to
//! each device's first connection attempt.

use std::collections::HashMap;
use std::sync::Arc;

/// The keyring entries of the devices the start-up restore connects, read in
/// one pass in the background (see [`super::SecretStore::get_all`]),
/// by entry name. Each is taken by the device's first connection attempt,
/// and dropped by any wipe of the device, so it never outlives a logout.
#[derive(Default)]
pub(crate) struct KeyringPrefetch {
    pub(crate) entries: HashMap<String, Vec<u8>>,
    /// Devices whose entry the read has not reached yet. Their first attempt
    /// waits for it before queueing for a connect permit, instead of each
    /// reading its own entry meanwhile (while the read runs, their session
    /// stores open: see `ServiceCore::open_stores_ahead`). Notified (a stored
    /// permit, so none is lost) when the entry arrives, the read ends
    /// without it, or the device is wiped.
    pub(crate) awaited: HashMap<String, Arc<tokio::sync::Notify>>,
}

impl KeyringPrefetch {
    /// Keeps `secret` for the device's first attempt if it still awaits it
    /// (a device wiped meanwhile does not).
    pub(crate) fn arrived(&mut self, name: String, secret: Vec<u8>) {
        if let Some(waiting) = self.awaited.remove(&name) {
            self.entries.insert(name, secret);
            waiting.notify_one();
        }
    }

    /// Forgets the device's entry, read or awaited.
    pub(crate) fn forget(&mut self, name: &str) {
        self.entries.remove(name);
        if let Some(waiting) = self.awaited.remove(name) {
            waiting.notify_one();
        }
    }

    /// The read is over: nobody waits any longer.
    pub(crate) fn read_ended(&mut self) {
        for (_, waiting) in self.awaited.drain() {
            waiting.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaiting(names: &[&str]) -> (KeyringPrefetch, Vec<Arc<tokio::sync::Notify>>) {
        let mut secrets = KeyringPrefetch::default();
        let notifies = names
            .iter()
            .map(|name| {
                let notify = Arc::new(tokio::sync::Notify::new());
                secrets
                    .awaited
                    .insert(name.to_string(), Arc::clone(&notify));
                notify
            })
            .collect();
        (secrets, notifies)
    }

    /// Whether `notify` holds a wake-up (the waiter may come after it).
    fn woken(notify: &tokio::sync::Notify) -> bool {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.enable()
    }

    #[test]
    fn an_arriving_entry_wakes_its_device_only() {
        let (mut secrets, notifies) = awaiting(&["device/a", "device/b"]);
        secrets.arrived("device/a".into(), b"a".to_vec());
        assert!(woken(&notifies[0]));
        assert!(!woken(&notifies[1]));
        assert_eq!(secrets.entries.get("device/a"), Some(&b"a".to_vec()));
        // Entries of devices not being restored are not kept.
        secrets.arrived("device/other".into(), b"x".to_vec());
        assert!(!secrets.entries.contains_key("device/other"));
    }

    #[test]
    fn an_entry_arriving_after_a_wipe_is_dropped() {
        let (mut secrets, notifies) = awaiting(&["device/a"]);
        secrets.forget("device/a");
        assert!(woken(&notifies[0]), "a waiting attempt must not hang");
        secrets.arrived("device/a".into(), b"a".to_vec());
        assert!(secrets.entries.is_empty());
    }

    #[test]
    fn the_end_of_the_read_releases_every_waiting_device() {
        let (mut secrets, notifies) = awaiting(&["device/a", "device/b"]);
        secrets.arrived("device/a".into(), b"a".to_vec());
        secrets.read_ended();
        assert!(notifies.iter().all(|n| woken(n)));
        assert!(secrets.awaited.is_empty());
        // A wipe after the read still drops what was read.
        secrets.forget("device/a");
        assert!(secrets.entries.is_empty());
    }
}
