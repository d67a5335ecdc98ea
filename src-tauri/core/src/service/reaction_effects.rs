//! Reactions to the events of a device's WhatsApp session.

use super::ServiceCore;
use super::device_lock::DeviceRuntime;
use super::login::{expiry_after, format_pairing_code, qr_svg};
use crate::app_db::{PendingWipe, now};
use crate::error::{Result, ServiceError};
use crate::lifecycle::LinkedIdentity;
use crate::model::{
    Actor, Device, DeviceState, HistoryAction, Outcome, PairingCode, QrCode, ServiceEvent,
    StateReason,
};
use std::sync::Arc;
use wacore::types::events::{ConnectFailureReason, Event};

impl ServiceCore {
    pub(super) async fn apply_event(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
        event: &Event,
    ) -> Result<()> {
        let id = device.id.clone();
        match event {
            Event::PairingQrCode(qr) => {
                let code = QrCode {
                    device_id: id.clone(),
                    svg: qr_svg(&qr.code)?,
                    expires_at: expiry_after(qr.timeout),
                };
                if let Some(tx) = rt.first_qr.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::QrCode(code));
            }
            Event::PairingCode(pc) => {
                let code = PairingCode {
                    device_id: id.clone(),
                    code: format_pairing_code(&pc.code),
                    expires_at: expiry_after(pc.timeout),
                };
                if let Some(tx) = rt.pairing_code.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::PairingCode(code));
            }
            Event::PairingCodeError(_) | Event::PairError(_) => {
                if let Some(tx) = rt.pairing_code.take() {
                    let _ = tx.send(Err(ServiceError::whatsapp(
                        "WhatsApp refused the pairing code request",
                    )));
                }
                if device.state == DeviceState::Pairing {
                    self.end_pairing(rt, device, StateReason::PairingFailed)
                        .await?;
                    self.record(
                        &id,
                        HistoryAction::PairingFailed,
                        &Actor::Whatsapp,
                        Outcome::Failed,
                        "the pairing failed".to_owned(),
                    );
                }
            }
            Event::PairingQrCodesExhausted(_) if device.state == DeviceState::Pairing => {
                self.end_pairing(rt, device, StateReason::QrExpired).await?;
                self.record(
                    &id,
                    HistoryAction::QrExpired,
                    &Actor::System,
                    Outcome::Ok,
                    "every QR code expired without a scan".to_owned(),
                );
            }
            Event::PairSuccess(ps) => {
                device.paired(LinkedIdentity {
                    display_name: Some(ps.business_name.clone()).filter(|n| !n.is_empty()),
                    ..LinkedIdentity::of_account(&ps.id)
                });
                self.save_and_emit(&device)?;
                self.record(
                    &id,
                    HistoryAction::Paired,
                    &Actor::Whatsapp,
                    Outcome::Ok,
                    format!("linked as {}", ps.id),
                );
            }
            Event::Connected(_) => {
                let mut identity = LinkedIdentity::default();
                if let Some(session) = &rt.session {
                    let snapshot = session.client.persistence_manager().get_device_snapshot();
                    if let Some(pn) = &snapshot.pn {
                        identity = LinkedIdentity::of_account(pn);
                    }
                    identity.display_name =
                        Some(snapshot.push_name.clone()).filter(|n| !n.is_empty());
                    session.stop_library_retries();
                }
                rt.connect_permit = None;
                rt.connected_since = Some(std::time::Instant::now());
                device.logged_in(now(), identity);
                self.save_and_emit(&device)?;
            }
            Event::SelfPushNameUpdated(update) => {
                device.renamed_by_account(update.new_name.clone());
                self.save_and_emit(&device)?;
            }
            Event::LoggedOut(out) => {
                if device.state == DeviceState::Pairing && !device.has_credentials {
                    self.end_pairing(rt, device, StateReason::PairingFailed)
                        .await?;
                    return Ok(());
                }
                // The server ended the session for good: the credentials are
                // worthless now, wipe them like a logout without the unlink.
                if let Some(session) = rt.take_session() {
                    session.stop().await;
                }
                let wipe = PendingWipe {
                    device_id: id.clone(),
                    delete_device: false,
                    unlink_confirmed: true,
                    actor: Actor::Whatsapp,
                };
                let (reason, action, message) = match out.reason {
                    ConnectFailureReason::LoggedOut => (
                        StateReason::RemovedFromPhone,
                        HistoryAction::RemovedFromPhone,
                        "the device was removed in the phone's Linked devices; its credentials were wiped",
                    ),
                    ConnectFailureReason::AccountLocked => (
                        StateReason::AccountLocked,
                        HistoryAction::AccountLocked,
                        "WhatsApp locked the account and logged the device out; its credentials were wiped",
                    ),
                    _ => (
                        StateReason::LoggedOutByWhatsapp,
                        HistoryAction::LoggedOutByWhatsapp,
                        "WhatsApp logged the device out; its credentials were wiped",
                    ),
                };
                // The device goes straight to its final reason: no snapshot
                // in between shows `logged_out`.
                self.db.begin_wipe(&wipe)?;
                self.finish_wipe(&wipe, reason).await?;
                self.record(
                    &id,
                    action,
                    &Actor::Whatsapp,
                    Outcome::Ok,
                    format!("{message} (reason {:?})", out.reason),
                );
                self.notice(&id, reason, message.to_owned());
            }
            Event::StreamReplaced(_) => {
                self.go_offline(
                    rt,
                    device,
                    StateReason::Replaced,
                    None,
                    HistoryAction::Replaced,
                    "another client took over this session; reconnect or log out".to_owned(),
                )
                .await?;
            }
            Event::TemporaryBan(ban) => {
                let until = now() + ban.expire;
                self.go_offline(
                    rt,
                    device,
                    StateReason::TemporarilyBanned,
                    Some(until),
                    HistoryAction::TemporarilyBanned,
                    format!(
                        "WhatsApp banned the account temporarily ({:?}) until {}",
                        ban.code,
                        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                )
                .await?;
            }
            Event::ClientOutdated(_) => {
                self.go_offline(
                    rt,
                    device,
                    StateReason::ClientOutdated,
                    None,
                    HistoryAction::ClientOutdated,
                    "WhatsApp refuses this client version; update the app".to_owned(),
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// A permanent server-side ending that keeps the credentials.
    pub(super) async fn go_offline(
        &self,
        rt: &mut DeviceRuntime,
        mut device: Device,
        reason: StateReason,
        ban_expires_at: Option<chrono::DateTime<chrono::Utc>>,
        action: HistoryAction,
        message: String,
    ) -> Result<()> {
        if let Some(session) = rt.take_session() {
            session.stop().await;
        }
        device.offline(reason, ban_expires_at);
        self.save_and_emit(&device)?;
        self.record(
            &device.id,
            action,
            &Actor::Whatsapp,
            Outcome::Ok,
            message.clone(),
        );
        self.notice(&device.id, reason, message);
        Ok(())
    }
}
