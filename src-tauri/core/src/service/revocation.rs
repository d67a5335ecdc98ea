//! Pending revocations: links whose logout WhatsApp did not confirm.
//!
//! The product's logout resets the device at once, whatever WhatsApp answers
//! (see [`super::logout`]). When the unlink was not confirmed, the keys that
//! can still end the link are not thrown away with the device's: before step
//! 2 deletes the device's keyring entry, [`ServiceCore::keep_for_revocation`]
//! copies the keys to an entry of their own (`revocation/<jid>`: the keys,
//! nothing else) and records a row in `pending_revocations`. This module then
//! retries the unlink with a client of its own until WhatsApp confirms it, or
//! answers that the credentials are unlinked already (a logged-out failure at
//! login: the link is gone as well). Then the entry and the row go.
//!
//! Crash safety of the move: the entry is written first, then the row, both
//! idempotently, and both before the device's entry is deleted; the wipe's
//! journal row stays until the wipe finished, so a crash at any point replays
//! the move at the next start.
//!
//! Retries: backoff with jitter ([`super::ServiceConfig::revocation_retry`]),
//! at every start, and at once on "Try now". Up to eight links are tried at
//! once, one try per link at a time, each bounded by `unlink_timeout`. A try's client keeps its session in a temporary
//! store under `revocations/`, deleted after the try: no session files stay.

use super::{DeviceService, ServiceCore, WipeStep};
use crate::app_db::now;
use crate::error::{ErrorCode, Result, ServiceError};
use crate::files::{create_private_dir, remove_file_if_exists, sqlite_files};
use crate::model::{
    Actor, Device, DeviceId, HistoryAction, Outcome, PendingRevocation, ServiceEvent,
};
use crate::session::store::{SessionStore, secrets_renamed};
use crate::session::{LiveSession, SessionPurpose, SessionSecrets, SessionSignal, StoreSource};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use wacore::types::events::Event;

/// How one try of a pending revocation went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TryResult {
    /// WhatsApp confirmed `remove-companion-device`.
    Unlinked,
    /// WhatsApp refused the credentials as logged out: the link is gone.
    AlreadyGone,
    /// Nothing certain; tried again later. Words for the admin.
    Failed(String),
}

/// What "Try now" found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct RevocationTry {
    pub jid: String,
    /// Whether the revocation ended (unlinked, or the link was gone).
    pub completed: bool,
    pub message: String,
    /// The revocation as it is now, when it goes on.
    pub revocation: Option<PendingRevocation>,
}

impl DeviceService {
    /// Every pending revocation, the next due first.
    pub fn revocations(&self) -> Result<Vec<PendingRevocation>> {
        self.inner.db.revocations()
    }

    /// Tries a pending revocation now ("Try now").
    pub async fn retry_revocation(&self, jid: &str, actor: Actor) -> Result<RevocationTry> {
        self.inner.try_revocation(jid, &actor).await
    }

    /// Drops a pending revocation without unlinking ("Forget without
    /// unlinking"): its keys are deleted, and the link stays in the phone's
    /// Linked devices until removed there. Recorded in the device's history.
    pub async fn forget_revocation(&self, jid: &str, actor: Actor) -> Result<()> {
        let core = &self.inner;
        let _turn = core.revocation_turn(jid).await;
        let revocation = core.revocation(jid)?;
        let name = core.names.revocation(jid);
        core.keyring(move |s| s.delete(&name)).await?;
        core.db.remove_revocation(jid)?;
        core.record_revocation(
            &revocation,
            HistoryAction::RevocationForgotten,
            &actor,
            Outcome::Ok,
            format!(
                "the pending unlink of {jid} was forgotten; the link may remain in the phone's Linked devices until removed there"
            ),
        );
        let _ = core.events.send(ServiceEvent::RevocationRemoved {
            jid: jid.to_owned(),
            completed: false,
        });
        Ok(())
    }
}

impl ServiceCore {
    /// Waits for the turn of the revocation of `jid`: one try (or forget)
    /// of a link at a time; different links are tried at once.
    async fn revocation_turn(&self, jid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = Arc::clone(
            self.revocation_turns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(jid.to_owned())
                .or_default(),
        );
        turn.lock_owned().await
    }

    fn revocation(&self, jid: &str) -> Result<PendingRevocation> {
        self.db
            .revocations()?
            .into_iter()
            .find(|r| r.jid == jid)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::NotFound,
                    format!("no pending revocation for \"{jid}\""),
                )
            })
    }

    /// Step 2 of a logout whose unlink was not confirmed: copies the
    /// device's keys to a pending revocation before its entry is deleted.
    /// Idempotent (see the module docs). Returns whether a revocation is
    /// pending for the device's link.
    pub(super) async fn keep_for_revocation(&self, device: &Device) -> Result<bool> {
        let Some(jid) = device.jid.clone() else {
            return Ok(false);
        };
        let name = self.names.revocation(&jid);
        let device_entry = self.names.device(&device.id);
        let read = device_entry.clone();
        let kept = match self.keyring(move |s| s.get(&read)).await? {
            Some(raw) => {
                // Keys that cannot be read cannot end the link either.
                let Ok(raw) = secrets_renamed(&raw, &device_entry, &name) else {
                    return Ok(false);
                };
                let write = name.clone();
                self.keyring(move |s| s.set(&write, &raw)).await?;
                self.report_wipe_step(&device.id, WipeStep::RevocationKeysCopied);
                true
            }
            // A replayed move: the device's entry is gone, the copy is kept.
            None => {
                let read = name.clone();
                self.keyring(move |s| s.get(&read)).await?.is_some()
            }
        };
        if !kept {
            return Ok(false);
        }
        let at = now();
        let revocation = PendingRevocation {
            jid: jid.clone(),
            device_id: device.id.to_string(),
            phone_number: device.phone_number.clone(),
            since: at,
            attempts: 1,
            next_attempt_at: at + chrono_delay(self.revocation_retry.delay(0)),
            last_error: Some("WhatsApp did not confirm the logout's unlink".to_owned()),
        };
        self.db.insert_revocation(&revocation)?;
        self.report_wipe_step(&device.id, WipeStep::RevocationRecorded);
        self.record_revocation(
            &revocation,
            HistoryAction::RevocationPending,
            &Actor::System,
            Outcome::Ok,
            format!(
                "WhatsApp did not confirm the unlink of {jid}; its keys are kept to retry the unlink until WhatsApp confirms it"
            ),
        );
        let _ = self
            .events
            .send(ServiceEvent::RevocationChanged { revocation });
        self.revocation_wakeup.notify_one();
        Ok(true)
    }

    /// Starts the task that tries pending revocations when they are due.
    /// It holds the service weakly, and ends with it.
    pub(super) fn start_revocations(self: &Arc<Self>) {
        let task = tokio::spawn(run_revocations(
            Arc::downgrade(self),
            Arc::clone(&self.revocation_wakeup),
        ));
        *self
            .revocation_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Stops the retries (shutdown); pending revocations stay for the next
    /// start.
    pub(super) fn stop_revocations(&self) {
        if let Some(task) = self
            .revocation_runner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            task.abort();
        }
    }

    /// Tries every revocation that is due, [`REVOCATIONS_AT_ONCE`] at a
    /// time (support staff revoke hundreds of links at once, and WhatsApp
    /// may come back to all of them together); returns how long until the
    /// next is due.
    async fn try_due_revocations(self: &Arc<Self>) -> Option<Duration> {
        let due: Vec<String> = match self.db.revocations() {
            Ok(all) => all
                .into_iter()
                .filter(|r| r.next_attempt_at <= now())
                .map(|r| r.jid)
                .collect(),
            Err(_) => return Some(REVOCATION_READ_RETRY),
        };
        // Owned here: a runner stopped at shutdown aborts its tries.
        let mut tries = tokio::task::JoinSet::new();
        for jid in due {
            while tries.len() >= REVOCATIONS_AT_ONCE {
                tries.join_next().await;
            }
            let core = Arc::clone(self);
            tries.spawn(async move {
                let _ = core.try_revocation(&jid, &Actor::System).await;
            });
        }
        while tries.join_next().await.is_some() {}
        let next = self.db.revocations().ok()?.into_iter().next()?;
        Some(
            (next.next_attempt_at - now())
                .to_std()
                .unwrap_or(Duration::ZERO),
        )
    }

    /// One try of the revocation of `jid`, and what it changes.
    async fn try_revocation(&self, jid: &str, actor: &Actor) -> Result<RevocationTry> {
        let _turn = self.revocation_turn(jid).await;
        let mut revocation = self.revocation(jid)?;
        let mut result = self.unlink_revoked(&revocation).await;
        // A link that landed as its login ended may still be on its way to
        // WhatsApp (the companion's signature in flight) when the first try
        // logs in: refused now, linked a moment later. A refusal that soon
        // is not yet proof that the link is gone.
        if result == TryResult::AlreadyGone && now() - revocation.since < chrono_delay(GONE_AFTER) {
            result = TryResult::Failed(
                "WhatsApp does not know the link yet; it may still be completing".to_owned(),
            );
        }
        let completed = !matches!(result, TryResult::Failed(_));
        let message = match &result {
            TryResult::Unlinked => format!("WhatsApp confirmed the unlink of {jid}"),
            TryResult::AlreadyGone => {
                format!("WhatsApp says {jid} is unlinked already; nothing is left to end")
            }
            TryResult::Failed(why) => format!("the unlink of {jid} did not go through: {why}"),
        };
        if completed {
            let name = self.names.revocation(jid);
            self.keyring(move |s| s.delete(&name)).await?;
            self.db.remove_revocation(jid)?;
            self.record_revocation(
                &revocation,
                HistoryAction::RevocationCompleted,
                actor,
                Outcome::Ok,
                message.clone(),
            );
            self.webhooks.revocation_finished(&revocation);
            let _ = self.events.send(ServiceEvent::RevocationRemoved {
                jid: jid.to_owned(),
                completed: true,
            });
            return Ok(RevocationTry {
                jid: jid.to_owned(),
                completed,
                message,
                revocation: None,
            });
        }
        let delay = self.revocation_retry.delay(revocation.attempts);
        revocation.attempts = revocation.attempts.saturating_add(1);
        revocation.next_attempt_at = now() + chrono_delay(delay);
        revocation.last_error = match &result {
            TryResult::Failed(why) => Some(why.clone()),
            _ => None,
        };
        self.db.update_revocation(&revocation)?;
        self.record_revocation(
            &revocation,
            HistoryAction::RevocationAttempt,
            actor,
            Outcome::Failed,
            message.clone(),
        );
        let _ = self.events.send(ServiceEvent::RevocationChanged {
            revocation: revocation.clone(),
        });
        Ok(RevocationTry {
            jid: jid.to_owned(),
            completed,
            message,
            revocation: Some(revocation),
        })
    }

    /// Logs in with the revocation's keys on a temporary store and sends
    /// `remove-companion-device`, within `unlink_timeout`.
    async fn unlink_revoked(&self, revocation: &PendingRevocation) -> TryResult {
        let failed = |why: &str| TryResult::Failed(why.to_owned());
        let Ok(jid) = revocation.jid.parse::<whatsapp_rust::Jid>() else {
            return failed("the recorded JID cannot be read");
        };
        let Ok(device_id) = DeviceId::parse(&revocation.device_id) else {
            return failed("the recorded device id cannot be read");
        };
        let name = self.names.revocation(&revocation.jid);
        let read = name.clone();
        let raw = match self.keyring(move |s| s.get(&read)).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return failed("its keys are gone from the keyring"),
            Err(err) => return TryResult::Failed(err.message),
        };
        let dir = self.layout.revocations_dir();
        let path = dir.join(format!("{}.sqlite3", file_stem_of(&revocation.jid)));
        let files = sqlite_files(&path);
        let cleanup = || {
            for file in &files {
                let _ = remove_file_if_exists(file);
            }
        };
        cleanup();
        let result = async {
            create_private_dir(&dir).map_err(|e| e.message)?;
            let store = SessionStore::open_named(&path, Arc::clone(&self.secrets), name)
                .map_err(|e| e.message)?;
            if let Err(err) = store.ensure_linked_as(jid).await {
                store.close();
                return Err(err.message);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
            let session = LiveSession::start(
                &device_id,
                StoreSource::Opened(Arc::new(store)),
                SessionSecrets {
                    store: Arc::clone(&self.secrets),
                    prefetched: Some(raw),
                },
                &self.sessions,
                SessionPurpose::Connect,
                generation,
                tx,
            )
            .await
            .map_err(|e| e.message)?;
            let result = tokio::time::timeout(self.unlink_timeout, unlink_on(&session, rx))
                .await
                .unwrap_or_else(|_| {
                    failed(&format!(
                        "WhatsApp did not answer within {} s",
                        self.unlink_timeout.as_secs()
                    ))
                });
            session.stop().await;
            Ok(result)
        }
        .await;
        cleanup();
        result.unwrap_or_else(TryResult::Failed)
    }

    fn record_revocation(
        &self,
        revocation: &PendingRevocation,
        action: HistoryAction,
        actor: &Actor,
        outcome: Outcome,
        detail: String,
    ) {
        // History is kept by device id; an id the database refuses cannot
        // have been recorded with a revocation.
        if let Ok(id) = DeviceId::parse(&revocation.device_id) {
            self.record(&id, action, actor, outcome, detail);
        }
    }
}

/// Waits for the session to log in, then sends the unlink.
async fn unlink_on(
    session: &LiveSession,
    mut events: mpsc::UnboundedReceiver<(u64, SessionSignal)>,
) -> TryResult {
    while let Some((_, signal)) = events.recv().await {
        match signal {
            SessionSignal::Event(event) => match &*event {
                Event::Connected(_) => {
                    let pn = session
                        .client
                        .persistence_manager()
                        .get_device_snapshot()
                        .pn
                        .clone();
                    let Some(pn) = pn else {
                        return TryResult::Failed("the session has no account JID".to_owned());
                    };
                    let request = wacore::iq::devices::RemoveCompanionDeviceSpec::new(&pn);
                    return match session.client.execute(request).await {
                        Ok(()) => TryResult::Unlinked,
                        Err(_) => TryResult::Failed(
                            "WhatsApp answered the unlink with an error".to_owned(),
                        ),
                    };
                }
                Event::LoggedOut(out) if out.reason.is_logged_out() => {
                    return TryResult::AlreadyGone;
                }
                _ => {}
            },
            SessionSignal::Ended => break,
        }
    }
    TryResult::Failed("the connection to WhatsApp failed or ended".to_owned())
}

/// The task behind [`ServiceCore::start_revocations`].
async fn run_revocations(service: Weak<ServiceCore>, wakeup: Arc<Notify>) {
    loop {
        let wait = {
            let Some(core) = service.upgrade() else {
                return;
            };
            core.try_due_revocations().await
        };
        match wait {
            Some(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wakeup.notified() => {}
                }
            }
            None => wakeup.notified().await,
        }
    }
}

/// How long after a revocation was recorded a "logged out" answer is taken
/// as proof that the link is gone.
const GONE_AFTER: Duration = Duration::from_secs(10);

/// Tries of different links that run at once.
const REVOCATIONS_AT_ONCE: usize = 8;

/// How long the runner waits before reading the table again after a read
/// failed.
const REVOCATION_READ_RETRY: Duration = Duration::from_secs(30);

fn chrono_delay(delay: Duration) -> chrono::Duration {
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero())
}

/// A file name for a JID: `[A-Za-z0-9._-]` kept, anything else `_`.
fn file_stem_of(jid: &str) -> String {
    jid.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_make_plain_file_names() {
        assert_eq!(
            file_stem_of("15551234567:3@s.whatsapp.net"),
            "15551234567_3_s.whatsapp.net"
        );
        assert_eq!(file_stem_of("../x"), ".._x");
    }
}
