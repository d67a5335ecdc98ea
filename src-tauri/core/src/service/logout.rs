//! Logout and delete.

use super::device_lock::SlotState;
use super::{DeviceService, Inner};
use crate::app_db::PendingWipe;
use crate::error::Result;
use crate::model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, LogoutOutcome, Outcome, ServiceEvent,
    StateReason,
};
use crate::session::SessionPurpose;
use crate::session::store::secret_name;
use std::sync::Arc;
use std::time::Duration;

/// A step of a logout or delete, reported to [`ServiceConfig::wipe_step_observer`](super::ServiceConfig::wipe_step_observer)
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

impl DeviceService {
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

    /// Start-up: finish interrupted wipes, reset interrupted logins.
    pub(super) async fn recover(&self) -> Result<()> {
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
}

pub(super) fn unlink_sentence(confirmed: bool) -> &'static str {
    if confirmed {
        "WhatsApp confirmed the unlink"
    } else {
        "WhatsApp did not confirm the unlink: the device may remain in the phone's Linked devices until removed there"
    }
}

impl Inner {
    pub(super) fn observe(&self, id: &DeviceId, step: WipeStep) {
        if let Some(observer) = &self.wipe_step_observer {
            observer(id, step);
        }
    }

    /// Fails with `keyring_unavailable` unless the keyring answers now.
    pub(super) async fn probe_keyring(&self, id: &DeviceId) -> Result<bool> {
        let name = secret_name(id);
        self.keyring(move |s| s.get(&name).map(|v| v.is_some()))
            .await
    }

    /// Deletes a device's keyring entry and session files.
    pub(super) async fn wipe_local(&self, id: &DeviceId) -> Result<()> {
        let name = secret_name(id);
        self.restore_secrets().forget(&name);
        self.keyring(move |s| s.delete(&name)).await?;
        self.layout.remove_session_files(id)
    }

    /// The logout of the product (and the first part of a delete), with the
    /// device's lock held.
    pub(super) async fn logout_locked(
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
    pub(super) async fn unlink(self: &Arc<Self>, st: &mut SlotState, device: &Device) -> bool {
        // Everything, opening the store and connecting included, counts
        // against the bound: a broken store or a dead network must not hold
        // the logout longer than `unlink_timeout`.
        let deadline = tokio::time::Instant::now() + self.unlink_timeout;
        tokio::time::timeout_at(deadline, self.unlink_within(st, device, deadline))
            .await
            .unwrap_or(false)
    }

    pub(super) async fn unlink_within(
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
    pub(super) async fn finish_wipe(&self, wipe: &PendingWipe, reason: StateReason) -> Result<()> {
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
}

/// `disconnected` without credentials: blank phone number, name and JID.
pub(super) fn reset_identity(device: &mut Device, reason: StateReason) {
    device.state = DeviceState::Disconnected;
    device.state_reason = reason;
    device.phone_number = None;
    device.display_name = None;
    device.jid = None;
    device.next_retry_at = None;
    device.ban_expires_at = None;
    device.has_credentials = false;
}
