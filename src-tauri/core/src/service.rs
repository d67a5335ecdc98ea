//! The device service: every operation the GUI and the REST API offer.
//!
//! Concurrency: each device has a slot with an async mutex. Every operation on
//! a device, and every reaction to an event of its WhatsApp session, runs with
//! that lock held, so operations on one device are serialized: a logout during
//! pairing, two logouts at once, or a delete during a reconnect each run one
//! after the other and see the state the previous one left. Waiting for a QR
//! code or pairing code happens after the lock is released.

use crate::app_db::{AppDatabase, PendingWipe, history_to_csv, now};
use crate::error::{ErrorCode, Result, ServiceError};
use crate::files::{DataLayout, create_private_dir};
use crate::model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, HistoryEntry, LogoutOutcome, NewDevice,
    Outcome, PairingCode, QrCode, ServiceEvent, StateReason, normalize_label,
    normalize_phone_number,
};
use crate::secrets::SecretStore;
use crate::session::store::{SECRET_NAME_PREFIX, SessionStore, secret_entry_name, secret_name};
use crate::session::{
    LiveSession, ServerEndpoint, SessionEvents, SessionPurpose, SessionSecrets, SessionSettings,
    SessionSignal, StoreSource,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};
use wacore::types::events::{ConnectFailureReason, Event};

/// A step of a logout or delete, reported to [`ServiceConfig::wipe_step_observer`]
/// right after it completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WipeStep {
    /// The wipe is recorded in the journal; nothing else happened yet.
    Journaled,
    /// Step 1: the unlink was attempted (confirmed or not).
    Unlinked,
    /// Step 2: the device's keyring entry is deleted.
    SecretsDeleted,
    /// Step 3: the device is `disconnected` with blank identity fields.
    DeviceReset,
    /// Step 4: the device's session store files are deleted.
    SessionFilesDeleted,
    /// Delete only: the device row is removed.
    DeviceRemoved,
}

/// Called after each wipe step. For crash tests: a test child process blocks
/// here so that its parent can kill it between two steps.
pub type WipeStepObserver = Arc<dyn Fn(&DeviceId, WipeStep) + Send + Sync>;

/// When the service tries again to connect a device with credentials whose
/// connection failed or dropped. The delay before attempt `n` (0-based) is
/// `min(base * 2^n, max)`, spread by a random factor in `1 ± jitter` so that
/// many devices that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    /// Between 0 and 1.
    pub jitter: f64,
    /// A connection that lasted this long before it dropped counts as
    /// healthy: the next delay starts again from `base`.
    pub stable_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let nominal = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = if jitter > 0.0 {
            rand::rng().random_range(1.0 - jitter..=1.0 + jitter)
        } else {
            1.0
        };
        nominal.mul_f64(factor)
    }
}

/// How the service is set up.
#[derive(Clone)]
pub struct ServiceConfig {
    /// The app-data folder; created private (0700) if missing.
    pub data_dir: PathBuf,
    /// Where long-term secrets go: the OS keyring in the product.
    pub secret_store: Arc<dyn SecretStore>,
    /// Where sessions connect. Only WhatsApp itself outside the `simulator`
    /// feature.
    pub server: ServerEndpoint,
    /// How many devices connect at once during the start-up restore and
    /// the retries the service schedules (an admin's reconnect is not
    /// counted).
    pub restore_concurrency: usize,
    /// Backoff and jitter of the retries after a failed or dropped
    /// connection.
    pub retry: RetryPolicy,
    /// Upper bound of logout step 1 (connecting if needed, then the unlink).
    pub unlink_timeout: Duration,
    /// How long a login waits for the first QR code or the pairing code.
    pub login_timeout: Duration,
    /// Reconnect devices with credentials at start-up.
    pub restore_on_open: bool,
    /// See [`WipeStepObserver`].
    pub wipe_step_observer: Option<WipeStepObserver>,
    /// Simulator builds: divides the client's sleeps and timeouts (see
    /// [`crate::session::SessionSettings`]). 1 = real time.
    #[cfg(feature = "simulator")]
    pub client_time_factor: u32,
}

impl ServiceConfig {
    pub fn new(data_dir: impl Into<PathBuf>, secret_store: Arc<dyn SecretStore>) -> ServiceConfig {
        ServiceConfig {
            data_dir: data_dir.into(),
            secret_store,
            server: ServerEndpoint::default(),
            restore_concurrency: 64,
            retry: RetryPolicy::default(),
            unlink_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            restore_on_open: true,
            wipe_step_observer: None,
            #[cfg(feature = "simulator")]
            client_time_factor: 1,
        }
    }
}

/// The session-related state of one device, guarded by its slot's lock.
#[derive(Default)]
struct SlotState {
    session: Option<LiveSession>,
    first_qr: Option<oneshot::Sender<Result<QrCode>>>,
    pairing_code: Option<oneshot::Sender<Result<PairingCode>>>,
    /// The scheduled connection attempt, if any. Invariant: set only while
    /// there is no session; replacing or clearing it cancels the attempt.
    retry: Option<RetryTimer>,
    /// Failed attempts since the last healthy connection (drives the backoff).
    retry_attempt: u32,
    /// Held by a scheduled attempt from its start until the session is
    /// logged in or ends: bounds how many handshakes run at once.
    connect_permit: Option<OwnedSemaphorePermit>,
    /// When the current session logged in.
    connected_since: Option<std::time::Instant>,
}

impl SlotState {
    /// Takes the session out (to be stopped) and cancels whatever was
    /// pending for it.
    fn take_session(&mut self) -> Option<LiveSession> {
        self.retry = None;
        self.connect_permit = None;
        self.connected_since = None;
        self.session.take()
    }
}

/// A scheduled connection attempt; dropping it cancels the attempt.
struct RetryTimer {
    token: u64,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The device's session store, opened ahead of the attempt (see
    /// [`Inner::open_stores_ahead`]). A cancelled attempt drops, and so
    /// closes, it before anything else happens to the device.
    opened_store: Option<Arc<SessionStore>>,
}

impl RetryTimer {
    /// Lets the attempt's own task go on after it took the timer out; hands
    /// it the store opened ahead, if any.
    fn disarm(mut self) -> Option<Arc<SessionStore>> {
        self.task = None;
        self.opened_store.take()
    }
}

impl Drop for RetryTimer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[derive(Default)]
struct Slot {
    state: tokio::sync::Mutex<SlotState>,
}

struct Inner {
    db: AppDatabase,
    layout: DataLayout,
    secrets: Arc<dyn SecretStore>,
    sessions: SessionSettings,
    unlink_timeout: Duration,
    login_timeout: Duration,
    retry: RetryPolicy,
    /// See [`ServiceConfig::restore_concurrency`].
    connect_permits: Arc<Semaphore>,
    wipe_step_observer: Option<WipeStepObserver>,
    events: broadcast::Sender<ServiceEvent>,
    slots: Mutex<HashMap<DeviceId, Arc<Slot>>>,
    next_generation: AtomicU64,
    /// The data folder's lock file, locked exclusively while the service
    /// lives (see [`DataLayout::lock_file`]); released by `shutdown` or when
    /// the process ends.
    folder_lock: Mutex<Option<std::fs::File>>,
    /// Keyring entries of the devices the start-up restore connects.
    restore_secrets: Mutex<RestoreSecrets>,
}

/// The keyring entries of the devices the start-up restore connects, read in
/// one pass in the background (see [`SecretStore::get_all`]),
/// by entry name. Each is taken by the device's first connection attempt,
/// and dropped by any wipe of the device, so it never outlives a logout.
#[derive(Default)]
struct RestoreSecrets {
    entries: HashMap<String, Vec<u8>>,
    /// Devices whose entry the read has not reached yet. Their first attempt
    /// waits for it before queueing for a connect permit, instead of each
    /// reading its own entry meanwhile (while the read runs, their session
    /// stores open: see [`Inner::open_stores_ahead`]). Notified (a stored
    /// permit, so none is lost) when the entry arrives, the read ends
    /// without it, or the device is wiped.
    awaited: HashMap<String, Arc<tokio::sync::Notify>>,
}

impl RestoreSecrets {
    /// Keeps `secret` for the device's first attempt if it still awaits it
    /// (a device wiped meanwhile does not).
    fn arrived(&mut self, name: String, secret: Vec<u8>) {
        if let Some(waiting) = self.awaited.remove(&name) {
            self.entries.insert(name, secret);
            waiting.notify_one();
        }
    }

    /// Forgets the device's entry, read or awaited.
    fn forget(&mut self, name: &str) {
        self.entries.remove(name);
        if let Some(waiting) = self.awaited.remove(name) {
            waiting.notify_one();
        }
    }

    /// The read is over: nobody waits any longer.
    fn read_ended(&mut self) {
        for (_, waiting) in self.awaited.drain() {
            waiting.notify_one();
        }
    }
}

/// The device service. Cheap to clone; all clones drive the same devices.
#[derive(Clone)]
pub struct DeviceService {
    inner: Arc<Inner>,
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
        let db = AppDatabase::open(&layout.app_db())?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let service = DeviceService {
            inner: Arc::new(Inner {
                db,
                layout,
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
                events,
                slots: Mutex::new(HashMap::new()),
                next_generation: AtomicU64::new(1),
                folder_lock: Mutex::new(Some(folder_lock)),
                restore_secrets: Mutex::new(RestoreSecrets::default()),
            }),
        };
        service.recover().await?;
        if config.restore_on_open {
            service.restore_sessions().await?;
        }
        Ok(service)
    }

    /// Events for the shell to forward.
    pub fn subscribe(&self) -> broadcast::Receiver<ServiceEvent> {
        self.inner.events.subscribe()
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
        let slot = self.inner.slot(&id);
        let _guard = slot.state.lock().await;
        let device = Device {
            id: id.clone(),
            label,
            phone_number: None,
            display_name: None,
            jid: None,
            state: DeviceState::Disconnected,
            state_reason: StateReason::Created,
            next_retry_at: None,
            ban_expires_at: None,
            has_credentials: false,
            created_at: now(),
            last_connected_at: None,
        };
        self.inner.db.insert_device(&device)?;
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

    pub fn get(&self, id: &str) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        self.inner.device(&id)
    }

    pub async fn rename(&self, id: &str, label: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let label = normalize_label(label)?;
        let slot = self.inner.slot(&id);
        let _guard = slot.state.lock().await;
        let mut device = self.inner.device(&id)?;
        let old = std::mem::replace(&mut device.label, label);
        self.inner.db.update_device(&device)?;
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

    /// Starts a QR login and returns the first QR code; later codes come as
    /// [`ServiceEvent::QrCode`]. When the codes run out the device returns to
    /// `disconnected` with reason `qr_expired`.
    pub async fn login_qr(&self, id: &str, actor: Actor) -> Result<QrCode> {
        let id = DeviceId::parse(id)?;
        let (tx, rx) = oneshot::channel();
        self.start_pairing(&id, &actor, SessionPurpose::PairByQr, |st| {
            st.first_qr = Some(tx)
        })
        .await?;
        self.await_login(&id, rx, "QR code").await
    }

    /// Starts a login by pairing code for `phone_number` and returns the code
    /// (`XXXX-XXXX`) to type on the phone.
    pub async fn login_code(
        &self,
        id: &str,
        phone_number: &str,
        actor: Actor,
    ) -> Result<PairingCode> {
        let id = DeviceId::parse(id)?;
        let phone = normalize_phone_number(phone_number)?;
        let (tx, rx) = oneshot::channel();
        self.start_pairing(&id, &actor, SessionPurpose::PairByCode(phone), |st| {
            st.pairing_code = Some(tx)
        })
        .await?;
        self.await_login(&id, rx, "pairing code").await
    }

    async fn await_login<T>(
        &self,
        id: &DeviceId,
        rx: oneshot::Receiver<Result<T>>,
        what: &str,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.login_timeout, rx).await {
            Ok(Ok(result)) => result,
            // The sender was dropped: the pairing ended (cancelled, logged
            // out, deleted) before the first code arrived.
            Ok(Err(_)) => Err(ServiceError::whatsapp(format!(
                "the login ended before a {what} arrived"
            ))),
            Err(_) => {
                let slot = self.inner.slot(id);
                let mut st = slot.state.lock().await;
                if let Ok(device) = self.inner.device(id)
                    && device.state == DeviceState::Pairing
                {
                    self.inner
                        .end_pairing(&mut st, device, StateReason::PairingFailed)
                        .await?;
                }
                Err(ServiceError::whatsapp(format!(
                    "WhatsApp sent no {what} within {} s",
                    self.inner.login_timeout.as_secs()
                )))
            }
        }
    }

    async fn start_pairing(
        &self,
        id: &DeviceId,
        actor: &Actor,
        purpose: SessionPurpose,
        arm: impl FnOnce(&mut SlotState),
    ) -> Result<()> {
        let action = match purpose {
            SessionPurpose::PairByCode(_) => HistoryAction::LoginCode,
            _ => HistoryAction::LoginQr,
        };
        let slot = self.inner.slot(id);
        let mut st = slot.state.lock().await;
        let mut device = self.inner.device(id)?;
        let refused = match device.state {
            DeviceState::Pairing => Some("a login is already pending; cancel it first"),
            _ if device.has_credentials => {
                Some("the device is linked already; log it out before linking it again")
            }
            _ => None,
        };
        if let Some(why) = refused {
            self.inner
                .record(id, action, actor, Outcome::Failed, why.to_owned());
            return Err(ServiceError::busy(why));
        }
        // A fresh client every time: whatever an earlier pairing left behind
        // (keyring entry, session store) goes first.
        if let Err(err) = self.inner.wipe_local(id).await {
            self.inner
                .record(id, action, actor, Outcome::Failed, err.message.clone());
            return Err(err);
        }
        arm(&mut st);
        let reason = match purpose {
            SessionPurpose::PairByCode(_) => StateReason::CodeLoginRequested,
            _ => StateReason::QrLoginRequested,
        };
        if let Err(err) = self
            .inner
            .start_session(id, &mut st, purpose, None, None)
            .await
        {
            st.first_qr = None;
            st.pairing_code = None;
            // Starting may have created the store and the keyring entry.
            let _ = self.inner.wipe_local(id).await;
            self.inner
                .record(id, action, actor, Outcome::Failed, err.message.clone());
            return Err(err);
        }
        device.state = DeviceState::Pairing;
        device.state_reason = reason;
        device.next_retry_at = None;
        device.ban_expires_at = None;
        self.inner.save(&device)?;
        self.inner
            .record(id, action, actor, Outcome::Ok, "login started".to_owned());
        Ok(())
    }

    /// Cancels a pending login (QR or code). On a device that is not pairing
    /// this changes nothing and returns the device as it is.
    pub async fn cancel_login(&self, id: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let slot = self.inner.slot(&id);
        let mut st = slot.state.lock().await;
        let device = self.inner.device(&id)?;
        if device.state != DeviceState::Pairing {
            self.inner.record(
                &id,
                HistoryAction::CancelLogin,
                &actor,
                Outcome::Ok,
                "no login pending; nothing changed".to_owned(),
            );
            return Ok(device);
        }
        let device = self
            .inner
            .end_pairing(&mut st, device, StateReason::LoginCancelled)
            .await?;
        self.inner.record(
            &id,
            HistoryAction::CancelLogin,
            &actor,
            Outcome::Ok,
            "pending login cancelled".to_owned(),
        );
        Ok(device)
    }

    /// Drops and re-opens the connection of a device with credentials.
    /// `no_credentials` on a device without.
    pub async fn reconnect(&self, id: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let slot = self.inner.slot(&id);
        let mut st = slot.state.lock().await;
        let device = self.inner.device(&id)?;
        let result = if device.has_credentials {
            // The admin's attempt starts the backoff afresh.
            st.retry_attempt = 0;
            self.inner
                .connect(&mut st, device, StateReason::ReconnectRequested, None)
                .await
        } else {
            Err(ServiceError::new(
                ErrorCode::NoCredentials,
                format!(
                    "device \"{id}\" has no credentials to reconnect with; link it by QR code or pairing code"
                ),
            ))
        };
        self.inner
            .record_result(&id, HistoryAction::Reconnect, &actor, &result, |_| {
                "connection re-opened".to_owned()
            });
        result
    }

    /// Logs a device out: unlink at WhatsApp (bounded), delete its keyring
    /// entry, reset it to `disconnected`, delete its session store. The local
    /// wipe happens even when the unlink is not confirmed.
    pub async fn logout(&self, id: &str, actor: Actor) -> Result<LogoutOutcome> {
        let id = DeviceId::parse(id)?;
        let slot = self.inner.slot(&id);
        let mut st = slot.state.lock().await;
        let device = self.inner.device(&id)?;
        let outcome = self
            .inner
            .logout_locked(&mut st, device, &actor, false)
            .await;
        self.inner
            .record_result(&id, HistoryAction::Logout, &actor, &outcome, |o| {
                o.message.clone()
            });
        outcome
    }

    /// Deletes a device: logs it out first when it has credentials (same
    /// semantics as [`DeviceService::logout`]), then removes it and its data.
    /// Its history stays (audit trail).
    pub async fn delete(&self, id: &str, actor: Actor) -> Result<LogoutOutcome> {
        let id = DeviceId::parse(id)?;
        let slot = self.inner.slot(&id);
        let mut st = slot.state.lock().await;
        let device = self.inner.device(&id)?;
        let outcome = self
            .inner
            .logout_locked(&mut st, device, &actor, true)
            .await;
        self.inner
            .record_result(&id, HistoryAction::Delete, &actor, &outcome, |o| {
                o.message.clone()
            });
        if outcome.is_ok() {
            self.inner
                .slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = self
                .inner
                .events
                .send(ServiceEvent::DeviceRemoved { device_id: id });
        }
        outcome
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
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let mut st = slot.state.lock().await;
            // Scheduled retries are cancelled too, session or not.
            if let Some(session) = st.take_session() {
                session.stop().await;
            }
        }
        // Lets another service (a restart in the same process) open the folder.
        self.inner
            .folder_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Start-up: finish interrupted wipes, reset interrupted logins.
    async fn recover(&self) -> Result<()> {
        for wipe in self.inner.db.pending_wipes()? {
            // A keyring that is unavailable now leaves the journal row in
            // place: the wipe is finished at a later start.
            if let Err(err) = self.inner.finish_wipe(&wipe, StateReason::LoggedOut).await {
                self.inner.record(
                    &wipe.device_id,
                    HistoryAction::RecoveredWipe,
                    &Actor::System,
                    Outcome::Failed,
                    err.message,
                );
                continue;
            }
            self.inner.record(
                &wipe.device_id,
                HistoryAction::RecoveredWipe,
                &Actor::System,
                Outcome::Ok,
                format!(
                    "{} interrupted by a crash finished at start-up; {}",
                    if wipe.delete_device {
                        "delete"
                    } else {
                        "logout"
                    },
                    unlink_sentence(wipe.unlink_confirmed)
                ),
            );
        }
        for mut device in self.inner.db.devices()? {
            if device.state == DeviceState::Pairing {
                // The process died while pairing: the half-made credentials
                // go, the device is back to where the login started.
                if self.inner.wipe_local(&device.id).await.is_ok() {
                    device.state = DeviceState::Disconnected;
                    device.state_reason = StateReason::LoginCancelled;
                    self.inner.save(&device)?;
                }
            }
        }
        Ok(())
    }

    /// Reconnects every device with credentials, `restore_concurrency` at a
    /// time; failures are retried with backoff and jitter (see
    /// [`RetryPolicy`]). Devices `offline` for a permanent reason stay
    /// offline; a temporary ban that has expired is retried.
    async fn restore_sessions(&self) -> Result<()> {
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
            let mut secrets = self.inner.restore_secrets();
            for device in &restored {
                secrets.awaited.insert(
                    secret_name(&device.id),
                    Arc::new(tokio::sync::Notify::new()),
                );
            }
            drop(secrets);
            // One pass over the keyring instead of one search per device,
            // in the background: attempts wait for it. If it fails, each
            // attempt reads its own entry (and reports a keyring that is
            // still unavailable then).
            let inner = Arc::clone(&self.inner);
            tokio::spawn(async move {
                let read = inner
                    .keyring(|s| s.get_all(SECRET_NAME_PREFIX, &secret_entry_name))
                    .await;
                let mut secrets = inner.restore_secrets();
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
            device.state = DeviceState::Connecting;
            device.state_reason = StateReason::Restoring;
            device.next_retry_at = None;
            device.ban_expires_at = None;
            self.inner.save(&device)?;
            let slot = self.inner.slot(&device.id);
            let mut st = slot.state.lock().await;
            self.inner
                .schedule_connect(&mut st, &device.id, Duration::ZERO);
            ahead.push(device.id.clone());
        }
        if !ahead.is_empty() {
            tokio::spawn(Arc::clone(&self.inner).open_stores_ahead(ahead));
        }
        Ok(())
    }
}

fn unlink_sentence(confirmed: bool) -> &'static str {
    if confirmed {
        "WhatsApp confirmed the unlink"
    } else {
        "WhatsApp did not confirm the unlink: the device may remain in the phone's Linked devices until removed there"
    }
}

/// Renders a QR payload as an SVG image.
fn qr_svg(payload: &str) -> Result<String> {
    let code = qrcode::QrCode::new(payload.as_bytes())
        .map_err(|e| ServiceError::internal(format!("cannot render the QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build())
}

/// `ABCD1234` -> `ABCD-1234`.
fn format_pairing_code(code: &str) -> String {
    let code: String = code.chars().filter(|c| *c != '-').collect();
    if code.chars().count() == 8 {
        let (a, b) = code.split_at(4);
        format!("{a}-{b}")
    } else {
        code
    }
}

fn expiry_after(timeout: Duration) -> chrono::DateTime<chrono::Utc> {
    now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::zero())
}

impl Inner {
    fn slot(&self, id: &DeviceId) -> Arc<Slot> {
        Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.clone())
                .or_default(),
        )
    }

    fn device(&self, id: &DeviceId) -> Result<Device> {
        self.db
            .device(id)?
            .ok_or_else(|| ServiceError::not_found(id.as_str()))
    }

    fn emit_device(&self, device: &Device) {
        // No subscriber is not an error.
        let _ = self.events.send(ServiceEvent::DeviceChanged {
            device: device.clone(),
        });
    }

    fn save(&self, device: &Device) -> Result<()> {
        self.db.update_device(device)?;
        self.emit_device(device);
        Ok(())
    }

    fn notice(&self, id: &DeviceId, reason: StateReason, message: String) {
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

    fn observe(&self, id: &DeviceId, step: WipeStep) {
        if let Some(observer) = &self.wipe_step_observer {
            observer(id, step);
        }
    }

    fn restore_secrets(&self) -> std::sync::MutexGuard<'_, RestoreSecrets> {
        self.restore_secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
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

    /// Fails with `keyring_unavailable` unless the keyring answers now.
    async fn probe_keyring(&self, id: &DeviceId) -> Result<bool> {
        let name = secret_name(id);
        self.keyring(move |s| s.get(&name).map(|v| v.is_some()))
            .await
    }

    /// Deletes a device's keyring entry and session files.
    async fn wipe_local(&self, id: &DeviceId) -> Result<()> {
        let name = secret_name(id);
        self.restore_secrets().forget(&name);
        self.keyring(move |s| s.delete(&name)).await?;
        self.layout.remove_session_files(id)
    }

    /// Starts a session; `secret` is the device's keyring entry when the
    /// caller read it already (saves the store a second keyring round trip),
    /// `opened_store` its session store when opened ahead.
    async fn start_session(
        self: &Arc<Self>,
        id: &DeviceId,
        st: &mut SlotState,
        purpose: SessionPurpose,
        secret: Option<Vec<u8>>,
        opened_store: Option<Arc<SessionStore>>,
    ) -> Result<()> {
        if let Some(old) = st.take_session() {
            old.stop().await;
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let store = match opened_store {
            Some(store) => StoreSource::Opened(store),
            None => StoreSource::DataFolder(&self.layout),
        };
        let session = LiveSession::start(
            id,
            store,
            SessionSecrets {
                store: Arc::clone(&self.secrets),
                prefetched: secret,
            },
            &self.sessions,
            purpose,
            generation,
            tx,
        )
        .await?;
        st.session = Some(session);
        tokio::spawn(Arc::clone(self).watch_session(id.clone(), rx));
        Ok(())
    }

    /// (Re)connects a device with credentials: `connecting` with `reason`.
    async fn connect(
        self: &Arc<Self>,
        st: &mut SlotState,
        mut device: Device,
        reason: StateReason,
        opened_store: Option<Arc<SessionStore>>,
    ) -> Result<Device> {
        // Credentials that are gone (keyring entry or store deleted behind
        // our back) must not silently turn into a fresh pairing.
        let name = secret_name(&device.id);
        let prefetched = self.restore_secrets().entries.remove(&name);
        let secret = match prefetched {
            Some(secret) => Some(secret),
            None => self.keyring(move |s| s.get(&name)).await?,
        };
        let has_store = self.layout.session_db(&device.id).exists();
        if secret.is_none() || !has_store {
            // Closed before its files go.
            if let Some(store) = opened_store {
                store.close();
            }
            if let Some(old) = st.take_session() {
                old.stop().await;
            }
            self.wipe_local(&device.id).await?;
            reset_identity(&mut device, StateReason::CredentialsLost);
            self.save(&device)?;
            return Err(ServiceError::new(
                ErrorCode::NoCredentials,
                format!(
                    "the credentials of device \"{}\" are missing from the keyring or the data folder; link it again",
                    device.id
                ),
            ));
        }
        self.start_session(
            &device.id,
            st,
            SessionPurpose::Connect,
            secret,
            opened_store,
        )
        .await?;
        device.state = DeviceState::Connecting;
        device.state_reason = reason;
        device.next_retry_at = None;
        device.ban_expires_at = None;
        self.save(&device)?;
        Ok(device)
    }

    /// Ends a pending login: stops the session, wipes what it created, and
    /// returns the device to `disconnected` with `reason`.
    async fn end_pairing(
        &self,
        st: &mut SlotState,
        mut device: Device,
        reason: StateReason,
    ) -> Result<Device> {
        if let Some(session) = st.take_session() {
            session.stop().await;
        }
        st.first_qr = None;
        st.pairing_code = None;
        self.wipe_local(&device.id).await?;
        reset_identity(&mut device, reason);
        self.save(&device)?;
        Ok(device)
    }

    /// The logout of the product (and the first part of a delete), with the
    /// device's lock held.
    async fn logout_locked(
        self: &Arc<Self>,
        st: &mut SlotState,
        device: Device,
        actor: &Actor,
        delete_device: bool,
    ) -> Result<LogoutOutcome> {
        let id = device.id.clone();
        if !device.has_credentials {
            let pairing = device.state == DeviceState::Pairing;
            if pairing {
                self.end_pairing(st, device, StateReason::LoggedOut).await?;
            }
            if delete_device {
                self.db.remove_device(&id)?;
                self.observe(&id, WipeStep::DeviceRemoved);
            }
            return Ok(LogoutOutcome {
                had_credentials: false,
                unlink_confirmed: false,
                message: if pairing {
                    "the pending login was cancelled; the device had no credentials".to_owned()
                } else {
                    "the device had no credentials; nothing to log out".to_owned()
                },
            });
        }
        // Nothing may start if the keyring cannot be reached: the secrets
        // could not be deleted afterwards.
        self.probe_keyring(&id).await?;
        let wipe = PendingWipe {
            device_id: id.clone(),
            delete_device,
            unlink_confirmed: false,
            actor: actor.clone(),
        };
        self.db.begin_wipe(&wipe)?;
        self.observe(&id, WipeStep::Journaled);

        let unlink_confirmed = self.unlink(st, &device).await;
        if let Some(session) = st.take_session() {
            session.stop().await;
        }
        if unlink_confirmed {
            self.db.set_wipe_unlink_confirmed(&id)?;
        }
        self.observe(&id, WipeStep::Unlinked);

        self.finish_wipe(
            &PendingWipe {
                unlink_confirmed,
                ..wipe
            },
            StateReason::LoggedOut,
        )
        .await?;
        Ok(LogoutOutcome {
            had_credentials: true,
            unlink_confirmed,
            message: unlink_sentence(unlink_confirmed).to_owned(),
        })
    }

    /// Step 1 of a logout: make sure `remove-companion-device` reaches
    /// WhatsApp, on the live connection or on one opened just for this,
    /// within `unlink_timeout`. Returns whether WhatsApp confirmed it.
    async fn unlink(self: &Arc<Self>, st: &mut SlotState, device: &Device) -> bool {
        // Everything, opening the store and connecting included, counts
        // against the bound: a broken store or a dead network must not hold
        // the logout longer than `unlink_timeout`.
        let deadline = tokio::time::Instant::now() + self.unlink_timeout;
        tokio::time::timeout_at(deadline, self.unlink_within(st, device, deadline))
            .await
            .unwrap_or(false)
    }

    async fn unlink_within(
        self: &Arc<Self>,
        st: &mut SlotState,
        device: &Device,
        deadline: tokio::time::Instant,
    ) -> bool {
        let live = st
            .session
            .as_ref()
            .filter(|s| s.client.is_logged_in())
            .map(|s| Arc::clone(&s.client));
        let client = match live {
            Some(client) => client,
            None => {
                if self
                    .start_session(&device.id, st, SessionPurpose::Connect, None, None)
                    .await
                    .is_err()
                {
                    return false;
                }
                let Some(client) = st.session.as_ref().map(|s| Arc::clone(&s.client)) else {
                    return false;
                };
                while !client.is_logged_in() {
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                client
            }
        };
        let pn = client
            .persistence_manager()
            .get_device_snapshot()
            .pn
            .clone();
        let Some(pn) = pn else { return false };
        let request = client.execute(wacore::iq::devices::RemoveCompanionDeviceSpec::new(&pn));
        matches!(tokio::time::timeout_at(deadline, request).await, Ok(Ok(())))
    }

    /// Steps 2 to 4 of a logout (and the removal of a delete), then the end
    /// of the journal entry. Idempotent: crash recovery runs it again.
    /// `reason` is what the reset device shows (`logged_out` after an
    /// admin's logout).
    async fn finish_wipe(&self, wipe: &PendingWipe, reason: StateReason) -> Result<()> {
        let id = &wipe.device_id;
        let name = secret_name(id);
        self.restore_secrets().forget(&name);
        self.keyring(move |s| s.delete(&name)).await?;
        self.observe(id, WipeStep::SecretsDeleted);
        if let Some(mut device) = self.db.device(id)? {
            reset_identity(&mut device, reason);
            self.save(&device)?;
        }
        self.observe(id, WipeStep::DeviceReset);
        self.layout.remove_session_files(id)?;
        self.observe(id, WipeStep::SessionFilesDeleted);
        if wipe.delete_device {
            self.db.remove_device(id)?;
            self.observe(id, WipeStep::DeviceRemoved);
        }
        self.db.end_wipe(id)?;
        Ok(())
    }

    /// Applies the events of one session, in order, each with the device's
    /// lock held. Events of a session that is no longer the device's current
    /// one are ignored.
    async fn watch_session(self: Arc<Self>, id: DeviceId, mut events: SessionEvents) {
        while let Some((generation, signal)) = events.recv().await {
            let slot = self.slot(&id);
            let mut st = slot.state.lock().await;
            if st.session.as_ref().map(|s| s.generation) != Some(generation) {
                // This session was stopped or replaced: nothing it says
                // matters any more.
                return;
            }
            let Ok(device) = self.device(&id) else {
                return;
            };
            // Failures here (storage, keyring) cannot be reported to a caller;
            // the device keeps its last recorded state.
            let _ = match signal {
                SessionSignal::Event(event) => self.apply_event(&mut st, device, &event).await,
                SessionSignal::Ended => self.session_ended(&mut st, device).await,
            };
        }
    }

    /// The client's run loop ended by itself (the connection failed or
    /// dropped, and the client does not retry). A device that should be
    /// connected gets its next attempt scheduled; a pending login ends.
    async fn session_ended(self: &Arc<Self>, st: &mut SlotState, device: Device) -> Result<()> {
        let connected_since = st.connected_since;
        if let Some(session) = st.take_session() {
            session.stop().await;
        }
        if device.has_credentials
            && matches!(
                device.state,
                DeviceState::Connecting | DeviceState::LoggedIn
            )
        {
            st.connected_since = connected_since;
            self.retry_later(st, device)?;
        } else if device.state == DeviceState::Pairing {
            let id = device.id.clone();
            self.end_pairing(st, device, StateReason::PairingFailed)
                .await?;
            self.record(
                &id,
                HistoryAction::PairingFailed,
                &Actor::System,
                Outcome::Failed,
                "the connection ended before the phone linked the device".to_owned(),
            );
        }
        Ok(())
    }

    /// `connecting` with the time of the next attempt, which is scheduled
    /// after the backoff of [`RetryPolicy`]. Invariant: no session is live.
    fn retry_later(self: &Arc<Self>, st: &mut SlotState, mut device: Device) -> Result<()> {
        if st
            .connected_since
            .take()
            .is_some_and(|t| t.elapsed() >= self.retry.stable_after)
        {
            st.retry_attempt = 0;
        }
        let delay = self.retry.delay(st.retry_attempt);
        st.retry_attempt = st.retry_attempt.saturating_add(1);
        self.schedule_connect(st, &device.id, delay);
        device.state = DeviceState::Connecting;
        device.state_reason = StateReason::ConnectionLost;
        device.next_retry_at =
            Some(now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero()));
        self.save(&device)
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
    async fn open_stores_ahead(self: Arc<Self>, ids: Vec<DeviceId>) {
        for id in ids {
            if self.restore_secrets().awaited.is_empty() {
                return;
            }
            let slot = self.slot(&id);
            let mut st = slot.state.lock().await;
            if st.session.is_some() {
                continue;
            }
            let Some(timer) = st.retry.as_mut() else {
                continue;
            };
            let path = self.layout.session_db(&id);
            if timer.opened_store.is_some() || !path.exists() {
                continue;
            }
            if let Ok(store) = SessionStore::open(&path, Arc::clone(&self.secrets), &id) {
                timer.opened_store = Some(Arc::new(store));
            }
        }
    }

    /// Schedules a connection attempt after `delay`, replacing (cancelling)
    /// any scheduled one.
    fn schedule_connect(self: &Arc<Self>, st: &mut SlotState, id: &DeviceId, delay: Duration) {
        let token = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(Arc::clone(self).scheduled_connect(id.clone(), token, delay));
        st.retry = Some(RetryTimer {
            token,
            task: Some(task),
            opened_store: None,
        });
    }

    /// A scheduled attempt: waits out `delay` and a connect permit, then
    /// connects if the device still wants it (an admin may have acted
    /// meanwhile; what the admin did then cancelled this attempt).
    async fn scheduled_connect(self: Arc<Self>, id: DeviceId, token: u64, delay: Duration) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let awaited = self
            .restore_secrets()
            .awaited
            .get(&secret_name(&id))
            .cloned();
        if let Some(entry_read) = awaited {
            entry_read.notified().await;
        }
        let Ok(permit) = Arc::clone(&self.connect_permits).acquire_owned().await else {
            return;
        };
        let slot = self.slot(&id);
        let mut st = slot.state.lock().await;
        let opened_store = match st.retry.take() {
            Some(timer) if timer.token == token => timer.disarm(),
            other => {
                st.retry = other;
                return;
            }
        };
        let Ok(device) = self.device(&id) else {
            return;
        };
        if !device.has_credentials
            || device.state != DeviceState::Connecting
            || st.session.is_some()
        {
            return;
        }
        let reason = device.state_reason;
        match self.connect(&mut st, device, reason, opened_store).await {
            Ok(_) => st.connect_permit = Some(permit),
            // The credentials are gone; `connect` reset the device.
            Err(err) if err.code == ErrorCode::NoCredentials => {}
            // The keyring or the session store failed this time: later.
            Err(_) => {
                drop(permit);
                if let Ok(device) = self.device(&id) {
                    let _ = self.retry_later(&mut st, device);
                }
            }
        }
    }

    async fn apply_event(
        self: &Arc<Self>,
        st: &mut SlotState,
        mut device: Device,
        event: &Event,
    ) -> Result<()> {
        let id = device.id.clone();
        match event {
            Event::PairingQrCode(qr) => {
                let code = QrCode {
                    device_id: id.clone(),
                    svg: qr_svg(&qr.code)?,
                    expires_at: expiry_after(qr.timeout),
                };
                if let Some(tx) = st.first_qr.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::QrCode(code));
            }
            Event::PairingCode(pc) => {
                let code = PairingCode {
                    device_id: id.clone(),
                    code: format_pairing_code(&pc.code),
                    expires_at: expiry_after(pc.timeout),
                };
                if let Some(tx) = st.pairing_code.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::PairingCode(code));
            }
            Event::PairingCodeError(_) | Event::PairError(_) => {
                if let Some(tx) = st.pairing_code.take() {
                    let _ = tx.send(Err(ServiceError::whatsapp(
                        "WhatsApp refused the pairing code request",
                    )));
                }
                if device.state == DeviceState::Pairing {
                    self.end_pairing(st, device, StateReason::PairingFailed)
                        .await?;
                    self.record(
                        &id,
                        HistoryAction::PairingFailed,
                        &Actor::Whatsapp,
                        Outcome::Failed,
                        "the pairing failed".to_owned(),
                    );
                }
            }
            Event::PairingQrCodesExhausted(_) if device.state == DeviceState::Pairing => {
                self.end_pairing(st, device, StateReason::QrExpired).await?;
                self.record(
                    &id,
                    HistoryAction::QrExpired,
                    &Actor::System,
                    Outcome::Ok,
                    "every QR code expired without a scan".to_owned(),
                );
            }
            Event::PairSuccess(ps) => {
                device.jid = Some(ps.id.to_string());
                device.phone_number = Some(ps.id.user.to_string());
                if !ps.business_name.is_empty() {
                    device.display_name = Some(ps.business_name.clone());
                }
                device.has_credentials = true;
                device.state = DeviceState::Connecting;
                device.state_reason = StateReason::Paired;
                self.save(&device)?;
                self.record(
                    &id,
                    HistoryAction::Paired,
                    &Actor::Whatsapp,
                    Outcome::Ok,
                    format!("linked as {}", ps.id),
                );
            }
            Event::Connected(_) => {
                if let Some(session) = &st.session {
                    let snapshot = session.client.persistence_manager().get_device_snapshot();
                    if !snapshot.push_name.is_empty() {
                        device.display_name = Some(snapshot.push_name.clone());
                    }
                    if let Some(pn) = &snapshot.pn {
                        device.jid = Some(pn.to_string());
                        device.phone_number = Some(pn.user.to_string());
                    }
                }
                if let Some(session) = &st.session {
                    session.stop_library_retries();
                }
                st.connect_permit = None;
                st.connected_since = Some(std::time::Instant::now());
                device.has_credentials = true;
                device.state = DeviceState::LoggedIn;
                device.state_reason = StateReason::Connected;
                device.next_retry_at = None;
                device.ban_expires_at = None;
                device.last_connected_at = Some(now());
                self.save(&device)?;
            }
            Event::SelfPushNameUpdated(update) => {
                device.display_name = Some(update.new_name.clone());
                self.save(&device)?;
            }
            Event::LoggedOut(out) => {
                if device.state == DeviceState::Pairing && !device.has_credentials {
                    self.end_pairing(st, device, StateReason::PairingFailed)
                        .await?;
                    return Ok(());
                }
                // The server ended the session for good: the credentials are
                // worthless now, wipe them like a logout without the unlink.
                if let Some(session) = st.take_session() {
                    session.stop().await;
                }
                let wipe = PendingWipe {
                    device_id: id.clone(),
                    delete_device: false,
                    unlink_confirmed: true,
                    actor: Actor::Whatsapp,
                };
                let (reason, action, message) = match out.reason {
                    ConnectFailureReason::LoggedOut => (
                        StateReason::RemovedFromPhone,
                        HistoryAction::RemovedFromPhone,
                        "the device was removed in the phone's Linked devices; its credentials were wiped",
                    ),
                    ConnectFailureReason::AccountLocked => (
                        StateReason::AccountLocked,
                        HistoryAction::AccountLocked,
                        "WhatsApp locked the account and logged the device out; its credentials were wiped",
                    ),
                    _ => (
                        StateReason::LoggedOutByWhatsapp,
                        HistoryAction::LoggedOutByWhatsapp,
                        "WhatsApp logged the device out; its credentials were wiped",
                    ),
                };
                // The device goes straight to its final reason: no snapshot
                // in between shows `logged_out`.
                self.db.begin_wipe(&wipe)?;
                self.finish_wipe(&wipe, reason).await?;
                self.record(
                    &id,
                    action,
                    &Actor::Whatsapp,
                    Outcome::Ok,
                    format!("{message} (reason {:?})", out.reason),
                );
                self.notice(&id, reason, message.to_owned());
            }
            Event::StreamReplaced(_) => {
                self.go_offline(
                    st,
                    device,
                    StateReason::Replaced,
                    None,
                    HistoryAction::Replaced,
                    "another client took over this session; reconnect or log out".to_owned(),
                )
                .await?;
            }
            Event::TemporaryBan(ban) => {
                let until = now() + ban.expire;
                self.go_offline(
                    st,
                    device,
                    StateReason::TemporarilyBanned,
                    Some(until),
                    HistoryAction::TemporarilyBanned,
                    format!(
                        "WhatsApp banned the account temporarily ({:?}) until {}",
                        ban.code,
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                )
                .await?;
            }
            Event::ClientOutdated(_) => {
                self.go_offline(
                    st,
                    device,
                    StateReason::ClientOutdated,
                    None,
                    HistoryAction::ClientOutdated,
                    "WhatsApp refuses this client version; update the app".to_owned(),
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A permanent server-side ending that keeps the credentials.
    async fn go_offline(
        &self,
        st: &mut SlotState,
        mut device: Device,
        reason: StateReason,
        ban_expires_at: Option<chrono::DateTime<chrono::Utc>>,
        action: HistoryAction,
        message: String,
    ) -> Result<()> {
        if let Some(session) = st.take_session() {
            session.stop().await;
        }
        device.state = DeviceState::Offline;
        device.state_reason = reason;
        device.ban_expires_at = ban_expires_at;
        device.next_retry_at = None;
        self.save(&device)?;
        self.record(
            &device.id,
            action,
            &Actor::Whatsapp,
            Outcome::Ok,
            message.clone(),
        );
        self.notice(&device.id, reason, message);
        Ok(())
    }
}

/// `disconnected` without credentials: blank phone number, name and JID.
fn reset_identity(device: &mut Device, reason: StateReason) {
    device.state = DeviceState::Disconnected;
    device.state_reason = reason;
    device.phone_number = None;
    device.display_name = None;
    device.jid = None;
    device.next_retry_at = None;
    device.ban_expires_at = None;
    device.has_credentials = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn awaiting(names: &[&str]) -> (RestoreSecrets, Vec<Arc<tokio::sync::Notify>>) {
        let mut secrets = RestoreSecrets::default();
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

    #[test]
    fn pairing_codes_are_shown_in_two_groups() {
        assert_eq!(format_pairing_code("ABCD1234"), "ABCD-1234");
        assert_eq!(format_pairing_code("ABCD-1234"), "ABCD-1234");
    }

    #[test]
    fn qr_codes_render_as_svg() {
        let svg = qr_svg("ref,noise,identity,adv,1").expect("renders");
        assert!(svg.contains("<svg"), "{svg}");
    }
}
