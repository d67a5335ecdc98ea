//! Logging in by QR code or pairing code, and cancelling a pending login.

use super::device_lock::DeviceRuntime;
use super::reactions::paired_record;
use super::{DeviceService, ServiceCore};
use crate::error::{ErrorCode, Result, ServiceError};
use crate::lifecycle::LinkedIdentity;
use crate::model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, Outcome, PairingCode, QrCode, StateReason,
    normalize_phone_number,
};
use crate::session::SessionPurpose;
use crate::session::store::SessionStore;
use std::sync::Arc;
use tokio::sync::oneshot;

/// An early step of a login, reported to
/// [`ServiceConfig::login_step_observer`](super::ServiceConfig::login_step_observer)
/// right after it completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStep {
    /// The device is saved as `pairing`; nothing else exists yet.
    PairingRecorded,
    /// The session runs: its store file and keyring entry exist.
    SessionStarted,
}

/// What a login request does when a login of the device is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPendingLogin {
    /// Refused (`busy`): the admin cancels the pending login first. The
    /// window's choice, where the pending login is on screen.
    Refuse,
    /// The pending login is ended (as by a cancel) and a fresh one starts.
    /// go-whatsapp-web-multidevice's choice, whose scripts call the QR login
    /// again to get the next code.
    Restart,
}

/// Called after each early login step. For crash tests: a test child
/// process blocks here so that its parent can kill it in between.
pub type LoginStepObserver = Arc<dyn Fn(&DeviceId, LoginStep) + Send + Sync>;

impl DeviceService {
    /// Starts a QR login and returns the first QR code; later codes come as
    /// [`ServiceEvent::QrCode`](crate::model::ServiceEvent::QrCode). When the codes run out the device returns to
    /// `disconnected` with reason `qr_expired`.
    pub async fn login_qr(&self, id: &str, actor: Actor) -> Result<QrCode> {
        self.login_qr_when_pending(id, actor, OnPendingLogin::Refuse)
            .await
    }

    /// [`DeviceService::login_qr`], with `pending` saying what happens to a
    /// login of the device that is pending.
    pub(super) async fn login_qr_when_pending(
        &self,
        id: &str,
        actor: Actor,
        pending: OnPendingLogin,
    ) -> Result<QrCode> {
        let id = DeviceId::parse(id)?;
        let (tx, rx) = oneshot::channel();
        self.start_pairing(&id, &actor, SessionPurpose::PairByQr, pending, |rt| {
            rt.first_qr = Some(tx)
        })
        .await?;
        let result = self.await_login(&id, rx, "QR code").await;
        self.inner
            .record_login(&id, HistoryAction::LoginQr, &actor, &result, "QR code");
        result
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
        self.start_pairing(
            &id,
            &actor,
            SessionPurpose::PairByCode(phone),
            OnPendingLogin::Refuse,
            |rt| rt.pairing_code = Some(tx),
        )
        .await?;
        self.await_code_login(&id, rx, &actor).await
    }

    /// Waits for a code login's code, then records the login.
    pub(super) async fn await_code_login(
        &self,
        id: &DeviceId,
        rx: oneshot::Receiver<Result<PairingCode>>,
        actor: &Actor,
    ) -> Result<PairingCode> {
        let result = self.await_login(id, rx, "pairing code").await;
        self.inner
            .record_login(id, HistoryAction::LoginCode, actor, &result, "pairing code");
        result
    }

    pub(super) async fn await_login<T>(
        &self,
        id: &DeviceId,
        rx: oneshot::Receiver<Result<T>>,
        what: &str,
    ) -> Result<T> {
        match tokio::time::timeout(self.inner.login_timeout, rx).await {
            Ok(Ok(result)) => result,
            // Whatever ends a pairing answers the waiting login first (see
            // `end_pairing`); a sender dropped unanswered means the session
            // went away without an event saying why.
            Ok(Err(_)) => Err(ServiceError::whatsapp(format!(
                "the login ended before a {what} arrived"
            ))),
            Err(_) => {
                let mut rt = self.inner.lock(id).await;
                if let Ok(device) = self.inner.device(id)
                    && device.state == DeviceState::Pairing
                {
                    self.inner
                        .end_pairing(&mut rt, device, StateReason::PairingFailed)
                        .await?;
                }
                Err(ServiceError::whatsapp(format!(
                    "WhatsApp sent no {what} within {} s",
                    self.inner.login_timeout.as_secs()
                )))
            }
        }
    }

    pub(super) async fn start_pairing(
        &self,
        id: &DeviceId,
        actor: &Actor,
        purpose: SessionPurpose,
        pending: OnPendingLogin,
        arm: impl FnOnce(&mut DeviceRuntime),
    ) -> Result<()> {
        let action = match purpose {
            SessionPurpose::PairByCode(_) => HistoryAction::LoginCode,
            _ => HistoryAction::LoginQr,
        };
        let mut rt = self.inner.lock(id).await;
        let mut device = self.inner.device(id)?;
        if device.state == DeviceState::Pairing && pending == OnPendingLogin::Restart {
            // Ended like a cancel, so a link that lands meanwhile is
            // recorded and ended too (see `end_pairing`).
            device = self
                .inner
                .end_pairing(&mut rt, device, StateReason::LoginCancelled)
                .await?;
            self.inner.record(
                id,
                HistoryAction::CancelLogin,
                actor,
                Outcome::Ok,
                "pending login replaced by a new one".to_owned(),
            );
        }
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
        let reason = match purpose {
            SessionPurpose::PairByCode(_) => StateReason::CodeLoginRequested,
            _ => StateReason::QrLoginRequested,
        };
        // `pairing` is saved before the session can create anything: a crash
        // from here on leaves a `pairing` device, whose half-made keyring
        // entry and store the next start wipes (see `recover`).
        device.begin_pairing(reason);
        if let Err(err) = self.inner.save_and_emit(&mut device) {
            self.inner
                .record(id, action, actor, Outcome::Failed, err.message.clone());
            return Err(err);
        }
        self.inner.report_login_step(id, LoginStep::PairingRecorded);
        arm(&mut rt);
        if let Err(err) = self
            .inner
            .start_session(id, &mut rt, purpose, None, None)
            .await
        {
            rt.first_qr = None;
            rt.pairing_code = None;
            // Starting may have created the store and the keyring entry.
            let _ = self.inner.wipe_local(id).await;
            device.unlinked(StateReason::PairingFailed);
            let _ = self.inner.save_and_emit(&mut device);
            self.inner
                .record(id, action, actor, Outcome::Failed, err.message.clone());
            return Err(err);
        }
        self.inner.report_login_step(id, LoginStep::SessionStarted);
        Ok(())
    }

    /// Cancels a pending login (QR or code). On a device that is not pairing
    /// this changes nothing and returns the device as it is.
    pub async fn cancel_login(&self, id: &str, actor: Actor) -> Result<Device> {
        let id = DeviceId::parse(id)?;
        let mut rt = self.inner.lock(&id).await;
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
            .end_pairing(&mut rt, device, StateReason::LoginCancelled)
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
}

/// `ABCD1234` -> `ABCD-1234`.
pub(super) fn format_pairing_code(code: &str) -> String {
    let code: String = code.chars().filter(|c| *c != '-').collect();
    if code.chars().count() == 8 {
        let (a, b) = code.split_at(4);
        format!("{a}-{b}")
    } else {
        code
    }
}

impl ServiceCore {
    /// Ends a pending login: answers the login still waiting for its code,
    /// stops the session, wipes what it created, and returns the device to
    /// `disconnected` with `reason`.
    ///
    /// A link that landed while the session was stopping (the phone scanned
    /// just as the admin cancelled) is never forgotten: it is recorded, then
    /// ended like a logout, with the credentials the session saved.
    pub(super) async fn end_pairing(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
        reason: StateReason,
    ) -> Result<Device> {
        rt.fail_login_waiters(|| pairing_ended_error(reason));
        let linked_as = rt.take_session().stop().await;
        if let Some(jid) = linked_as
            && !device.has_credentials
        {
            return self.end_late_link_boxed(rt, device, jid, reason).await;
        }
        self.wipe_local(&device.id).await?;
        device.unlinked(reason);
        self.save_and_emit(&mut device)?;
        Ok(device)
    }

    /// [`ServiceCore::end_late_link`] behind a declared `dyn Send` future:
    /// ending the link runs a logout, which can end a pairing again, and
    /// the compiler cannot follow that cycle of future types through
    /// bodies, only through signatures.
    fn end_late_link_boxed<'a>(
        self: &'a Arc<Self>,
        rt: &'a mut DeviceRuntime,
        device: Device,
        jid: whatsapp_rust::Jid,
        reason: StateReason,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Device>> + Send + 'a>> {
        Box::pin(self.end_late_link(rt, device, jid, reason))
    }

    /// See [`ServiceCore::end_pairing`]: `jid` linked while the login ended.
    async fn end_late_link(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
        jid: whatsapp_rust::Jid,
        reason: StateReason,
    ) -> Result<Device> {
        let id = device.id.clone();
        self.save_paired(
            &mut device,
            LinkedIdentity::of_account(&jid),
            paired_record(format!(
                "linked as {jid} while the login was ending; the link is ended now"
            )),
        )?;
        // The library may not have written the JID to the store yet.
        let store = SessionStore::open_named(
            &self.layout.session_db(&id),
            Arc::clone(&self.secrets),
            self.names.device(&id),
        )?;
        let prepared = store.ensure_linked_as(jid).await;
        store.close();
        prepared?;
        let outcome = self.logout_locked(rt, device, &Actor::System, false).await;
        self.record_result(&id, HistoryAction::Logout, &Actor::System, &outcome, |o| {
            o.message.clone()
        });
        outcome?;
        let mut device = self.device(&id)?;
        device.unlinked(reason);
        self.save_and_emit(&mut device)?;
        Ok(device)
    }
}

/// Why a login that was still waiting for its first code got none.
fn pairing_ended_error(reason: StateReason) -> ServiceError {
    match reason {
        StateReason::LoginCancelled | StateReason::LoggedOut => ServiceError::new(
            ErrorCode::LoginCancelled,
            "the login was cancelled by another action (cancel, logout or delete) before its code arrived",
        ),
        StateReason::QrExpired => ServiceError::whatsapp("the QR codes expired"),
        _ => ServiceError::whatsapp("the login failed before its code arrived"),
    }
}

impl ServiceCore {
    fn report_login_step(&self, id: &DeviceId, step: LoginStep) {
        if let Some(observer) = &self.login_step_observer {
            observer(id, step);
        }
    }

    /// Records a login once it answered: `ok` when its first code was
    /// shown, `cancelled` when another action ended it, `failed` otherwise.
    pub(super) fn record_login<T>(
        &self,
        id: &DeviceId,
        action: HistoryAction,
        actor: &Actor,
        result: &Result<T>,
        what: &str,
    ) {
        let (outcome, detail) = match result {
            Ok(_) => (
                Outcome::Ok,
                format!("login started; the first {what} was shown"),
            ),
            Err(err) if err.code == ErrorCode::LoginCancelled => {
                (Outcome::Cancelled, err.message.clone())
            }
            Err(err) => (Outcome::Failed, err.message.clone()),
        };
        self.record(id, action, actor, outcome, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_codes_are_shown_in_two_groups() {
        assert_eq!(format_pairing_code("ABCD1234"), "ABCD-1234");
        assert_eq!(format_pairing_code("ABCD-1234"), "ABCD-1234");
    }
}
