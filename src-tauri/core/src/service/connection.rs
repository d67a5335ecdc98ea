//! Connections: reconnect, sessions, retries.

use super::device_lock::{DeviceRuntime, ScheduledAttempt};
use super::{DeviceService, ServiceCore};
use crate::app_db::now;
use crate::error::{ErrorCode, Result, ServiceError};
use crate::model::{Actor, Device, DeviceId, DeviceState, HistoryAction, Outcome, StateReason};
use crate::session::store::SessionStore;
use crate::session::{
    LiveSession, SessionEvents, SessionPurpose, SessionSecrets, SessionSignal, StoreSource,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How long after a ban's announced end its device reconnects (see
/// [`ServiceCore::reconnect_when_ban_ends`]).
const BAN_END_MARGIN: Duration = Duration::from_secs(1);
use tokio::sync::mpsc;

impl DeviceService {
    /// Drops and re-opens the connection of a device with credentials.
    /// `no_credentials` on a device without.
    pub async fn reconnect(&self, id: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let mut rt = self.inner.lock(&id).await;
        let device = self.inner.device(&id)?;
        let result = if device.has_credentials {
            // The admin's attempt starts the backoff afresh.
            rt.retry_attempt = 0;
            self.inner
                .connect(&mut rt, device, StateReason::ReconnectRequested, None)
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
}

impl ServiceCore {
    /// Starts a session; `secret` is the device's keyring entry when the
    /// caller read it already (saves the store a second keyring round trip),
    /// `opened_store` its session store when opened ahead.
    pub(super) async fn start_session(
        self: &Arc<Self>,
        id: &DeviceId,
        rt: &mut DeviceRuntime,
        purpose: SessionPurpose,
        secret: Option<Vec<u8>>,
        opened_store: Option<Arc<SessionStore>>,
    ) -> Result<()> {
        rt.take_session().stop().await;
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let store = match opened_store {
            Some(store) => StoreSource::Opened(store),
            None => StoreSource::DataFolder(&self.layout, self.names.device(id)),
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
        rt.session = Some(session);
        self.spawn_watcher(id, rx);
        Ok(())
    }

    /// (Re)connects a device with credentials: `connecting` with `reason`.
    pub(super) async fn connect(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
        reason: StateReason,
        opened_store: Option<Arc<SessionStore>>,
    ) -> Result<Device> {
        // Credentials that are gone (keyring entry deleted behind our back)
        // must not silently turn into a fresh pairing.
        let name = self.names.device(&device.id);
        let prefetched = self.prefetch().entries.remove(&name);
        let secret = match prefetched {
            Some(secret) => Some(secret),
            None => self.keyring(move |s| s.get(&name)).await?,
        };
        if secret.is_none() {
            // Closed before its files go.
            if let Some(store) = opened_store {
                store.close();
            }
            rt.take_session().stop().await;
            self.wipe_local(&device.id).await?;
            device.unlinked(StateReason::CredentialsLost);
            self.save_and_emit(&mut device)?;
            return Err(ServiceError::new(
                ErrorCode::NoCredentials,
                format!(
                    "the credentials of device \"{}\" are missing from the keyring; link it again",
                    device.id
                ),
            ));
        }
        // Keys without a usable store are damage, not a new device: a client
        // started on an empty store would build a fresh device, and the keys
        // that can still end the link must stay (see `session_damaged`).
        let store = match opened_store {
            Some(store) => Ok(store),
            None => SessionStore::open_named(
                &self.layout.session_db(&device.id),
                Arc::clone(&self.secrets),
                self.names.device(&device.id),
            )
            .map(Arc::new),
        };
        let store = match store {
            Ok(store) if store.has_device()? => store,
            Ok(store) => {
                store.close();
                return Err(self.session_damaged(rt, device, "holds no device").await);
            }
            Err(err) if err.code == ErrorCode::SessionDamaged => {
                return Err(self.session_damaged(rt, device, "cannot be read").await);
            }
            Err(err) => return Err(err),
        };
        self.start_session(&device.id, rt, SessionPurpose::Connect, secret, Some(store))
            .await?;
        device.connecting(reason, None);
        self.save_and_emit(&mut device)?;
        Ok(device)
    }

    /// The device's session database is damaged while its keys are in the
    /// keyring: `offline`, reason `session_damaged`, not retried. Returns
    /// the error for the caller.
    async fn session_damaged(
        &self,
        rt: &mut DeviceRuntime,
        mut device: Device,
        what: &str,
    ) -> ServiceError {
        rt.take_session().stop().await;
        let message = format!(
            "the session database of device \"{}\" {what}; its keys are kept in the keyring, so logging it out still ends its link",
            device.id
        );
        device.offline(StateReason::SessionDamaged, None);
        if let Err(err) = self.save_and_emit(&mut device) {
            return err;
        }
        self.record(
            &device.id,
            HistoryAction::SessionDamaged,
            &Actor::System,
            Outcome::Failed,
            message.clone(),
        );
        self.notice(&device.id, StateReason::SessionDamaged, message.clone());
        ServiceError::new(ErrorCode::SessionDamaged, message)
    }

    /// Starts [`ServiceCore::watch_session`] on its own task. A plain
    /// function, so that the futures of the operations that start sessions
    /// do not contain the watcher's: the watcher's reactions can end a
    /// pairing, which can run a logout, which starts a session.
    fn spawn_watcher(self: &Arc<Self>, id: &DeviceId, events: SessionEvents) {
        tokio::spawn(Arc::clone(self).watch_session(id.clone(), events));
    }

    /// Applies the events of one session, in order, each with the device's
    /// lock held. Events of a session that is no longer the device's current
    /// one are ignored.
    pub(super) async fn watch_session(self: Arc<Self>, id: DeviceId, mut events: SessionEvents) {
        while let Some((generation, signal)) = events.recv().await {
            let mut rt = self.lock(&id).await;
            if rt.session.as_ref().map(|s| s.generation) != Some(generation) {
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
                SessionSignal::Event(event) => self.apply_event(&mut rt, device, &event).await,
                SessionSignal::Ended => self.apply_session_end(&mut rt, device).await,
            };
        }
    }

    /// `connecting` with the time of the next attempt, which is scheduled
    /// after the backoff of [`RetryPolicy`]. Invariant: no session is live.
    pub(super) fn retry_later(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
    ) -> Result<()> {
        if rt
            .connected_since
            .take()
            .is_some_and(|t| t.elapsed() >= self.retry.stable_after)
        {
            rt.retry_attempt = 0;
        }
        let delay = self.retry.delay(rt.retry_attempt);
        rt.retry_attempt = rt.retry_attempt.saturating_add(1);
        self.schedule_attempt(rt, &device.id, delay);
        device.connecting(
            StateReason::ConnectionLost,
            Some(now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero())),
        );
        self.save_and_emit(&mut device)
    }

    /// Schedules the attempt that reconnects a temporarily banned device once
    /// its ban is over: a second after the announced end, which WhatsApp
    /// gives in whole seconds (a login any earlier is banned again).
    pub(super) fn reconnect_when_ban_ends(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        id: &DeviceId,
        until: chrono::DateTime<chrono::Utc>,
    ) {
        let left = (until - now()).to_std().unwrap_or_default();
        self.schedule_attempt(rt, id, left + BAN_END_MARGIN);
    }

    /// Schedules a connection attempt after `delay`, replacing (cancelling)
    /// any scheduled one.
    pub(super) fn schedule_attempt(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        id: &DeviceId,
        delay: Duration,
    ) {
        let token = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(Arc::clone(self).run_scheduled_attempt(id.clone(), token, delay));
        rt.scheduled = Some(ScheduledAttempt {
            token,
            task: Some(task),
            opened_store: None,
        });
    }

    /// A scheduled attempt: waits out `delay` and a connect permit, then
    /// connects if the device still wants it (an admin may have acted
    /// meanwhile; what the admin did then cancelled this attempt).
    pub(super) async fn run_scheduled_attempt(
        self: Arc<Self>,
        id: DeviceId,
        token: u64,
        delay: Duration,
    ) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let awaited = self
            .prefetch()
            .awaited
            .get(&self.names.device(&id))
            .cloned();
        if let Some(entry_read) = awaited {
            entry_read.notified().await;
        }
        let Ok(permit) = Arc::clone(&self.connect_permits).acquire_owned().await else {
            return;
        };
        let mut rt = self.lock(&id).await;
        let opened_store = match rt.scheduled.take() {
            Some(timer) if timer.token == token => timer.disarm(),
            other => {
                rt.scheduled = other;
                return;
            }
        };
        let Ok(mut device) = self.device(&id) else {
            return;
        };
        if device.state == DeviceState::Offline
            && device.state_reason == StateReason::TemporarilyBanned
            && device.has_credentials
            && rt.session.is_none()
        {
            // The attempt `reconnect_when_ban_ends` scheduled.
            device.connecting(StateReason::BanEnded, None);
            if self.save_and_emit(&mut device).is_err() {
                return;
            }
        }
        if !device.has_credentials
            || device.state != DeviceState::Connecting
            || rt.session.is_some()
        {
            return;
        }
        let reason = device.state_reason;
        match self.connect(&mut rt, device, reason, opened_store).await {
            Ok(_) => rt.connect_permit = Some(permit),
            // The credentials are gone, or the store is damaged: `connect`
            // set the device's final state; retrying cannot help.
            Err(err)
                if matches!(
                    err.code,
                    ErrorCode::NoCredentials | ErrorCode::SessionDamaged
                ) => {}
            // The keyring or the session store failed this time: later.
            Err(_) => {
                drop(permit);
                if let Ok(device) = self.device(&id) {
                    let _ = self.retry_later(&mut rt, device);
                }
            }
        }
    }
}
