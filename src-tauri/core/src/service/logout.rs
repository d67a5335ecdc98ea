//! Logout and delete.

use super::device_lock::DeviceRuntime;
use super::{DeviceService, ServiceCore};
use crate::app_db::PendingWipe;
use crate::error::{Result, ServiceError};
use crate::lifecycle::LinkedIdentity;
use crate::model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, LogoutOutcome, Outcome, ServiceEvent,
    StateReason,
};
use crate::session::SessionPurpose;
use crate::session::store::SessionStore;
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
    /// Unconfirmed unlink only: the link's keys are copied to the pending
    /// revocation's keyring entry.
    RevocationKeysCopied,
    /// Unconfirmed unlink only: the pending revocation is recorded.
    RevocationRecorded,
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
        let mut rt = self.inner.lock(&id).await;
        let device = self.inner.device(&id)?;
        let outcome = self
            .inner
            .logout_locked(&mut rt, device, &actor, false)
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
        let mut rt = self.inner.lock(&id).await;
        let device = self.inner.device(&id)?;
        let outcome = self
            .inner
            .logout_locked(&mut rt, device, &actor, true)
            .await;
        self.inner
            .record_result(&id, HistoryAction::Delete, &actor, &outcome, |o| {
                o.message.clone()
            });
        if outcome.is_ok() {
            self.inner.locks.retire(&id, &mut rt);
            // Stamped after the row went: above every snapshot of it.
            let revision = self.inner.db.next_revision();
            let _ = self.inner.events.send(ServiceEvent::DeviceRemoved {
                device_id: id,
                revision,
            });
        }
        outcome
    }

    /// Start-up: finish interrupted wipes, reset interrupted logins.
    pub(super) async fn recover(&self) -> Result<()> {
        for wipe in self.inner.db.pending_wipes()? {
            // A keyring that is unavailable now leaves the journal row in
            // place: the wipe is finished at a later start.
            let revocation_pending =
                match self.inner.finish_wipe(&wipe, StateReason::LoggedOut).await {
                    Ok(pending) => pending,
                    Err(err) => {
                        self.inner.record(
                            &wipe.device_id,
                            HistoryAction::RecoveredWipe,
                            &Actor::System,
                            Outcome::Failed,
                            err.message,
                        );
                        continue;
                    }
                };
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
                    unlink_sentence(wipe.unlink_confirmed, revocation_pending)
                ),
            );
        }
        for mut device in self.inner.db.devices()? {
            if device.state != DeviceState::Pairing {
                continue;
            }
            // The process died while pairing. If the phone's link landed
            // first, the store says so: the device keeps the link (the
            // restore connects it, the admin can log it out). Otherwise the
            // half-made credentials go, and the device is back to where the
            // login started.
            if let Some(jid) = self.inner.linked_jid_in_store(&device.id) {
                device.paired(LinkedIdentity::of_account(&jid));
                self.inner.save_and_emit(&mut device)?;
                self.inner.record(
                    &device.id,
                    HistoryAction::Paired,
                    &Actor::System,
                    Outcome::Ok,
                    format!("linked as {jid} just before the app stopped; kept at start-up"),
                );
            } else if self.inner.wipe_local(&device.id).await.is_ok() {
                device.unlinked(StateReason::LoginCancelled);
                self.inner.save_and_emit(&mut device)?;
            }
        }
        Ok(())
    }
}

pub(super) fn unlink_sentence(confirmed: bool, revocation_pending: bool) -> &'static str {
    if confirmed {
        "WhatsApp confirmed the unlink"
    } else if revocation_pending {
        "WhatsApp did not confirm the unlink: the device is reset, and the app keeps the link's keys to retry the unlink until WhatsApp confirms it (pending revocation)"
    } else {
        "WhatsApp did not confirm the unlink: the device may remain in the phone's Linked devices until removed there"
    }
}

impl ServiceCore {
    pub(super) fn report_wipe_step(&self, id: &DeviceId, step: WipeStep) {
        if let Some(observer) = &self.wipe_step_observer {
            observer(id, step);
        }
    }

    /// Fails with `keyring_unavailable` unless the keyring answers now.
    pub(super) async fn probe_keyring(&self, id: &DeviceId) -> Result<bool> {
        let name = self.names.device(id);
        self.keyring(move |s| s.get(&name).map(|v| v.is_some()))
            .await
    }

    /// The account JID a device's session store says it is linked to; `None`
    /// without a store, or with one that is unreadable or holds no link.
    pub(super) fn linked_jid_in_store(&self, id: &DeviceId) -> Option<whatsapp_rust::Jid> {
        let path = self.layout.session_db(id);
        if !path.exists() {
            return None;
        }
        let store =
            SessionStore::open_named(&path, Arc::clone(&self.secrets), self.names.device(id))
                .ok()?;
        let jid = store.linked_jid().ok().flatten();
        store.close();
        jid
    }

    /// Replaces a damaged session store by one rebuilt from the keyring
    /// entry and the JID the app recorded, so that a session can log in and
    /// send the unlink.
    async fn rebuild_damaged_store(&self, device: &Device) -> Result<()> {
        let jid: whatsapp_rust::Jid = device
            .jid
            .as_deref()
            .and_then(|jid| jid.parse().ok())
            .ok_or_else(|| {
                ServiceError::internal("the device's JID is unknown; its link cannot be ended")
            })?;
        self.layout.remove_session_files(&device.id)?;
        let store = SessionStore::open_named(
            &self.layout.session_db(&device.id),
            Arc::clone(&self.secrets),
            self.names.device(&device.id),
        )?;
        let rebuilt = store.ensure_linked_as(jid).await;
        store.close();
        rebuilt
    }

    /// Deletes a device's keyring entry and session files.
    pub(super) async fn wipe_local(&self, id: &DeviceId) -> Result<()> {
        let name = self.names.device(id);
        self.prefetch().forget(&name);
        self.keyring(move |s| s.delete(&name)).await?;
        self.layout.remove_session_files(id)
    }

    /// The logout of the product (and the first part of a delete), with the
    /// device's lock held.
    pub(super) async fn logout_locked(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        device: Device,
        actor: &Actor,
        delete_device: bool,
    ) -> Result<LogoutOutcome> {
        let id = device.id.clone();
        if !device.has_credentials {
            let pairing = device.state == DeviceState::Pairing;
            if pairing {
                self.end_pairing(rt, device, StateReason::LoggedOut).await?;
            } else if self.layout.has_session_files(&id) || self.probe_keyring(&id).await? {
                // Crumbs of a login that a crash interrupted before it was
                // recorded as pending.
                self.wipe_local(&id).await?;
            }
            if delete_device {
                self.remove_device_row(&id).await?;
                self.report_wipe_step(&id, WipeStep::DeviceRemoved);
            }
            return Ok(LogoutOutcome {
                had_credentials: false,
                revocation_pending: false,
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
        self.report_wipe_step(&id, WipeStep::Journaled);

        let unlink_confirmed = self.unlink(rt, &device).await;
        rt.take_session().stop().await;
        if unlink_confirmed {
            self.db.set_wipe_unlink_confirmed(&id)?;
        }
        self.report_wipe_step(&id, WipeStep::Unlinked);

        let revocation_pending = self
            .finish_wipe(
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
            revocation_pending,
            message: unlink_sentence(unlink_confirmed, revocation_pending).to_owned(),
        })
    }

    /// Step 1 of a logout: make sure `remove-companion-device` reaches
    /// WhatsApp, on the live connection or on one opened just for this,
    /// within `unlink_timeout`. Returns whether WhatsApp confirmed it.
    pub(super) async fn unlink(self: &Arc<Self>, rt: &mut DeviceRuntime, device: &Device) -> bool {
        // Everything, opening the store and connecting included, counts
        // against the bound: a broken store or a dead network must not hold
        // the logout longer than `unlink_timeout`.
        let deadline = tokio::time::Instant::now() + self.unlink_timeout;
        tokio::time::timeout_at(deadline, self.unlink_within(rt, device, deadline))
            .await
            .unwrap_or(false)
    }

    pub(super) async fn unlink_within(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        device: &Device,
        deadline: tokio::time::Instant,
    ) -> bool {
        let live = rt
            .session
            .as_ref()
            .filter(|s| s.client.is_logged_in())
            .map(|s| Arc::clone(&s.client));
        let client = match live {
            Some(client) => client,
            None => {
                if device.state_reason == StateReason::SessionDamaged
                    && self.rebuild_damaged_store(device).await.is_err()
                {
                    return false;
                }
                if self
                    .start_session(&device.id, rt, SessionPurpose::Connect, None, None)
                    .await
                    .is_err()
                {
                    return false;
                }
                let Some(client) = rt.session.as_ref().map(|s| Arc::clone(&s.client)) else {
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
    ///
    /// Returns whether the link goes on as a pending revocation: when the
    /// unlink was not confirmed, the keys are kept for it before the
    /// device's entry goes (see [`super::revocation`]).
    pub(super) async fn finish_wipe(
        &self,
        wipe: &PendingWipe,
        reason: StateReason,
    ) -> Result<bool> {
        let id = &wipe.device_id;
        let revocation_pending = match self.db.device(id)? {
            Some(device) if !wipe.unlink_confirmed => self.keep_for_revocation(&device).await?,
            _ => false,
        };
        let name = self.names.device(id);
        self.prefetch().forget(&name);
        self.keyring(move |s| s.delete(&name)).await?;
        self.report_wipe_step(id, WipeStep::SecretsDeleted);
        if let Some(mut device) = self.db.device(id)? {
            device.unlinked(reason);
            self.save_and_emit(&mut device)?;
        }
        self.report_wipe_step(id, WipeStep::DeviceReset);
        self.layout.remove_session_files(id)?;
        self.report_wipe_step(id, WipeStep::SessionFilesDeleted);
        if wipe.delete_device {
            self.remove_device_row(id).await?;
            self.report_wipe_step(id, WipeStep::DeviceRemoved);
        }
        self.db.end_wipe(id)?;
        Ok(revocation_pending)
    }
}
