//! Which change of a device is which webhook event: a pure function of the
//! device's previous and new state, with unit tests.

use super::settings::WebhookEvent;
use crate::model::{Device, DeviceState, StateReason};

/// What the outbox remembers of a device between two of its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub state: DeviceState,
    pub reason: StateReason,
    /// The JID the device was last linked as: a logout blanks the device's
    /// own, and its event still names the link that ended.
    pub jid: Option<String>,
}

impl Seen {
    pub fn of(device: &Device, before: Option<&Seen>) -> Seen {
        Seen {
            state: device.state,
            reason: device.state_reason,
            jid: device
                .jid
                .clone()
                .or_else(|| before.and_then(|b| b.jid.clone())),
        }
    }
}

/// The event `device`'s new snapshot is, after `before` (`None`: the first
/// snapshot since the service opened). A snapshot that repeats the state
/// and reason it had is no event: retries, renames and revisions are not.
pub fn event_for(before: Option<&Seen>, device: &Device) -> Option<WebhookEvent> {
    let same = |state: DeviceState, reason: StateReason| {
        before.is_some_and(|b| b.state == state && b.reason == reason)
    };
    if same(device.state, device.state_reason) {
        return None;
    }
    let was_logged_in = before.is_some_and(|b| b.state == DeviceState::LoggedIn);
    match (device.state, device.state_reason) {
        (DeviceState::LoggedIn, _) if !was_logged_in => Some(WebhookEvent::LoggedIn),
        (DeviceState::Connecting, StateReason::ConnectionLost) if was_logged_in => {
            Some(WebhookEvent::Reconnecting)
        }
        (DeviceState::Offline, StateReason::TemporarilyBanned) => Some(WebhookEvent::Banned),
        (DeviceState::Offline, StateReason::Replaced) => Some(WebhookEvent::Replaced),
        (_, StateReason::RemovedFromPhone) => Some(WebhookEvent::RemovedFromPhone),
        (
            _,
            StateReason::LoggedOut | StateReason::LoggedOutByWhatsapp | StateReason::AccountLocked,
        ) => Some(WebhookEvent::LoggedOut),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DeviceId;
    use chrono::Utc;

    fn device(state: DeviceState, reason: StateReason) -> Device {
        let mut d = Device::created(
            DeviceId::parse("d").expect("test value"),
            String::new(),
            Utc::now(),
        );
        d.state = state;
        d.state_reason = reason;
        d
    }

    fn seen(state: DeviceState, reason: StateReason) -> Seen {
        Seen {
            state,
            reason,
            jid: None,
        }
    }

    #[test]
    fn logging_in_is_an_event_once() {
        let now = device(DeviceState::LoggedIn, StateReason::Connected);
        let connecting = seen(DeviceState::Connecting, StateReason::Paired);
        assert_eq!(
            event_for(Some(&connecting), &now),
            Some(WebhookEvent::LoggedIn)
        );
        assert_eq!(event_for(None, &now), Some(WebhookEvent::LoggedIn));
        let logged_in = seen(DeviceState::LoggedIn, StateReason::Connected);
        assert_eq!(event_for(Some(&logged_in), &now), None);
    }

    #[test]
    fn a_lost_connection_of_a_logged_in_device_is_reconnecting_not_each_retry() {
        let lost = device(DeviceState::Connecting, StateReason::ConnectionLost);
        let logged_in = seen(DeviceState::LoggedIn, StateReason::Connected);
        assert_eq!(
            event_for(Some(&logged_in), &lost),
            Some(WebhookEvent::Reconnecting)
        );
        let retrying = seen(DeviceState::Connecting, StateReason::ConnectionLost);
        assert_eq!(event_for(Some(&retrying), &lost), None);
        let restoring = seen(DeviceState::Connecting, StateReason::Restoring);
        assert_eq!(event_for(Some(&restoring), &lost), None);
    }

    #[test]
    fn endings_are_named_by_their_reason() {
        let logged_in = seen(DeviceState::LoggedIn, StateReason::Connected);
        let cases = [
            (
                DeviceState::Offline,
                StateReason::TemporarilyBanned,
                WebhookEvent::Banned,
            ),
            (
                DeviceState::Offline,
                StateReason::Replaced,
                WebhookEvent::Replaced,
            ),
            (
                DeviceState::Disconnected,
                StateReason::RemovedFromPhone,
                WebhookEvent::RemovedFromPhone,
            ),
            (
                DeviceState::Disconnected,
                StateReason::LoggedOut,
                WebhookEvent::LoggedOut,
            ),
            (
                DeviceState::Disconnected,
                StateReason::LoggedOutByWhatsapp,
                WebhookEvent::LoggedOut,
            ),
            (
                DeviceState::Disconnected,
                StateReason::AccountLocked,
                WebhookEvent::LoggedOut,
            ),
        ];
        for (state, reason, event) in cases {
            assert_eq!(
                event_for(Some(&logged_in), &device(state, reason)),
                Some(event),
                "{reason:?}"
            );
            assert_eq!(
                event_for(Some(&seen(state, reason)), &device(state, reason)),
                None
            );
        }
    }

    #[test]
    fn logins_pairings_and_admin_steps_are_no_events() {
        let cases = [
            (DeviceState::Pairing, StateReason::QrLoginRequested),
            (DeviceState::Connecting, StateReason::Paired),
            (DeviceState::Connecting, StateReason::ReconnectRequested),
            (DeviceState::Disconnected, StateReason::QrExpired),
            (DeviceState::Disconnected, StateReason::LoginCancelled),
            (DeviceState::Offline, StateReason::ClientOutdated),
        ];
        for (state, reason) in cases {
            assert_eq!(event_for(None, &device(state, reason)), None, "{reason:?}");
        }
    }

    #[test]
    fn the_jid_of_the_link_outlives_the_logout_that_blanks_it() {
        let mut linked = device(DeviceState::LoggedIn, StateReason::Connected);
        linked.jid = Some("15551234567:3@s.whatsapp.net".into());
        let before = Seen::of(&linked, None);
        let out = device(DeviceState::Disconnected, StateReason::LoggedOut);
        assert_eq!(Seen::of(&out, Some(&before)).jid, linked.jid);
    }
}
