//! Per-device lock and runtime state.

use crate::error::Result;
use crate::model::{PairingCode, QrCode};
use crate::session::LiveSession;
use crate::session::store::SessionStore;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

/// The session-related state of one device, guarded by its slot's lock.
#[derive(Default)]
pub(super) struct SlotState {
    pub(super) session: Option<LiveSession>,
    pub(super) first_qr: Option<oneshot::Sender<Result<QrCode>>>,
    pub(super) pairing_code: Option<oneshot::Sender<Result<PairingCode>>>,
    /// The scheduled connection attempt, if any. Invariant: set only while
    /// there is no session; replacing or clearing it cancels the attempt.
    pub(super) retry: Option<RetryTimer>,
    /// Failed attempts since the last healthy connection (drives the backoff).
    pub(super) retry_attempt: u32,
    /// Held by a scheduled attempt from its start until the session is
    /// logged in or ends: bounds how many handshakes run at once.
    pub(super) connect_permit: Option<OwnedSemaphorePermit>,
    /// When the current session logged in.
    pub(super) connected_since: Option<std::time::Instant>,
}

impl SlotState {
    /// Takes the session out (to be stopped) and cancels whatever was
    /// pending for it.
    pub(super) fn take_session(&mut self) -> Option<LiveSession> {
        self.retry = None;
        self.connect_permit = None;
        self.connected_since = None;
        self.session.take()
    }
}

/// A scheduled connection attempt; dropping it cancels the attempt.
pub(super) struct RetryTimer {
    pub(super) token: u64,
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
    /// The device's session store, opened ahead of the attempt (see
    /// [`Inner::open_stores_ahead`]). A cancelled attempt drops, and so
    /// closes, it before anything else happens to the device.
    pub(super) opened_store: Option<Arc<SessionStore>>,
}

impl RetryTimer {
    /// Lets the attempt's own task go on after it took the timer out; hands
    /// it the store opened ahead, if any.
    pub(super) fn disarm(mut self) -> Option<Arc<SessionStore>> {
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
pub(super) struct Slot {
    pub(super) state: tokio::sync::Mutex<SlotState>,
}
