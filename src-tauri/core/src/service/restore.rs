//! Start-up restore and the keyring prefetch.

use super::{DeviceService, ServiceCore};
use crate::app_db::now;
use crate::error::Result;
use crate::model::{Device, DeviceId, DeviceState, StateReason};
use crate::session::store::{SessionStore, secret_entry_name};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The keyring entries of the devices the start-up restore connects, read in
/// one pass in the background (see [`SecretStore::get_all`]),
/// by entry name. Each is taken by the device's first connection attempt,
/// and dropped by any wipe of the device, so it never outlives a logout.
#[derive(Default)]
pub(super) struct KeyringPrefetch {
    pub(super) entries: HashMap<String, Vec<u8>>,
    /// Devices whose entry the read has not reached yet. Their first attempt
    /// waits for it before queueing for a connect permit, instead of each
    /// reading its own entry meanwhile (while the read runs, their session
    /// stores open: see [`ServiceCore::open_stores_ahead`]). Notified (a stored
    /// permit, so none is lost) when the entry arrives, the read ends
    /// without it, or the device is wiped.
    pub(super) awaited: HashMap<String, Arc<tokio::sync::Notify>>,
}

impl KeyringPrefetch {
    /// Keeps `secret` for the device's first attempt if it still awaits it
    /// (a device wiped meanwhile does not).
    pub(super) fn arrived(&mut self, name: String, secret: Vec<u8>) {
        if let Some(waiting) = self.awaited.remove(&name) {
            self.entries.insert(name, secret);
            waiting.notify_one();
        }
    }

    /// Forgets the device's entry, read or awaited.
    pub(super) fn forget(&mut self, name: &str) {
        self.entries.remove(name);
        if let Some(waiting) = self.awaited.remove(name) {
            waiting.notify_one();
        }
    }

    /// The read is over: nobody waits any longer.
    pub(super) fn read_ended(&mut self) {
        for (_, waiting) in self.awaited.drain() {
            waiting.notify_one();
        }
    }
}

impl DeviceService {
    /// Reconnects every device with credentials, `restore_concurrency` at a
    /// time; failures are retried with backoff and jitter (see
    /// [`RetryPolicy`]). Devices `offline` for a permanent reason stay
    /// offline; a temporary ban that has expired is retried.
    pub(super) async fn restore_sessions(&self) -> Result<()> {
        let current = now();
        let restored: Vec<Device> = self
            .inner
            .db
            .devices()?
            .into_iter()
            .filter(|device| {
                device.has_credentials
                    && match device.state {
                        DeviceState::Offline => {
                            device.state_reason == StateReason::TemporarilyBanned
                                && device.ban_expires_at.is_some_and(|t| t <= current)
                        }
                        _ => true,
                    }
            })
            .collect();
        if !restored.is_empty() {
            let mut secrets = self.inner.prefetch();
            for device in &restored {
                secrets.awaited.insert(
                    self.inner.names.device(&device.id),
                    Arc::new(tokio::sync::Notify::new()),
                );
            }
            drop(secrets);
            // One pass over the keyring instead of one search per device,
            // in the background: attempts wait for it. If it fails, each
            // attempt reads its own entry (and reports a keyring that is
            // still unavailable then).
            let inner = Arc::clone(&self.inner);
            let prefix = inner.names.device_prefix();
            tokio::spawn(async move {
                let read = inner
                    .keyring(move |s| s.get_all(&prefix, &secret_entry_name))
                    .await;
                let mut secrets = inner.prefetch();
                for (name, secret) in read.unwrap_or_default() {
                    secrets.arrived(name, secret);
                }
                secrets.read_ended();
            });
        }
        let mut ahead = Vec::with_capacity(restored.len());
        for mut device in restored {
            // Nothing is connected yet, whatever the state was at exit: say
            // so before `open` returns, not once the attempt runs.
            device.connecting(StateReason::Restoring, None);
            self.inner.save_and_emit(&device)?;
            let mut rt = self.inner.lock(&device.id).await;
            self.inner
                .schedule_attempt(&mut rt, &device.id, Duration::ZERO);
            ahead.push(device.id.clone());
        }
        if !ahead.is_empty() {
            tokio::spawn(Arc::clone(&self.inner).open_stores_ahead(ahead));
        }
        Ok(())
    }
}

impl ServiceCore {
    pub(super) fn prefetch(&self) -> std::sync::MutexGuard<'_, KeyringPrefetch> {
        self.prefetch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the session stores of the devices the start-up restore
    /// connects, in `ids` order, while the keyring read they wait for runs:
    /// for a thousand devices the keyring daemon works alone for a few
    /// hundred milliseconds, and opening a store (SQLite parses its schema
    /// per connection) is a large share of what each attempt costs. Stops
    /// when no device waits any longer. Each store goes into the device's
    /// scheduled attempt, under the device's lock: only that attempt uses
    /// it, and an admin action that cancels the attempt closes it first. A
    /// device without its store file is left to its attempt, which reports
    /// the lost credentials; a store that fails to open, too.
    pub(super) async fn open_stores_ahead(self: Arc<Self>, ids: Vec<DeviceId>) {
        for id in ids {
            if self.prefetch().awaited.is_empty() {
                return;
            }
            let mut rt = self.lock(&id).await;
            if rt.session.is_some() {
                continue;
            }
            let Some(timer) = rt.scheduled.as_mut() else {
                continue;
            };
            let path = self.layout.session_db(&id);
            if timer.opened_store.is_some() || !path.exists() {
                continue;
            }
            if let Ok(store) =
                SessionStore::open_named(&path, Arc::clone(&self.secrets), self.names.device(&id))
            {
                timer.opened_store = Some(Arc::new(store));
            }
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
