//! The table of reactions: what each event of a device's WhatsApp session,
//! and the end of its run loop, does to the device — the transition, the
//! reason, the history entry, the notice and their wording.
//!
//! Pure: [`react`] and [`react_to_session_end`] read only their arguments
//! and return a [`Reaction`], plain data. Carrying it out (stopping the
//! session, saving, wiping, recording) is separate, in
//! [`super::reaction_effects`], which decides and words nothing.

use super::login::format_pairing_code;
use crate::lifecycle::LinkedIdentity;
use crate::model::{Actor, Device, DeviceState, HistoryAction, Outcome, StateReason};
use chrono::{DateTime, Utc};
use wacore::types::events::{ConnectFailureReason, Event, TempBanReason};

/// What the service does about one event or the end of a session.
#[derive(Debug, PartialEq)]
pub(super) enum Reaction {
    /// Nothing changes.
    Ignored,
    /// A QR code to show until `expires_at`: the first answers the waiting
    /// login, every one goes out as an event.
    ShowQrCode {
        payload: Secret<String>,
        expires_at: DateTime<Utc>,
    },
    /// A pairing code (`XXXX-XXXX`) to type on the phone until `expires_at`:
    /// it answers the waiting login and goes out as an event.
    ShowPairingCode {
        code: Secret<String>,
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
    /// credentials are wiped like a logout, by the record's actor: one whose
    /// unlink is confirmed when `link_proven_gone`, otherwise one whose keys
    /// are kept as a pending revocation until WhatsApp confirms the link is
    /// gone. The device goes straight to `unlinked` with `reason` (no
    /// snapshot in between shows `logged_out`), then the record, then the
    /// notice.
    Wipe {
        reason: StateReason,
        link_proven_gone: bool,
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

/// Who asks WhatsApp for a session's pairing codes, and so who learns that a
/// request failed: the library, for a session started as a code login (it
/// reports only by event), or a caller asking on a QR login's connection
/// (see `login_takeover`), who gets the failure returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CodeRequester {
    Library,
    Caller,
}

/// A QR payload or pairing code: compared in tests, never shown by `Debug`
/// (whoever holds one can link a companion to the account).
#[derive(PartialEq)]
pub(super) struct Secret<T>(pub(super) T);

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
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

/// What `event` of a session whose pairing codes are asked for by
/// `codes` does to `device` at `now`.
pub(super) fn react(
    device: &Device,
    event: &Event,
    codes: CodeRequester,
    now: DateTime<Utc>,
) -> Reaction {
    let pairing = device.state == DeviceState::Pairing;
    match event {
        Event::PairingQrCode(qr) => Reaction::ShowQrCode {
            payload: Secret(qr.code.clone()),
            expires_at: after(now, qr.timeout),
        },
        Event::PairingCode(pc) => Reaction::ShowPairingCode {
            code: Secret(format_pairing_code(&pc.code)),
            expires_at: after(now, pc.timeout),
        },
        // The caller that asked was handed the failure itself, and the
        // event can come after a later request of the same session was
        // armed: it would answer the wrong one.
        Event::PairingCodeError(_) if codes == CodeRequester::Caller => Reaction::Ignored,
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
                // A link that has just landed and never logged in can be
                // refused while its registration is still in flight at
                // WhatsApp: that refusal is not proof it is gone, and its
                // keys are kept to end it.
                link_proven_gone: device.state_reason != StateReason::Paired,
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
                // No time here: the window shows `ban_expires_at` in local time.
                format!(
                    "WhatsApp banned the account temporarily because {}",
                    ban_reason_words(&ban.code)
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

/// Why WhatsApp banned an account, in words (never the variant's name).
pub(super) fn ban_reason_words(reason: &TempBanReason) -> &'static str {
    match reason {
        TempBanReason::SentToTooManyPeople => {
            "it sent too many messages to people who do not have it in their contacts"
        }
        TempBanReason::BlockedByUsers => "too many people blocked it",
        TempBanReason::CreatedTooManyGroups => {
            "it created too many groups with people who do not have it in their contacts"
        }
        TempBanReason::SentTooManySameMessage => "it sent the same message to too many people",
        TempBanReason::BroadcastList => "it sent too many messages to a broadcast list",
        TempBanReason::Unknown(_) => "of a reason WhatsApp did not name",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceId;
    use std::time::Duration;
    use wacore::types::events::{
        ClientOutdated, Connected, LoggedOut, PairError, PairSuccess, PairingCode,
        PairingCodeError, PairingCodeRefresh, PairingQrCode, PairingQrCodesExhausted,
        QrScannedWithoutMultidevice, SelfPushNameUpdated, StreamReplaced, TempBanReason,
        TemporaryBan,
    };
    use whatsapp_rust::Jid;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid time")
    }

    fn jid() -> Jid {
        "15551234567:3@s.whatsapp.net".parse().expect("valid JID")
    }

    fn unlinked() -> Device {
        Device::created(
            DeviceId::parse("d").expect("valid id"),
            String::new(),
            at(0),
        )
    }

    fn pairing() -> Device {
        let mut d = unlinked();
        d.begin_pairing(StateReason::QrLoginRequested);
        d
    }

    fn paired() -> Device {
        let mut d = pairing();
        d.paired(LinkedIdentity::of_account(&jid()));
        d
    }

    fn logged_in() -> Device {
        let mut d = paired();
        d.logged_in(at(1), LinkedIdentity::default());
        d
    }

    fn offline() -> Device {
        let mut d = logged_in();
        d.offline(StateReason::Replaced, None);
        d
    }

    /// One device in each state, each reached by transitions only.
    fn in_every_state() -> [Device; 5] {
        [unlinked(), pairing(), paired(), logged_in(), offline()]
    }

    fn logged_out(reason: ConnectFailureReason) -> Event {
        Event::LoggedOut(LoggedOut::builder().on_connect(true).reason(reason).build())
    }

    fn pair_error() -> Event {
        Event::PairError(
            PairError::builder()
                .id(jid())
                .lid(jid())
                .business_name(String::new())
                .platform("android".into())
                .error("refused".into())
                .build(),
        )
    }

    fn pairing_code_error() -> Event {
        Event::PairingCodeError(PairingCodeError::builder().error("refused".into()).build())
    }

    fn qr_codes_exhausted() -> Event {
        Event::PairingQrCodesExhausted(
            PairingQrCodesExhausted::builder()
                .disconnected(true)
                .build(),
        )
    }

    fn pairing_failed(detail: &str) -> PairingEnd {
        PairingEnd {
            reason: StateReason::PairingFailed,
            record: Some(HistoryRecord {
                action: HistoryAction::PairingFailed,
                actor: Actor::Whatsapp,
                outcome: Outcome::Failed,
                detail: detail.to_owned(),
            }),
        }
    }

    /// The reaction's wipe, as `(reason, action, notice)`.
    fn wipe_of(reaction: Reaction) -> (StateReason, HistoryAction, String) {
        match reaction {
            Reaction::Wipe {
                reason,
                record,
                notice,
                ..
            } => {
                assert_eq!(
                    (record.actor, record.outcome),
                    (Actor::Whatsapp, Outcome::Ok)
                );
                assert!(
                    record.detail.starts_with(&notice),
                    "{} / {notice}",
                    record.detail
                );
                (reason, record.action, notice)
            }
            other => panic!("not a wipe: {other:?}"),
        }
    }

    #[test]
    fn qr_code_is_shown_until_its_timeout() {
        let event = Event::PairingQrCode(
            PairingQrCode::builder()
                .code("ref,noise,identity,adv".into())
                .timeout(Duration::from_secs(20))
                .build(),
        );
        assert_eq!(
            react(&pairing(), &event, CodeRequester::Library, at(0)),
            Reaction::ShowQrCode {
                payload: Secret("ref,noise,identity,adv".into()),
                expires_at: at(20),
            }
        );
    }

    #[test]
    fn pairing_code_is_shown_in_two_groups_until_its_timeout() {
        let event = Event::PairingCode(
            PairingCode::builder()
                .code("ABCD1234".into())
                .timeout(Duration::from_secs(180))
                .build(),
        );
        assert_eq!(
            react(&pairing(), &event, CodeRequester::Library, at(0)),
            Reaction::ShowPairingCode {
                code: Secret("ABCD-1234".into()),
                expires_at: at(180),
            }
        );
    }

    #[test]
    fn pair_error_during_pairing_ends_the_pairing() {
        for event in [pair_error(), pairing_code_error()] {
            assert_eq!(
                react(&pairing(), &event, CodeRequester::Library, at(0)),
                Reaction::PairingRefused {
                    answer: "WhatsApp refused the pairing code request",
                    ending: Some(pairing_failed("the pairing failed")),
                }
            );
        }
    }

    #[test]
    fn pair_error_outside_pairing_changes_nothing() {
        for device in [unlinked(), paired(), logged_in(), offline()] {
            for event in [pair_error(), pairing_code_error()] {
                assert_eq!(
                    react(&device, &event, CodeRequester::Library, at(0)),
                    Reaction::PairingRefused {
                        answer: "WhatsApp refused the pairing code request",
                        ending: None,
                    },
                    "{:?}",
                    device.state
                );
            }
        }
    }

    #[test]
    fn a_code_error_is_left_to_the_caller_that_asked() {
        for device in in_every_state() {
            assert_eq!(
                react(&device, &pairing_code_error(), CodeRequester::Caller, at(0)),
                Reaction::Ignored,
                "{:?}",
                device.state
            );
        }
        // A failed link is the session's, whoever asked for the code.
        assert_eq!(
            react(&pairing(), &pair_error(), CodeRequester::Caller, at(0)),
            Reaction::PairingRefused {
                answer: "WhatsApp refused the pairing code request",
                ending: Some(pairing_failed("the pairing failed")),
            }
        );
    }

    #[test]
    fn qr_codes_exhausted_expire_the_pairing() {
        assert_eq!(
            react(
                &pairing(),
                &qr_codes_exhausted(),
                CodeRequester::Library,
                at(0)
            ),
            Reaction::EndPairing(PairingEnd {
                reason: StateReason::QrExpired,
                record: Some(HistoryRecord {
                    action: HistoryAction::QrExpired,
                    actor: Actor::System,
                    outcome: Outcome::Ok,
                    detail: "every QR code expired without a scan".into(),
                }),
            })
        );
    }

    #[test]
    fn qr_codes_exhausted_outside_pairing_are_ignored() {
        for device in [unlinked(), paired(), logged_in(), offline()] {
            assert_eq!(
                react(
                    &device,
                    &qr_codes_exhausted(),
                    CodeRequester::Library,
                    at(0)
                ),
                Reaction::Ignored
            );
        }
    }

    #[test]
    fn pair_success_links_with_the_business_name() {
        let event = Event::PairSuccess(
            PairSuccess::builder()
                .id(jid())
                .lid(jid())
                .business_name("Front desk".into())
                .platform("android".into())
                .build(),
        );
        assert_eq!(
            react(&pairing(), &event, CodeRequester::Library, at(0)),
            Reaction::Paired {
                identity: LinkedIdentity {
                    jid: Some("15551234567:3@s.whatsapp.net".into()),
                    phone_number: Some("15551234567".into()),
                    display_name: Some("Front desk".into()),
                },
                record: HistoryRecord {
                    action: HistoryAction::Paired,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Ok,
                    detail: "linked as 15551234567:3@s.whatsapp.net".into(),
                },
            }
        );
    }

    #[test]
    fn pair_success_without_a_business_name_leaves_the_name_unknown() {
        let event = Event::PairSuccess(
            PairSuccess::builder()
                .id(jid())
                .lid(jid())
                .business_name(String::new())
                .platform("android".into())
                .build(),
        );
        let Reaction::Paired { identity, .. } =
            react(&pairing(), &event, CodeRequester::Library, at(0))
        else {
            panic!("not paired");
        };
        assert_eq!(identity.display_name, None);
    }

    #[test]
    fn connected_logs_in_as_the_sessions_account() {
        let event = Event::Connected(Connected::builder().build());
        assert_eq!(
            react(&paired(), &event, CodeRequester::Library, at(7)),
            Reaction::LogIn { at: at(7) }
        );
    }

    #[test]
    fn the_sessions_account_is_its_number_and_push_name() {
        assert_eq!(
            account_identity(Some(&jid()), "Front desk"),
            LinkedIdentity {
                jid: Some("15551234567:3@s.whatsapp.net".into()),
                phone_number: Some("15551234567".into()),
                display_name: Some("Front desk".into()),
            }
        );
        assert_eq!(account_identity(None, ""), LinkedIdentity::default());
    }

    #[test]
    fn self_push_name_update_renames_the_device() {
        let event = Event::SelfPushNameUpdated(
            SelfPushNameUpdated::builder()
                .from_server(true)
                .old_name("Old".into())
                .new_name("New".into())
                .build(),
        );
        assert_eq!(
            react(&logged_in(), &event, CodeRequester::Library, at(0)),
            Reaction::Renamed {
                display_name: "New".into()
            }
        );
    }

    #[test]
    fn logged_out_during_pairing_ends_the_pairing_unrecorded() {
        for reason in [
            ConnectFailureReason::LoggedOut,
            ConnectFailureReason::AccountLocked,
            ConnectFailureReason::Generic,
        ] {
            assert_eq!(
                react(
                    &pairing(),
                    &logged_out(reason),
                    CodeRequester::Library,
                    at(0)
                ),
                Reaction::EndPairing(PairingEnd {
                    reason: StateReason::PairingFailed,
                    record: None,
                })
            );
        }
    }

    #[test]
    fn removal_in_the_phone_wipes_credentials() {
        for device in [paired(), logged_in(), offline()] {
            let reaction = react(
                &device,
                &logged_out(ConnectFailureReason::LoggedOut),
                CodeRequester::Library,
                at(0),
            );
            if let Reaction::Wipe {
                link_proven_gone, ..
            } = &reaction
            {
                // A link that logged in once is proven: its refusal is final.
                assert_eq!(*link_proven_gone, device.last_connected_at.is_some());
            }
            assert_eq!(
                wipe_of(reaction),
                (
                    StateReason::RemovedFromPhone,
                    HistoryAction::RemovedFromPhone,
                    "the device was removed in the phone's Linked devices; its credentials were wiped".into()
                )
            );
        }
    }

    #[test]
    fn a_refusal_of_a_link_that_never_logged_in_keeps_its_keys_to_end_it() {
        let Reaction::Wipe {
            reason,
            link_proven_gone,
            ..
        } = react(
            &paired(),
            &logged_out(ConnectFailureReason::LoggedOut),
            CodeRequester::Library,
            at(0),
        )
        else {
            panic!("not a wipe");
        };
        assert_eq!(reason, StateReason::RemovedFromPhone);
        assert!(!link_proven_gone);
    }

    #[test]
    fn removal_record_names_the_servers_reason() {
        let Reaction::Wipe { record, .. } = react(
            &logged_in(),
            &logged_out(ConnectFailureReason::LoggedOut),
            CodeRequester::Library,
            at(0),
        ) else {
            panic!("not a wipe");
        };
        assert_eq!(
            record.detail,
            "the device was removed in the phone's Linked devices; its credentials were wiped (reason LoggedOut)"
        );
    }

    #[test]
    fn account_locked_wipes_credentials() {
        let reaction = react(
            &logged_in(),
            &logged_out(ConnectFailureReason::AccountLocked),
            CodeRequester::Library,
            at(0),
        );
        assert_eq!(
            wipe_of(reaction),
            (
                StateReason::AccountLocked,
                HistoryAction::AccountLocked,
                "WhatsApp locked the account and logged the device out; its credentials were wiped"
                    .into()
            )
        );
    }

    #[test]
    fn other_logouts_by_whatsapp_wipe_credentials() {
        for reason in [
            ConnectFailureReason::UnknownLogout,
            ConnectFailureReason::Generic,
            ConnectFailureReason::Unknown(499),
        ] {
            let reaction = react(
                &logged_in(),
                &logged_out(reason),
                CodeRequester::Library,
                at(0),
            );
            assert_eq!(
                wipe_of(reaction),
                (
                    StateReason::LoggedOutByWhatsapp,
                    HistoryAction::LoggedOutByWhatsapp,
                    "WhatsApp logged the device out; its credentials were wiped".into()
                )
            );
        }
    }

    #[test]
    fn logged_out_without_credentials_outside_pairing_still_wipes() {
        let reaction = react(
            &unlinked(),
            &logged_out(ConnectFailureReason::LoggedOut),
            CodeRequester::Library,
            at(0),
        );
        assert_eq!(wipe_of(reaction).0, StateReason::RemovedFromPhone);
    }

    #[test]
    fn stream_replaced_goes_offline_keeping_the_credentials() {
        let event = Event::StreamReplaced(StreamReplaced::builder().build());
        let message = "another client took over this session; reconnect or log out";
        assert_eq!(
            react(&logged_in(), &event, CodeRequester::Library, at(0)),
            Reaction::GoOffline {
                reason: StateReason::Replaced,
                ban_expires_at: None,
                record: HistoryRecord {
                    action: HistoryAction::Replaced,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Ok,
                    detail: message.into(),
                },
                notice: message.into(),
            }
        );
    }

    #[test]
    fn ban_reasons_are_words_not_variant_names() {
        for reason in [
            TempBanReason::SentToTooManyPeople,
            TempBanReason::BlockedByUsers,
            TempBanReason::CreatedTooManyGroups,
            TempBanReason::SentTooManySameMessage,
            TempBanReason::BroadcastList,
            TempBanReason::Unknown(7),
        ] {
            let words = ban_reason_words(&reason);
            let name = format!("{reason:?}");
            assert!(
                !words.contains(&name) && words.contains(' '),
                "{name}: {words}"
            );
        }
    }

    #[test]
    fn temporary_ban_goes_offline_until_expiry() {
        let event = Event::TemporaryBan(
            TemporaryBan::builder()
                .code(TempBanReason::BlockedByUsers)
                .expire(chrono::Duration::seconds(3600))
                .build(),
        );
        let message =
            "WhatsApp banned the account temporarily because too many people blocked it".to_owned();
        assert_eq!(
            react(&logged_in(), &event, CodeRequester::Library, at(0)),
            Reaction::GoOffline {
                reason: StateReason::TemporarilyBanned,
                ban_expires_at: Some(at(3600)),
                record: HistoryRecord {
                    action: HistoryAction::TemporarilyBanned,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Ok,
                    detail: message.clone(),
                },
                notice: message,
            }
        );
    }

    #[test]
    fn client_outdated_goes_offline_until_the_app_is_updated() {
        let event = Event::ClientOutdated(ClientOutdated::builder().build());
        let message = "WhatsApp refuses this client version; update the app";
        assert_eq!(
            react(&logged_in(), &event, CodeRequester::Library, at(0)),
            Reaction::GoOffline {
                reason: StateReason::ClientOutdated,
                ban_expires_at: None,
                record: HistoryRecord {
                    action: HistoryAction::ClientOutdated,
                    actor: Actor::Whatsapp,
                    outcome: Outcome::Ok,
                    detail: message.into(),
                },
                notice: message.into(),
            }
        );
    }

    #[test]
    fn other_events_are_ignored() {
        let events = [
            Event::PairingCodeRefresh(PairingCodeRefresh::builder().force_manual(false).build()),
            Event::QrScannedWithoutMultidevice(QrScannedWithoutMultidevice::builder().build()),
        ];
        for device in in_every_state() {
            for event in &events {
                assert_eq!(
                    react(&device, event, CodeRequester::Library, at(0)),
                    Reaction::Ignored
                );
            }
        }
    }

    #[test]
    fn session_end_while_logged_in_retries() {
        assert_eq!(react_to_session_end(&logged_in()), Reaction::RetryLater);
    }

    #[test]
    fn session_end_while_connecting_retries() {
        assert_eq!(react_to_session_end(&paired()), Reaction::RetryLater);
    }

    #[test]
    fn session_end_during_pairing_ends_the_pairing() {
        assert_eq!(
            react_to_session_end(&pairing()),
            Reaction::EndPairing(PairingEnd {
                reason: StateReason::PairingFailed,
                record: Some(HistoryRecord {
                    action: HistoryAction::PairingFailed,
                    actor: Actor::System,
                    outcome: Outcome::Failed,
                    detail: "the connection ended before the phone linked the device".into(),
                }),
            })
        );
    }

    #[test]
    fn session_end_while_offline_or_unlinked_changes_nothing() {
        assert_eq!(react_to_session_end(&offline()), Reaction::Ignored);
        assert_eq!(react_to_session_end(&unlinked()), Reaction::Ignored);
    }

    #[test]
    fn the_late_link_record_is_a_paired_entry() {
        assert_eq!(
            paired_record("linked".into()),
            HistoryRecord {
                action: HistoryAction::Paired,
                actor: Actor::Whatsapp,
                outcome: Outcome::Ok,
                detail: "linked".into(),
            }
        );
    }
}
