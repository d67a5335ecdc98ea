//! Carrying out the [`Reaction`]s of [`super::reactions`] to the events of a
//! device's WhatsApp session, with the device's lock held. What a reaction
//! is, and its wording, is decided there; this only applies it.

use super::ServiceCore;
use super::device_lock::DeviceRuntime;
use super::qr_images::render_qr;
use super::reactions::{
    CodeRequester, HistoryRecord, PairingEnd, Reaction, account_identity, react,
    react_to_session_end,
};
use crate::app_db::{PendingWipe, now};
use crate::error::{ErrorCode, Result, ServiceError};
use crate::lifecycle::LinkedIdentity;
use crate::model::{Device, DeviceId, PairingCode, QrCode, ServiceEvent};
use std::sync::Arc;
use wacore::types::events::Event;

impl ServiceCore {
    /// Applies what `event` of the device's current session does to it.
    pub(super) async fn apply_event(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        device: Device,
        event: &Event,
    ) -> Result<()> {
        let codes = match &rt.session {
            Some(session) if !session.library_asks_for_code => CodeRequester::Caller,
            _ => CodeRequester::Library,
        };
        let reaction = react(&device, event, codes, now());
        self.apply_reaction(rt, device, reaction).await
    }

    /// The client's run loop ended by itself: the session stops, then what
    /// [`react_to_session_end`] says happens. The time the session logged in
    /// outlives the stop, for the backoff of a retry.
    pub(super) async fn apply_session_end(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        device: Device,
    ) -> Result<()> {
        let reaction = react_to_session_end(&device);
        // Ending a pairing stops the session itself, reading whom its client
        // was linked to: a link that landed as the session ended is then
        // recorded and ended, not lost with the stopped session.
        if !matches!(reaction, Reaction::EndPairing(_)) {
            let taken = rt.take_session();
            let connected_since = taken.connected_since;
            taken.stop().await;
            if reaction == Reaction::RetryLater {
                // The backoff restarts after a session that stayed up.
                rt.connected_since = connected_since;
            }
        }
        self.apply_reaction(rt, device, reaction).await
    }

    async fn apply_reaction(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        mut device: Device,
        reaction: Reaction,
    ) -> Result<()> {
        let id = device.id.clone();
        match reaction {
            Reaction::Ignored => {}
            Reaction::ShowQrCode {
                payload,
                expires_at,
            } => {
                let images = render_qr(&payload.0)?;
                let code = QrCode {
                    device_id: id,
                    svg: images.svg,
                    png: images.png,
                    expires_at,
                };
                if let Some(tx) = rt.first_qr.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::QrCode(code));
            }
            Reaction::ShowPairingCode { code, expires_at } => {
                let code = PairingCode {
                    device_id: id,
                    code: code.0,
                    expires_at,
                };
                if let Some(tx) = rt.pairing_code.take() {
                    let _ = tx.send(Ok(code.clone()));
                }
                let _ = self.events.send(ServiceEvent::PairingCode(code));
            }
            Reaction::PairingRefused { answer, ending } => {
                if let Some(tx) = rt.pairing_code.take() {
                    let _ = tx.send(Err(ServiceError::whatsapp(answer)));
                }
                if let Some(ending) = ending {
                    self.apply_pairing_end(rt, device, ending).await?;
                }
            }
            Reaction::EndPairing(ending) => self.apply_pairing_end(rt, device, ending).await?,
            Reaction::Paired { identity, record } => {
                // A code asked for on a QR login's connection can still be
                // on its way when the phone scans the QR code (or the other
                // way round): its waiter learns the device linked without it.
                rt.fail_login_waiters(|| {
                    ServiceError::new(
                        ErrorCode::LoginCancelled,
                        "the phone linked the device by the other login method before this code arrived",
                    )
                });
                self.save_paired(&mut device, identity, record)?;
            }
            Reaction::LogIn { at } => {
                let mut identity = LinkedIdentity::default();
                if let Some(session) = &rt.session {
                    let snapshot = session.client.persistence_manager().get_device_snapshot();
                    identity = account_identity(snapshot.pn.as_ref(), &snapshot.push_name);
                    session.stop_library_retries();
                }
                rt.connect_permit = None;
                rt.connected_since = Some(std::time::Instant::now());
                device.logged_in(at, identity);
                self.save_and_emit(&mut device)?;
            }
            Reaction::Renamed { display_name } => {
                device.renamed_by_account(display_name);
                self.save_and_emit(&mut device)?;
            }
            Reaction::Wipe {
                reason,
                link_proven_gone,
                record,
                notice,
            } => {
                rt.take_session().stop().await;
                let wipe = PendingWipe {
                    device_id: id.clone(),
                    delete_device: false,
                    unlink_confirmed: link_proven_gone,
                    actor: record.actor.clone(),
                };
                self.db.begin_wipe(&wipe)?;
                self.finish_wipe(&wipe, reason).await?;
                self.record_entry(&id, record);
                self.notice(&id, reason, notice);
            }
            Reaction::GoOffline {
                reason,
                ban_expires_at,
                record,
                notice,
            } => {
                rt.take_session().stop().await;
                device.offline(reason, ban_expires_at);
                self.save_and_emit(&mut device)?;
                if let Some(until) = ban_expires_at {
                    self.reconnect_when_ban_ends(rt, &id, until);
                }
                self.record_entry(&id, record);
                self.notice(&id, reason, notice);
            }
            Reaction::RetryLater => self.retry_later(rt, device)?,
        }
        Ok(())
    }

    async fn apply_pairing_end(
        self: &Arc<Self>,
        rt: &mut DeviceRuntime,
        device: Device,
        ending: PairingEnd,
    ) -> Result<()> {
        let id = device.id.clone();
        self.end_pairing(rt, device, ending.reason).await?;
        if let Some(record) = ending.record {
            self.record_entry(&id, record);
        }
        Ok(())
    }

    /// [`Device::paired`] with `identity`, saved, then `record`.
    pub(super) fn save_paired(
        &self,
        device: &mut Device,
        identity: LinkedIdentity,
        record: HistoryRecord,
    ) -> Result<()> {
        device.paired(identity);
        self.save_and_emit(device)?;
        self.record_entry(&device.id, record);
        Ok(())
    }

    fn record_entry(&self, id: &DeviceId, record: HistoryRecord) {
        self.record(
            id,
            record.action,
            &record.actor,
            record.outcome,
            record.detail,
        );
    }
}
