//! Connections: reconnect, sessions, retries.

use super::device_lock::{RetryTimer, SlotState};
use super::logout::reset_identity;
use super::{DeviceService, Inner};
use crate::app_db::now;
use crate::error::{ErrorCode, Result, ServiceError};
use crate::model::{Actor, Device, DeviceId, DeviceState, HistoryAction, Outcome, StateReason};
use crate::session::store::{SessionStore, secret_name};
use crate::session::{
    LiveSession, SessionEvents, SessionPurpose, SessionSecrets, SessionSignal, StoreSource,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

impl DeviceService {
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
}

impl Inner {
    /// Starts a session; `secret` is the device's keyring entry when the
    /// caller read it already (saves the store a second keyring round trip),
    /// `opened_store` its session store when opened ahead.
    pub(super) async fn start_session(
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
    pub(super) async fn connect(
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

    /// Applies the events of one session, in order, each with the device's
    /// lock held. Events of a session that is no longer the device's current
    /// one are ignored.
    pub(super) async fn watch_session(self: Arc<Self>, id: DeviceId, mut events: SessionEvents) {
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
    pub(super) async fn session_ended(
        self: &Arc<Self>,
        st: &mut SlotState,
        device: Device,
    ) -> Result<()> {
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
    pub(super) fn retry_later(
        self: &Arc<Self>,
        st: &mut SlotState,
        mut device: Device,
    ) -> Result<()> {
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

    /// Schedules a connection attempt after `delay`, replacing (cancelling)
    /// any scheduled one.
    pub(super) fn schedule_connect(
        self: &Arc<Self>,
        st: &mut SlotState,
        id: &DeviceId,
        delay: Duration,
    ) {
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
    pub(super) async fn scheduled_connect(
        self: Arc<Self>,
        id: DeviceId,
        token: u64,
        delay: Duration,
    ) {
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
}
