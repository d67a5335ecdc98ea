//! The table of reactions: what each event of a device's WhatsApp session,
//! and the end of its run loop, does to the device — the transition, the
//! reason, the history entry, the notice and their wording.
//!
//! Pure: [`react`] and [`react_to_session_end`] read only their arguments
//! and return a [`Reaction`], plain data. Carrying it out (stopping the
//! session, saving, wiping, recording) is
//! [`ServiceCore::apply_reaction`](super::ServiceCore), which decides and
//! words nothing.

use super::login::format_pairing_code;
use crate::lifecycle::LinkedIdentity;
use crate::model::{Actor, Device, DeviceState, HistoryAction, Outcome, StateReason};
use chrono::{DateTime, Utc};
use wacore::types::events::{ConnectFailureReason, Event};

/// What the service does about one event or the end of a session.
#[derive(Debug, PartialEq)]
pub(super) enum Reaction {
    /// Nothing changes.
    Ignored,
    /// A QR code to show until `expires_at`: the first answers the waiting
    /// login, every one goes out as an event.
    ShowQrCode {
        payload: String,
        expires_at: DateTime<Utc>,
    },
    /// A pairing code (`XXXX-XXXX`) to type on the phone until `expires_at`:
    /// it answers the waiting login and goes out as an event.
    ShowPairingCode {
        code: String,
        expires_at: DateTime<Utc>,
    },
    /// WhatsApp refused the pairing code request: a login waiting for its
    /// code gets `answer` as a `whatsapp` error, then `ending`, if any, ends
    /// the pending pairing.
    PairingRefused {
        answer: &'static str,
        ending: Option<PairingEnd>,
    },
    /// The pending login ends (see `end_pairing`): `unlinked`.
    EndPairing(PairingEnd),
    /// The phone accepted the link: [`Device::paired`], saved, recorded.
    Paired {
        identity: LinkedIdentity,
        record: HistoryRecord,
    },
    /// The session logged in: [`Device::logged_in`] at `at`. The account's
    /// identity is not in the event: it is read from the live session's
    /// device snapshot (see [`account_identity`]), which also stops the
    /// library's own retries.
    LogIn { at: DateTime<Utc> },
    /// The account renamed itself: [`Device::renamed_by_account`].
    Renamed { display_name: String },
    /// WhatsApp ended the link for good: the session stops and the
    /// credentials are wiped like a logout whose unlink is already
    /// confirmed, by the record's actor. The device goes straight to
    /// `unlinked` with `reason` (no snapshot in between shows
    /// `logged_out`), then the record, then the notice.
    Wipe {
        reason: StateReason,
        record: HistoryRecord,
        notice: String,
    },
    /// WhatsApp ended the session but the credentials stay: the session
    /// stops, [`Device::offline`] with `reason` and `ban_expires_at`, then
    /// the record, then the notice. Not retried.
    GoOffline {
        reason: StateReason,
        ban_expires_at: Option<DateTime<Utc>>,
        record: HistoryRecord,
        notice: String,
    },
    /// The connection of a device that should be connected ended:
    /// [`Device::connecting`] with the next attempt after the backoff.
    RetryLater,
}

/// How a pending login ends: `unlinked` with `reason`, then `record`.
#[derive(Debug, PartialEq)]
pub(super) struct PairingEnd {
    pub(super) reason: StateReason,
    pub(super) record: Option<HistoryRecord>,
}

/// A history entry to append for the device.
#[derive(Debug, PartialEq)]
pub(super) struct HistoryRecord {
    pub(super) action: HistoryAction,
    pub(super) actor: Actor,
    pub(super) outcome: Outcome,
    pub(super) detail: String,
}

/// What `event` does to `device` at `now`.
pub(super) fn react(device: &Device, event: &Event, now: DateTime<Utc>) -> Reaction {
    let pairing = device.state == DeviceState::Pairing;
    match event {
        Event::PairingQrCode(qr) => Reaction::ShowQrCode {
            payload: qr.code.clone(),
            expires_at: after(now, qr.timeout),
        },
        Event::PairingCode(pc) => Reaction::ShowPairingCode {
            code: format_pairing_code(&pc.code),
            expires_at: after(now, pc.timeout),
        },
        Event::PairingCodeError(_) | Event::PairError(_) => Reaction::PairingRefused {
            answer: "WhatsApp refused the pairing code request",
            ending: pairing.then(|| PairingEnd {
                reason: StateReason::PairingFailed,
                record: Some(HistoryRecord {
                    action: HistoryAction::PairingFailed,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Failed,
                    detail: "the pairing failed".to_owned(),
                }),
            }),
        },
        Event::PairingQrCodesExhausted(_) if pairing => Reaction::EndPairing(PairingEnd {
            reason: StateReason::QrExpired,
            record: Some(HistoryRecord {
                action: HistoryAction::QrExpired,
                actor: Actor::System,
                outcome: Outcome::Ok,
                detail: "every QR code expired without a scan".to_owned(),
            }),
        }),
        Event::PairSuccess(ps) => Reaction::Paired {
            identity: account_identity(Some(&ps.id), &ps.business_name),
            record: paired_record(format!("linked as {}", ps.id)),
        },
        Event::Connected(_) => Reaction::LogIn { at: now },
        Event::SelfPushNameUpdated(update) => Reaction::Renamed {
            display_name: update.new_name.clone(),
        },
        // A login refused before the phone linked: nothing to wipe but
        // what the pairing made.
        Event::LoggedOut(_) if pairing && !device.has_credentials => {
            Reaction::EndPairing(PairingEnd {
                reason: StateReason::PairingFailed,
                record: None,
            })
        }
        Event::LoggedOut(out) => {
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
            Reaction::Wipe {
                reason,
                record: HistoryRecord {
                    action,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Ok,
                    detail: format!("{message} (reason {:?})", out.reason),
                },
                notice: message.to_owned(),
            }
        }
        Event::StreamReplaced(_) => offline(
            StateReason::Replaced,
            None,
            HistoryAction::Replaced,
            "another client took over this session; reconnect or log out".to_owned(),
        ),
        Event::TemporaryBan(ban) => {
            let until = now + ban.expire;
            offline(
                StateReason::TemporarilyBanned,
                Some(until),
                HistoryAction::TemporarilyBanned,
                format!(
                    "WhatsApp banned the account temporarily ({:?}) until {}",
                    ban.code,
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )
        }
        Event::ClientOutdated(_) => offline(
            StateReason::ClientOutdated,
            None,
            HistoryAction::ClientOutdated,
            "WhatsApp refuses this client version; update the app".to_owned(),
        ),
        _ => Reaction::Ignored,
    }
}

/// What the end of a session's run loop (the connection failed or dropped
/// and the client does not retry) does to `device`. The session is stopped
/// whatever the reaction.
pub(super) fn react_to_session_end(device: &Device) -> Reaction {
    match device.state {
        DeviceState::Connecting | DeviceState::LoggedIn if device.has_credentials => {
            Reaction::RetryLater
        }
        DeviceState::Pairing => Reaction::EndPairing(PairingEnd {
            reason: StateReason::PairingFailed,
            record: Some(HistoryRecord {
                action: HistoryAction::PairingFailed,
                actor: Actor::System,
                outcome: Outcome::Failed,
                detail: "the connection ended before the phone linked the device".to_owned(),
            }),
        }),
        _ => Reaction::Ignored,
    }
}

/// The history entry of a link the phone accepted.
pub(super) fn paired_record(detail: String) -> HistoryRecord {
    HistoryRecord {
        action: HistoryAction::Paired,
        actor: Actor::Whatsapp,
        outcome: Outcome::Ok,
        detail,
    }
}

/// The identity of the account `jid` (when known) named `name` (an empty
/// name is no name).
pub(super) fn account_identity(jid: Option<&whatsapp_rust::Jid>, name: &str) -> LinkedIdentity {
    LinkedIdentity {
        display_name: Some(name.to_owned()).filter(|n| !n.is_empty()),
        ..jid.map(LinkedIdentity::of_account).unwrap_or_default()
    }
}

/// A server-side ending that keeps the credentials; its notice says what the
/// history says.
fn offline(
    reason: StateReason,
    ban_expires_at: Option<DateTime<Utc>>,
    action: HistoryAction,
    message: String,
) -> Reaction {
    Reaction::GoOffline {
        reason,
        ban_expires_at,
        record: HistoryRecord {
            action,
            actor: Actor::Whatsapp,
            outcome: Outcome::Ok,
            detail: message.clone(),
        },
        notice: message,
    }
}

fn after(now: DateTime<Utc>, timeout: std::time::Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::zero())
}
