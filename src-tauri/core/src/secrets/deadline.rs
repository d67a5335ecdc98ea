//! Keyring calls that end in bounded time.
//!
//! A keyring call can block for as long as an OS prompt waits: a locked
//! Secret Service collection (or a locked macOS keychain) asks the user to
//! unlock it, and the call returns only when someone answers. Nobody may be
//! at the machine, so every call runs on a thread of its own and its caller
//! waits at most a limit, then gets `keyring_unavailable` saying the keyring
//! is locked. The abandoned call keeps its thread until the prompt is
//! answered or dismissed (its result is dropped).
//!
//! While an abandoned call is still running, every new call fails at once
//! with the same error instead of queueing behind the prompt: one prompt is
//! enough, and a hundred logouts must not each wait out the limit. Once the
//! prompt is answered the abandoned call ends and calls go through again.

use crate::error::{Result, ServiceError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The longest a caller waits for a keyring call that may prompt.
pub const KEYRING_CALL_LIMIT: Duration = Duration::from_secs(4);

/// The limit of the calls of one store, and how many of its calls were
/// abandoned and are still running.
#[derive(Debug, Clone)]
pub struct CallDeadline {
    limit: Duration,
    abandoned_running: Arc<AtomicUsize>,
}

/// Where a call's result meets its caller.
enum Handover<T> {
    Waiting,
    Done(Result<T>),
    Abandoned,
}

impl CallDeadline {
    pub fn new(limit: Duration) -> CallDeadline {
        CallDeadline {
            limit,
            abandoned_running: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Runs `call` with the store's limit.
    pub fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run_within(self.limit, call)
    }

    /// Runs `call` on a thread of its own and waits for it at most `limit`
    /// (see the module docs). Errors: `keyring_unavailable` when the limit
    /// passes, or at once while an abandoned call still runs; `internal`
    /// when no thread can be started; otherwise what `call` returns.
    pub fn run_within<T: Send + 'static>(
        &self,
        limit: Duration,
        call: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        if self.abandoned_running.load(Ordering::Acquire) > 0 {
            return Err(still_waiting());
        }
        let handover = Arc::new((Mutex::new(Handover::Waiting), Condvar::new()));
        let worker_handover = Arc::clone(&handover);
        let abandoned_running = Arc::clone(&self.abandoned_running);
        std::thread::Builder::new()
            .name("keyring-call".to_owned())
            .spawn(move || {
                let result = call();
                let (slot, ready) = &*worker_handover;
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                if matches!(*slot, Handover::Abandoned) {
                    abandoned_running.fetch_sub(1, Ordering::AcqRel);
                } else {
                    *slot = Handover::Done(result);
                    ready.notify_one();
                }
            })
            .map_err(|e| ServiceError::internal(format!("cannot start a keyring call: {e}")))?;
        let (slot, ready) = &*handover;
        let slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        let (mut slot, _) = ready
            .wait_timeout_while(slot, limit, |slot| matches!(slot, Handover::Waiting))
            .unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *slot, Handover::Abandoned) {
            Handover::Done(result) => result,
            Handover::Waiting | Handover::Abandoned => {
                self.abandoned_running.fetch_add(1, Ordering::AcqRel);
                Err(ServiceError::keyring_unavailable(format!(
                    "the keyring did not answer within {} s: it is probably locked, waiting for an unlock prompt nobody answered; unlock the keyring, then try again",
                    limit.as_secs()
                )))
            }
        }
    }
}

fn still_waiting() -> ServiceError {
    ServiceError::keyring_unavailable(
        "the keyring is locked: an unlock prompt is waiting for an answer; unlock the keyring, then try again",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::sync::mpsc;

    #[test]
    fn a_call_within_the_limit_returns_its_result() {
        let deadline = CallDeadline::new(Duration::from_secs(5));
        assert_eq!(deadline.run(|| Ok(7)).expect("the call returns"), 7);
        let err = deadline
            .run::<()>(|| Err(ServiceError::internal("broken")))
            .expect_err("the call's error is returned");
        assert_eq!(err.code, ErrorCode::Internal);
    }

    #[test]
    fn a_call_past_the_limit_is_keyring_unavailable_and_blocks_later_calls_until_it_ends() {
        let deadline = CallDeadline::new(Duration::from_millis(50));
        let (answer, prompt) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let err = deadline
            .run(move || {
                let _ = prompt.recv();
                Ok(1)
            })
            .expect_err("the limit passes first");
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        assert!(err.message.contains("locked"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));

        // While the prompt is unanswered, calls fail at once without running.
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&ran);
        let err = deadline
            .run(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(2)
            })
            .expect_err("refused while the first call runs");
        assert_eq!(err.code, ErrorCode::KeyringUnavailable);
        assert_eq!(ran.load(Ordering::SeqCst), 0);

        // Answered: the abandoned call ends, and calls go through again.
        answer.send(()).expect("the abandoned call still waits");
        let waited = std::time::Instant::now();
        loop {
            match deadline.run(|| Ok(3)) {
                Ok(value) => break assert_eq!(value, 3),
                Err(_) if waited.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!("calls stayed blocked: {err:?}"),
            }
        }
    }
}
