//! Logins that take over a pending login instead of being refused, as
//! go-whatsapp-web-multidevice does: its scripts call the QR login again to
//! get the next code, and ask for a pairing code while a QR code is shown.

use super::DeviceService;
use super::login::OnPendingLogin;
use crate::error::{ErrorCode, Result, ServiceError};
use crate::model::{
    Actor, DeviceId, DeviceState, PairingCode, QrCode, StateReason, normalize_phone_number,
};
use crate::session::SessionPurpose;
use std::sync::Arc;
use tokio::sync::oneshot;
use whatsapp_rust::Client;
use whatsapp_rust::pair_code::{PairCodeOptions, PairCodeRejection, PairError};

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
                // Success comes back as the `PairingCode` event, which
                // answers the waiter; a failure only here.
                if let Err(error) = client.pair_with_code(request).await {
                    self.code_request_failed(&id, generation, &error).await;
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

    /// The code asked for on QR login `generation`'s connection did not
    /// come. Its waiter, if nothing answered it yet, learns why (see
    /// [`code_request_failure`]), and a QR login that goes on shows as one
    /// again. Nothing is done for a session that was stopped or replaced:
    /// whatever ended it answered the waiter. A state that cannot be saved
    /// stays `code_login_requested` (logged); the waiter is answered first.
    async fn code_request_failed(&self, id: &DeviceId, generation: u64, error: &PairError) {
        let mut rt = self.inner.lock(id).await;
        let Some(session) = rt.session.as_ref().filter(|s| s.generation == generation) else {
            return;
        };
        let failure = code_request_failure(session.linked_as().is_some(), error.rejection());
        let Some(waiting) = rt.pairing_code.take() else {
            return;
        };
        let _ = waiting.send(Err(failure.answer));
        if !failure.qr_login_goes_on {
            return;
        }
        let saved = self.inner.device(id).and_then(|mut device| {
            if device.state == DeviceState::Pairing
                && device.state_reason == StateReason::CodeLoginRequested
            {
                device.begin_pairing(StateReason::QrLoginRequested);
                self.inner.save_and_emit(&mut device)?;
            }
            Ok(())
        });
        if let Err(error) = saved {
            tracing::warn!(device_id = %id, %error, "the QR login that goes on could not be shown again");
        }
    }
}

/// What a failed code request on a QR login's connection means.
#[derive(Debug, PartialEq)]
struct CodeRequestFailure {
    answer: ServiceError,
    /// The QR login is untouched and its QR code can still be scanned.
    qr_login_goes_on: bool,
}

/// Why no code came, from whether the session's client is `linked` and how
/// WhatsApp refused, if it did. A link that landed explains every failure:
/// the phone scanned the QR code while the request was on its way, and the
/// restart that follows a link cuts whatever was in flight. The library
/// records the link before it answers the phone (see
/// [`crate::session::LiveSession::linked_as`]), so a failure caused by it
/// always finds it set.
fn code_request_failure(linked: bool, rejection: Option<PairCodeRejection>) -> CodeRequestFailure {
    if linked {
        return CodeRequestFailure {
            answer: ServiceError::new(
                ErrorCode::LoginCancelled,
                "the phone linked the device by the other login method before this code arrived",
            ),
            qr_login_goes_on: false,
        };
    }
    let why = match rejection {
        Some(PairCodeRejection::RateOverlimit | PairCodeRejection::BadRequest) => {
            "WhatsApp refused the pairing code request; it limits code requests per phone number, so wait a few minutes before asking again"
        }
        Some(PairCodeRejection::FeatureNotAvailable) => {
            "WhatsApp does not offer linking by phone number to this account"
        }
        Some(_) => "WhatsApp refused the pairing code request",
        None => "WhatsApp did not answer the pairing code request",
    };
    CodeRequestFailure {
        answer: ServiceError::whatsapp(format!("{why}; the QR code can still be scanned")),
        qr_login_goes_on: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_that_landed_explains_the_failure() {
        for rejection in [None, Some(PairCodeRejection::BadRequest)] {
            let failure = code_request_failure(true, rejection);
            assert_eq!(failure.answer.code, ErrorCode::LoginCancelled);
            assert!(!failure.qr_login_goes_on);
        }
    }

    #[test]
    fn a_refusal_leaves_the_qr_login_and_says_why() {
        let cases = [
            (
                Some(PairCodeRejection::RateOverlimit),
                "limits code requests",
            ),
            (Some(PairCodeRejection::BadRequest), "limits code requests"),
            (
                Some(PairCodeRejection::FeatureNotAvailable),
                "does not offer",
            ),
            (Some(PairCodeRejection::Forbidden), "refused"),
            (None, "did not answer"),
        ];
        for (rejection, words) in cases {
            let failure = code_request_failure(false, rejection);
            assert_eq!(failure.answer.code, ErrorCode::WhatsappError);
            assert!(failure.answer.message.contains(words), "{failure:?}");
            assert!(
                failure
                    .answer
                    .message
                    .ends_with("the QR code can still be scanned")
            );
            assert!(failure.qr_login_goes_on);
        }
    }
}
