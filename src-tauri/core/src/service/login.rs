//! Logging in by QR code or pairing code, and cancelling a pending login.

use super::device_lock::SlotState;
use super::logout::reset_identity;
use super::{DeviceService, Inner};
use crate::app_db::now;
use crate::error::{Result, ServiceError};
use crate::model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, Outcome, PairingCode, QrCode, StateReason,
    normalize_phone_number,
};
use crate::session::SessionPurpose;
use std::time::Duration;
use tokio::sync::oneshot;

impl DeviceService {
    /// Starts a QR login and returns the first QR code; later codes come as
    /// [`ServiceEvent::QrCode`](crate::model::ServiceEvent::QrCode). When the codes run out the device returns to
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

    pub(super) async fn await_login<T>(
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

    pub(super) async fn start_pairing(
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
}

/// Renders a QR payload as an SVG image.
pub(super) fn qr_svg(payload: &str) -> Result<String> {
    let code = qrcode::QrCode::new(payload.as_bytes())
        .map_err(|e| ServiceError::internal(format!("cannot render the QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(256, 256)
        .build())
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

pub(super) fn expiry_after(timeout: Duration) -> chrono::DateTime<chrono::Utc> {
    now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::zero())
}

impl Inner {
    /// Ends a pending login: stops the session, wipes what it created, and
    /// returns the device to `disconnected` with `reason`.
    pub(super) async fn end_pairing(
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
