//! Logins that take over a pending login instead of being refused, as
//! go-whatsapp-web-multidevice does: its scripts call the QR login again to
//! get the next code, and ask for a pairing code while a QR code is shown.

use super::DeviceService;
use super::login::OnPendingLogin;
use crate::error::{Result, ServiceError};
use crate::model::{
    Actor, DeviceId, DeviceState, PairingCode, QrCode, StateReason, normalize_phone_number,
};
use crate::session::SessionPurpose;
use std::sync::Arc;
use tokio::sync::oneshot;
use whatsapp_rust::Client;
use whatsapp_rust::pair_code::PairCodeOptions;

impl DeviceService {
    /// [`DeviceService::login_qr`], except that a pending login (QR or
    /// code) is ended and a fresh QR login started in its place.
    pub async fn login_qr_or_restart(&self, id: &str, actor: Actor) -> Result<QrCode> {
        self.login_qr_when_pending(id, actor, OnPendingLogin::Restart)
            .await
    }

    /// [`DeviceService::login_code`], except for a pending login: during a
    /// QR login the code is asked for on that login's open connection (the
    /// QR code stays valid until one of them is used); a pending code login
    /// is ended and a fresh one started.
    pub async fn login_code_on_pending(
        &self,
        id: &str,
        phone_number: &str,
        actor: Actor,
    ) -> Result<PairingCode> {
        let id = DeviceId::parse(id)?;
        let phone = normalize_phone_number(phone_number)?;
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        match self.code_on_open_qr_login(&id, &mut tx).await? {
            Some((generation, client)) => {
                let request = PairCodeOptions {
                    phone_number: phone,
                    ..Default::default()
                };
                if client.pair_with_code(request).await.is_err() {
                    // Usually answered already, by the refusal's event or by
                    // whatever ended the session; a refusal the library
                    // reports to the caller only is answered here, while
                    // the waiter armed is still this request's.
                    let mut rt = self.inner.lock(&id).await;
                    if rt.session.as_ref().map(|s| s.generation) == Some(generation)
                        && let Some(waiting) = rt.pairing_code.take()
                    {
                        let _ = waiting.send(Err(ServiceError::whatsapp(
                            "WhatsApp refused the pairing code request",
                        )));
                    }
                }
            }
            None => {
                let tx = tx.take();
                self.start_pairing(
                    &id,
                    &actor,
                    SessionPurpose::PairByCode(phone),
                    OnPendingLogin::Restart,
                    |rt| rt.pairing_code = tx,
                )
                .await?;
            }
        }
        self.await_code_login(&id, rx, &actor).await
    }

    /// When a QR login of `id` is pending on an open connection (its first
    /// QR code arrived) and no code was asked for yet: the device turns to a
    /// code login (still `pairing`), `tx` waits for the code, and the
    /// session's generation and client are returned to ask for it.
    /// Otherwise nothing changes and `tx` stays.
    async fn code_on_open_qr_login(
        &self,
        id: &DeviceId,
        tx: &mut Option<oneshot::Sender<Result<PairingCode>>>,
    ) -> Result<Option<(u64, Arc<Client>)>> {
        let mut rt = self.inner.lock(id).await;
        let mut device = self.inner.device(id)?;
        let open_qr_login = device.state == DeviceState::Pairing
            && device.state_reason == StateReason::QrLoginRequested
            && rt.first_qr.is_none()
            && rt.pairing_code.is_none();
        let Some(session) = rt
            .session
            .as_ref()
            .filter(|_| open_qr_login)
            .map(|session| (session.generation, Arc::clone(&session.client)))
        else {
            return Ok(None);
        };
        device.begin_pairing(StateReason::CodeLoginRequested);
        self.inner.save_and_emit(&mut device)?;
        rt.pairing_code = tx.take();
        Ok(Some(session))
    }
}
