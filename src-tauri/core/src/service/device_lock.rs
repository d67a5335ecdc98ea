//! Per-device lock and runtime state.

use crate::error::Result;
use crate::model::DeviceId;
use crate::model::{PairingCode, QrCode};
use crate::session::LiveSession;
use crate::session::store::SessionStore;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

/// The session-related state of one device, guarded by its lock.
#[derive(Default)]
pub(super) struct DeviceRuntime {
    pub(super) session: Option<LiveSession>,
    pub(super) first_qr: Option<oneshot::Sender<Result<QrCode>>>,
    pub(super) pairing_code: Option<oneshot::Sender<Result<PairingCode>>>,
    /// The scheduled connection attempt, if any. Invariant: set only while
    /// there is no session; replacing or clearing it cancels the attempt.
    pub(super) scheduled: Option<ScheduledAttempt>,
    /// Failed attempts since the last healthy connection (drives the backoff).
    pub(super) retry_attempt: u32,
    /// Held by a scheduled attempt from its start until the session is
    /// logged in or ends: bounds how many handshakes run at once.
    pub(super) connect_permit: Option<OwnedSemaphorePermit>,
    /// When the current session logged in.
    pub(super) connected_since: Option<std::time::Instant>,
    /// Set by a delete: this lock no longer guards the device (see
    /// [`DeviceLocks`]).
    retired: bool,
}

impl DeviceRuntime {
    /// Answers every login still waiting for its first code with `error`:
    /// a waiter is never dropped unanswered.
    pub(super) fn fail_login_waiters(&mut self, error: impl Fn() -> crate::error::ServiceError) {
        if let Some(tx) = self.first_qr.take() {
            let _ = tx.send(Err(error()));
        }
        if let Some(tx) = self.pairing_code.take() {
            let _ = tx.send(Err(error()));
        }
    }

    /// Ends the device's connection state: takes the session out (to be
    /// stopped), cancels the scheduled attempt and gives back the connect
    /// permit. Returns the session and when it logged in.
    pub(super) fn take_session(&mut self) -> TakenSession {
        self.scheduled = None;
        self.connect_permit = None;
        TakenSession {
            live: self.session.take(),
            connected_since: self.connected_since.take(),
        }
    }
}

/// What [`DeviceRuntime::take_session`] took.
pub(super) struct TakenSession {
    pub(super) live: Option<LiveSession>,
    pub(super) connected_since: Option<std::time::Instant>,
}

impl TakenSession {
    /// Stops the session, if there was one; returns the JID its client was
    /// linked to (see [`LiveSession::stop`]).
    pub(super) async fn stop(self) -> Option<whatsapp_rust::Jid> {
        match self.live {
            Some(session) => session.stop().await,
            None => None,
        }
    }
}

/// A scheduled connection attempt; dropping it cancels the attempt.
pub(super) struct ScheduledAttempt {
    pub(super) token: u64,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    /// The device's session store, opened ahead of the attempt (see
    /// [`ServiceCore::open_stores_ahead`]). A cancelled attempt drops, and so
    /// closes, it before anything else happens to the device.
    pub(super) opened_store: Option<Arc<SessionStore>>,
}

impl ScheduledAttempt {
    /// Lets the attempt's own task go on after it took the timer out; hands
    /// it the store opened ahead, if any.
    pub(super) fn disarm(mut self) -> Option<Arc<SessionStore>> {
        self.task = None;
        self.opened_store.take()
    }
}

impl Drop for ScheduledAttempt {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The lock of one device, held by every operation on it and by every
/// reaction to its session's events.
type DeviceLock = Arc<tokio::sync::Mutex<DeviceRuntime>>;

/// A held device lock: the device's runtime, borrowed exclusively.
pub(super) type DeviceGuard = tokio::sync::OwnedMutexGuard<DeviceRuntime>;

/// Every device's lock, by id.
///
/// Invariant: at most one group of operations runs per device id at any time,
/// also across a delete. A delete retires the device's lock (while holding
/// it) and drops it from the table; whoever was queued on the retired lock
/// then queues again on the id's current lock, behind the delete, and finds
/// the device gone (`not_found`) or the new device created since. Without
/// the retirement, requests queued on the old lock would run alongside
/// requests on a new one.
#[derive(Default)]
pub(super) struct DeviceLocks {
    locks: std::sync::Mutex<HashMap<DeviceId, DeviceLock>>,
}

impl DeviceLocks {
    fn current(&self, id: &DeviceId) -> DeviceLock {
        Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.clone())
                .or_default(),
        )
    }

    /// Waits for `id`'s lock. Never returns a retired lock.
    pub(super) async fn lock(&self, id: &DeviceId) -> DeviceGuard {
        loop {
            let guard = self.current(id).lock_owned().await;
            if !guard.retired {
                return guard;
            }
        }
    }

    /// Retires `id`'s lock, which `guard` holds: see [`DeviceLocks`].
    pub(super) fn retire(&self, id: &DeviceId, guard: &mut DeviceGuard) {
        guard.retired = true;
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks
            .get(id)
            .is_some_and(|lock| Arc::ptr_eq(lock, tokio::sync::OwnedMutexGuard::mutex(guard)))
        {
            locks.remove(id);
        }
    }

    /// Every current lock, for shutdown.
    pub(super) fn all(&self) -> Vec<(DeviceId, DeviceLock)> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, lock)| (id.clone(), Arc::clone(lock)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Holds `id`'s lock for a moment; fails if anyone else held it then.
    fn hold(
        locks: &Arc<DeviceLocks>,
        id: &DeviceId,
        busy: &Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let (locks, id, busy) = (Arc::clone(locks), id.clone(), Arc::clone(busy));
        tokio::spawn(async move {
            let _guard = locks.lock(&id).await;
            assert!(!busy.swap(true, Ordering::SeqCst), "two holders at once");
            tokio::time::sleep(Duration::from_millis(30)).await;
            busy.store(false, Ordering::SeqCst);
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_queued_on_a_retired_lock_never_runs_beside_a_newer_one() {
        let locks = Arc::new(DeviceLocks::default());
        let id = DeviceId::parse("x").expect("valid id");
        let busy = Arc::new(AtomicBool::new(false));
        let mut deleting = locks.lock(&id).await;
        let queued = hold(&locks, &id, &busy);
        tokio::time::sleep(Duration::from_millis(20)).await;
        locks.retire(&id, &mut deleting);
        let arrived_later = hold(&locks, &id, &busy);
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(deleting);
        queued.await.expect("queued request ran alone");
        arrived_later.await.expect("later request ran alone");
        assert_eq!(locks.all().len(), 1, "one current lock for the id");
    }
}
