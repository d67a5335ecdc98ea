//! The device service: every operation the GUI and the REST API offer.
//!
//! Concurrency: each device has a lock (an async mutex). Every operation on
//! a device, and every reaction to an event of its WhatsApp session, runs with
//! that lock held, so operations on one device are serialized: a logout during
//! pairing, two logouts at once, or a delete during a reconnect each run one
//! after the other and see the state the previous one left. Waiting for a QR
//! code or pairing code happens after the lock is released.
//!
//! Where things happen:
//! - this file: opening the service, the admin operations that need no
//!   session (create, list, rename, history), shutdown, and the helpers every
//!   operation shares (saving a device, the history, keyring calls);
//! - [`config`]: [`ServiceConfig`] and the [`RetryPolicy`];
//! - [`device_lock`]: the per-device lock and what it guards (the live
//!   session, pending login replies, the scheduled attempt);
//! - [`login`]: QR and pairing-code logins, cancelling them;
//! - [`logout`]: the product's four logout steps, delete, and finishing
//!   wipes a crash interrupted;
//! - [`connection`]: reconnect, starting sessions, retries with backoff;
//! - [`reconcile`]: devices the app database lost, found by their files;
//! - [`restore`]: the start-up restore, fed by the keyring prefetch
//!   (`crate::secrets::KeyringPrefetch`);
//! - [`keyring_scope`]: moving a folder's entries from before scopes under
//!   its scope, once;
//! - [`revocation`]: pending revocations, retried until WhatsApp confirms;
//! - [`reactions`]: the table of what each event of a device's WhatsApp
//!   session, and the end of its run loop, does to the device (pure data:
//!   transition, reason, history entry, notice, wording);
//! - [`reaction_effects`]: applying those reactions under the device's lock
//!   (stopping the session, saving, wiping, recording).

mod config;
mod connection;
mod device_lock;
mod keyring_scope;
mod login;
mod login_takeover;
mod logout;
mod qr_images;
mod reaction_effects;
mod reactions;
mod reconcile;
mod restore;
mod revocation;
mod webhook_settings;

pub use config::{RetryPolicy, ServiceConfig};
pub use login::{LoginStep, LoginStepObserver, OnPendingLogin};
pub use logout::{WipeStep, WipeStepObserver};
pub use revocation::RevocationTry;

use crate::app_db::{AppDatabase, history_to_csv, now};
use crate::error::{Result, ServiceError};
use crate::files::{DataLayout, create_private_dir};
use crate::model::{
    Actor, Device, DeviceId, DeviceList, HistoryAction, HistoryEntry, NewDevice, Outcome,
    ServiceEvent, StateReason, normalize_label,
};
use crate::secrets::KeyringPrefetch;
use crate::secrets::{KeyringNames, SecretStore};
use crate::session::SessionSettings;
use device_lock::{DeviceGuard, DeviceLocks};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, broadcast};

struct ServiceCore {
    db: AppDatabase,
    layout: DataLayout,
    /// The names of this folder's keyring entries.
    names: KeyringNames,
    secrets: Arc<dyn SecretStore>,
    sessions: SessionSettings,
    unlink_timeout: Duration,
    login_timeout: Duration,
    retry: RetryPolicy,
    /// See [`ServiceConfig::restore_concurrency`].
    connect_permits: Arc<Semaphore>,
    wipe_step_observer: Option<WipeStepObserver>,
    login_step_observer: Option<LoginStepObserver>,
    events: broadcast::Sender<ServiceEvent>,
    locks: DeviceLocks,
    next_generation: AtomicU64,
    /// The data folder, locked exclusively while the service lives (see
    /// [`DataLayout::lock_exclusively`]); released by `shutdown` or when the
    /// process ends.
    folder_lock: Mutex<Option<std::fs::File>>,
    /// Keyring entries of the devices the start-up restore connects.
    prefetch: Mutex<KeyringPrefetch>,
    /// See [`ServiceConfig::revocation_retry`].
    revocation_retry: RetryPolicy,
    /// Wakes the revocation task: a revocation was added or is due now.
    revocation_wakeup: Arc<tokio::sync::Notify>,
    /// One lock per pending revocation's JID, held by each try of it and by
    /// forgetting it.
    revocation_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    revocation_runner: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Device changes on their way to the devices' webhooks.
    webhooks: Arc<crate::webhooks::Outbox>,
    /// See [`DeviceService::startup_warnings`].
    startup_warnings: Mutex<Vec<String>>,
}

/// The device service. Cheap to clone; all clones drive the same devices.
#[derive(Clone)]
pub struct DeviceService {
    inner: Arc<ServiceCore>,
}

/// Capacity of the event channel; a subscriber that falls further behind
/// misses events (and sees `RecvError::Lagged`), it never blocks the service.
const EVENT_CAPACITY: usize = 4096;

impl DeviceService {
    /// Opens the service on `config.data_dir`: creates or migrates the app
    /// database, finishes wipes a crash interrupted, resets logins a crash
    /// left pending, and (if configured) reconnects every device with
    /// credentials in the background.
    pub async fn open(config: ServiceConfig) -> Result<DeviceService> {
        create_private_dir(&config.data_dir)?;
        let layout = DataLayout::new(config.data_dir.clone());
        let folder_lock = layout.lock_exclusively()?;
        create_private_dir(&layout.sessions_dir())?;
        let names = KeyringNames::for_folder(&layout)?;
        let opened = reconcile::open_app_database(&layout)?;
        for warning in &opened.warnings {
            eprintln!("wa-device-admin: warning: {warning}");
        }
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let service = DeviceService {
            inner: Arc::new(ServiceCore {
                db: opened.db,
                layout,
                names,
                secrets: config.secret_store,
                sessions: SessionSettings {
                    server: config.server,
                    #[cfg(feature = "simulator")]
                    time_factor: config.client_time_factor,
                },
                unlink_timeout: config.unlink_timeout,
                login_timeout: config.login_timeout,
                retry: config.retry,
                connect_permits: Arc::new(Semaphore::new(config.restore_concurrency.max(1))),
                wipe_step_observer: config.wipe_step_observer,
                login_step_observer: config.login_step_observer,
                events,
                locks: DeviceLocks::default(),
                next_generation: AtomicU64::new(1),
                folder_lock: Mutex::new(Some(folder_lock)),
                prefetch: Mutex::new(KeyringPrefetch::default()),
                revocation_retry: config.revocation_retry,
                revocation_wakeup: Arc::new(tokio::sync::Notify::new()),
                revocation_turns: Mutex::new(HashMap::new()),
                revocation_runner: Mutex::new(None),
                webhooks: crate::webhooks::Outbox::new(config.webhook_delivery),
                startup_warnings: Mutex::new(opened.warnings),
            }),
        };
        service.inner.start_webhooks().await?;
        service.scope_old_entries().await;
        service.recover().await?;
        service.reconcile(opened.lost).await?;
        if config.restore_on_open {
            service.restore_sessions().await?;
            service.inner.start_revocations();
        }
        Ok(service)
    }

    /// Events for the shell to forward.
    pub fn subscribe(&self) -> broadcast::Receiver<ServiceEvent> {
        self.inner.events.subscribe()
    }

    /// The names of this folder's keyring entries (the shell names the REST
    /// API's password entry with them).
    pub fn keyring_names(&self) -> &KeyringNames {
        &self.inner.names
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.inner.layout.root()
    }

    /// Creates a device (`disconnected`, reason `created`).
    pub async fn create(&self, new: NewDevice, actor: Actor) -> Result<Device> {
        let label = normalize_label(&new.label)?;
        let id = match new.id.as_deref() {
            Some(id) => DeviceId::parse(id)?,
            None => loop {
                let id = DeviceId::generate();
                if self.inner.db.device(&id)?.is_none() {
                    break id;
                }
            },
        };
        let _guard = self.inner.lock(&id).await;
        let mut device = Device::created(id.clone(), label, now());
        self.inner.db.insert_device(&mut device)?;
        self.inner.record(
            &id,
            HistoryAction::Create,
            &actor,
            Outcome::Ok,
            format!("label \"{}\"", device.label),
        );
        self.inner.emit_device(&device);
        Ok(device)
    }

    /// All devices, ordered by id.
    pub fn list(&self) -> Result<Vec<Device>> {
        self.inner.db.devices()
    }

    /// All devices, ordered by id, with the revision they are current as of
    /// (for a window that also follows the events).
    pub fn device_list(&self) -> Result<DeviceList> {
        self.inner.db.device_list()
    }

    pub fn get(&self, id: &str) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        self.inner.device(&id)
    }

    pub async fn rename(&self, id: &str, label: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let label = normalize_label(label)?;
        let _guard = self.inner.lock(&id).await;
        let mut device = self.inner.device(&id)?;
        let old = std::mem::replace(&mut device.label, label);
        self.inner.db.update_device(&mut device)?;
        self.inner.record(
            &id,
            HistoryAction::Rename,
            &actor,
            Outcome::Ok,
            format!("from \"{old}\" to \"{}\"", device.label),
        );
        self.inner.emit_device(&device);
        Ok(device)
    }

    /// A device's history, oldest first. Works for deleted devices too, as
    /// long as they have history; `not_found` otherwise.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>> {
        let id = DeviceId::parse(id)?;
        let entries = self.inner.db.history(&id)?;
        if entries.is_empty() && self.inner.db.device(&id)?.is_none() {
            return Err(ServiceError::not_found(id.as_str()));
        }
        Ok(entries)
    }

    /// [`DeviceService::history`] as CSV with a header row.
    pub fn history_csv(&self, id: &str) -> Result<String> {
        Ok(history_to_csv(&self.history(id)?))
    }

    /// Stops every live session (without logging anything out). For an
    /// orderly exit; the service can keep being used afterwards.
    pub async fn shutdown(&self) {
        for (_, lock) in self.inner.locks.all() {
            let mut rt = lock.lock_owned().await;
            // Scheduled retries are cancelled too, session or not.
            rt.take_session().stop().await;
        }
        self.inner.stop_revocations();
        self.inner.webhooks.stop();
        // Lets another service (a restart in the same process) open the folder.
        self.inner
            .folder_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

impl ServiceCore {
    /// Waits for the device's lock (see [`DeviceLocks`]).
    async fn lock(&self, id: &DeviceId) -> DeviceGuard {
        self.locks.lock(id).await
    }

    fn device(&self, id: &DeviceId) -> Result<Device> {
        self.db
            .device(id)?
            .ok_or_else(|| ServiceError::not_found(id.as_str()))
    }

    fn emit_device(&self, device: &Device) {
        tracing::info!(
            device_id = %device.id,
            state = device.state.as_str(),
            reason = device.state_reason.as_str(),
            linked = device.has_credentials,
            "device state"
        );
        self.webhooks.device_changed(device);
        // No subscriber is not an error.
        let _ = self.events.send(ServiceEvent::DeviceChanged {
            device: device.clone(),
        });
    }

    /// Saves the device (stamping its new revision into `device`) and
    /// announces it.
    fn save_and_emit(&self, device: &mut Device) -> Result<()> {
        self.db.update_device(device)?;
        self.emit_device(device);
        Ok(())
    }

    fn notice(&self, id: &DeviceId, reason: StateReason, message: String) {
        tracing::info!(device_id = %id, reason = reason.as_str(), %message, "notice");
        let _ = self.events.send(ServiceEvent::Notice {
            device_id: id.clone(),
            reason,
            message,
        });
    }

    /// Appends to the history. A failure to record is not a failure of the
    /// action (which already happened), so it is not returned.
    fn record(
        &self,
        id: &DeviceId,
        action: HistoryAction,
        actor: &Actor,
        outcome: Outcome,
        detail: String,
    ) {
        // History details are written for admins to read (never a key, a
        // QR payload or a code), so they are logged as they are.
        if outcome == Outcome::Failed {
            tracing::warn!(device_id = %id, action = action.as_str(), actor = %actor, outcome = outcome.as_str(), %detail, "action");
        } else {
            tracing::info!(device_id = %id, action = action.as_str(), actor = %actor, outcome = outcome.as_str(), %detail, "action");
        }
        let _ = self.db.append_history(&HistoryEntry {
            at: now(),
            device_id: id.to_string(),
            action,
            actor: actor.clone(),
            outcome,
            detail,
        });
    }

    /// Records an admin operation's result: `ok` with `detail`, or `failed`
    /// with the error's message.
    fn record_result<T>(
        &self,
        id: &DeviceId,
        action: HistoryAction,
        actor: &Actor,
        result: &Result<T>,
        detail: impl FnOnce(&T) -> String,
    ) {
        match result {
            Ok(value) => self.record(id, action, actor, Outcome::Ok, detail(value)),
            Err(err) => self.record(id, action, actor, Outcome::Failed, err.message.clone()),
        }
    }

    /// Runs a keyring call off the async workers (the Secret Service client
    /// blocks on D-Bus).
    async fn keyring<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SecretStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.secrets);
        tokio::task::spawn_blocking(move || call(&*store))
            .await
            .map_err(|e| ServiceError::internal(format!("keyring task failed: {e}")))?
    }
}
