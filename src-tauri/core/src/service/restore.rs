//! The start-up restore: every device with credentials reconnects, its
//! keyring entry read ahead in one pass (see [`KeyringPrefetch`]).

use super::{DeviceService, ServiceCore};
use crate::app_db::now;
use crate::error::Result;
use crate::model::{Device, DeviceId, DeviceState, StateReason};
use crate::secrets::KeyringPrefetch;
use crate::session::store::{SessionStore, secret_entry_name};
use std::sync::Arc;
use std::time::Duration;

impl DeviceService {
    /// Reconnects every device with credentials, `restore_concurrency` at a
    /// time; failures are retried with backoff and jitter (see
    /// [`RetryPolicy`]). Devices `offline` for a permanent reason stay
    /// offline; a temporary ban that has expired is retried, and one still
    /// running is retried when it ends.
    pub(super) async fn restore_sessions(&self) -> Result<()> {
        let current = now();
        let devices = self.inner.db.devices()?;
        // A ban still running at start-up ends later: its device reconnects
        // then, as it would have had the app kept running.
        let banned: Vec<(DeviceId, chrono::DateTime<chrono::Utc>)> = devices
            .iter()
            .filter(|d| d.has_credentials && d.state_reason == StateReason::TemporarilyBanned)
            .filter_map(|d| {
                d.ban_expires_at
                    .filter(|t| *t > current)
                    .map(|t| (d.id.clone(), t))
            })
            .collect();
        let restored: Vec<Device> = devices
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
            self.inner.save_and_emit(&mut device)?;
            let mut rt = self.inner.lock(&device.id).await;
            self.inner
                .schedule_attempt(&mut rt, &device.id, Duration::ZERO);
            ahead.push(device.id.clone());
        }
        if !ahead.is_empty() {
            tokio::spawn(Arc::clone(&self.inner).open_stores_ahead(ahead));
        }
        for (id, until) in banned {
            let mut rt = self.inner.lock(&id).await;
            self.inner.reconnect_when_ban_ends(&mut rt, &id, until);
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
