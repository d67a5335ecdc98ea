//! The named transitions of a [`Device`]: the only code that sets its state.
//!
//! Each transition sets every field its state implies, so these invariants
//! hold after any of them (checked by [`Device::check_invariants`]):
//! - `has_credentials` is false exactly in `disconnected` and `pairing`;
//! - phone number, display name and JID are blank in `disconnected` and
//!   `pairing` (the product's logout step 3);
//! - `next_retry_at` is set only in `connecting`;
//! - `ban_expires_at` is set only in `offline` for a temporary ban;
//! - `login_phase` is `LoginPhase::of(state, state_reason)`.
//!
//! Times are arguments, never read here, so the transitions are pure.

use crate::model::{Device, DeviceId, DeviceState, LoginPhase, StateReason};
use chrono::{DateTime, Utc};

/// Who the account is, as far as a session told us.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The companion JID, `PN:D@s.whatsapp.net`.
    pub jid: Option<String>,
    /// Digits of the account's phone number.
    pub phone_number: Option<String>,
    /// The account's push or business name.
    pub display_name: Option<String>,
}

impl LinkedIdentity {
    /// The identity a JID tells: the JID and its phone number.
    pub fn of_account(jid: &whatsapp_rust::Jid) -> LinkedIdentity {
        LinkedIdentity {
            jid: Some(jid.to_string()),
            phone_number: Some(jid.user.to_string()),
            display_name: None,
        }
    }
}

impl Device {
    /// A device just created at `at`: `disconnected`, reason `created`,
    /// never linked.
    pub fn created(id: DeviceId, label: String, at: DateTime<Utc>) -> Device {
        Device {
            id,
            label,
            phone_number: None,
            display_name: None,
            jid: None,
            state: DeviceState::Disconnected,
            state_reason: StateReason::Created,
            login_phase: LoginPhase::of(DeviceState::Disconnected, StateReason::Created),
            next_retry_at: None,
            ban_expires_at: None,
            has_credentials: false,
            created_at: at,
            last_connected_at: None,
            revision: 0,
        }
    }

    /// `disconnected` without credentials: phone number, name and JID
    /// blanked. After a logout, a wipe, an ended or failed login.
    pub fn unlinked(&mut self, reason: StateReason) {
        self.set_state(DeviceState::Disconnected, reason);
        self.blank_identity();
        self.next_retry_at = None;
        self.ban_expires_at = None;
        self.has_credentials = false;
    }

    /// `pairing`: a login session is open and waits for the phone.
    pub fn begin_pairing(&mut self, reason: StateReason) {
        self.set_state(DeviceState::Pairing, reason);
        self.blank_identity();
        self.next_retry_at = None;
        self.ban_expires_at = None;
        self.has_credentials = false;
    }

    /// The phone accepted the link: the device has credentials and logs in.
    pub fn paired(&mut self, identity: LinkedIdentity) {
        self.set_state(DeviceState::Connecting, StateReason::Paired);
        self.adopt_identity(identity);
        self.next_retry_at = None;
        self.ban_expires_at = None;
        self.has_credentials = true;
    }

    /// `connecting` with credentials, now (`retry_at` = `None`) or at
    /// `retry_at`.
    pub fn connecting(&mut self, reason: StateReason, retry_at: Option<DateTime<Utc>>) {
        self.set_state(DeviceState::Connecting, reason);
        self.next_retry_at = retry_at;
        self.ban_expires_at = None;
        self.has_credentials = true;
    }

    /// Connected and authenticated at `at`.
    pub fn logged_in(&mut self, at: DateTime<Utc>, identity: LinkedIdentity) {
        self.set_state(DeviceState::LoggedIn, StateReason::Connected);
        self.adopt_identity(identity);
        self.next_retry_at = None;
        self.ban_expires_at = None;
        self.has_credentials = true;
        self.last_connected_at = Some(at);
    }

    /// `offline` with credentials: the service does not retry by itself.
    /// `ban_until` is kept only for a temporary ban.
    pub fn offline(&mut self, reason: StateReason, ban_until: Option<DateTime<Utc>>) {
        self.set_state(DeviceState::Offline, reason);
        self.next_retry_at = None;
        self.ban_expires_at = ban_until.filter(|_| reason == StateReason::TemporarilyBanned);
        self.has_credentials = true;
    }

    /// A new display name while the device keeps its state.
    pub fn renamed_by_account(&mut self, display_name: String) {
        if self.has_credentials {
            self.display_name = Some(display_name);
        }
    }

    /// The first invariant of the module docs that `self` breaks, if any.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let unlinked = matches!(self.state, DeviceState::Disconnected | DeviceState::Pairing);
        if self.has_credentials == unlinked {
            return Err("has_credentials must be false exactly in disconnected and pairing");
        }
        if unlinked
            && (self.phone_number.is_some() || self.display_name.is_some() || self.jid.is_some())
        {
            return Err("a device without credentials shows no phone number, name or JID");
        }
        if self.next_retry_at.is_some() && self.state != DeviceState::Connecting {
            return Err("next_retry_at is set only in connecting");
        }
        if self.ban_expires_at.is_some()
            && (self.state != DeviceState::Offline
                || self.state_reason != StateReason::TemporarilyBanned)
        {
            return Err("ban_expires_at is set only in offline for a temporary ban");
        }
        if self.login_phase != LoginPhase::of(self.state, self.state_reason) {
            return Err("login_phase follows state and state_reason");
        }
        Ok(())
    }

    fn set_state(&mut self, state: DeviceState, reason: StateReason) {
        self.state = state;
        self.state_reason = reason;
        self.login_phase = LoginPhase::of(state, reason);
    }

    fn blank_identity(&mut self) {
        self.phone_number = None;
        self.display_name = None;
        self.jid = None;
    }

    fn adopt_identity(&mut self, identity: LinkedIdentity) {
        if identity.jid.is_some() {
            self.jid = identity.jid;
        }
        if identity.phone_number.is_some() {
            self.phone_number = identity.phone_number;
        }
        if identity.display_name.is_some() {
            self.display_name = identity.display_name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("valid time")
    }

    fn created() -> Device {
        Device::created(
            DeviceId::parse("d").expect("valid id"),
            String::new(),
            at(0),
        )
    }

    fn identity() -> LinkedIdentity {
        LinkedIdentity {
            jid: Some("15551234567:3@s.whatsapp.net".into()),
            phone_number: Some("15551234567".into()),
            display_name: Some("Front desk".into()),
        }
    }

    /// A device in every state, each reached by transitions only.
    fn in_every_state() -> Vec<Device> {
        let mut out = vec![created()];
        let mut d = created();
        d.begin_pairing(StateReason::QrLoginRequested);
        out.push(d.clone());
        d.paired(identity());
        out.push(d.clone());
        d.logged_in(at(5), LinkedIdentity::default());
        out.push(d.clone());
        d.connecting(StateReason::ConnectionLost, Some(at(9)));
        out.push(d.clone());
        d.offline(StateReason::TemporarilyBanned, Some(at(60)));
        out.push(d.clone());
        d.offline(StateReason::Replaced, Some(at(60)));
        out.push(d.clone());
        d.unlinked(StateReason::LoggedOut);
        out.push(d);
        out
    }

    #[test]
    fn every_transition_keeps_the_invariants_from_every_state() {
        let transitions: [fn(&mut Device); 7] = [
            |d| d.unlinked(StateReason::LoggedOut),
            |d| d.begin_pairing(StateReason::CodeLoginRequested),
            |d| d.paired(identity()),
            |d| d.connecting(StateReason::Restoring, None),
            |d| d.connecting(StateReason::ConnectionLost, Some(at(3))),
            |d| d.logged_in(at(4), identity()),
            |d| d.offline(StateReason::TemporarilyBanned, Some(at(100))),
        ];
        for start in in_every_state() {
            assert_eq!(start.check_invariants(), Ok(()), "{start:?}");
            for (n, transition) in transitions.iter().enumerate() {
                let mut d = start.clone();
                transition(&mut d);
                assert_eq!(
                    d.check_invariants(),
                    Ok(()),
                    "transition {n} from {start:?}"
                );
            }
        }
    }

    #[test]
    fn unlinked_blanks_phone_name_and_jid() {
        let mut d = created();
        d.paired(identity());
        d.unlinked(StateReason::LoggedOut);
        assert_eq!(
            (d.state, d.state_reason, d.has_credentials),
            (DeviceState::Disconnected, StateReason::LoggedOut, false)
        );
        assert_eq!((d.phone_number, d.display_name, d.jid), (None, None, None));
    }

    #[test]
    fn begin_pairing_starts_without_credentials_or_identity() {
        let mut d = created();
        d.begin_pairing(StateReason::QrLoginRequested);
        assert_eq!(
            (d.state, d.has_credentials, d.jid),
            (DeviceState::Pairing, false, None)
        );
    }

    #[test]
    fn paired_takes_the_identity_and_connects() {
        let mut d = created();
        d.begin_pairing(StateReason::QrLoginRequested);
        d.paired(identity());
        assert_eq!(
            (d.state, d.state_reason, d.has_credentials),
            (DeviceState::Connecting, StateReason::Paired, true)
        );
        assert_eq!(d.phone_number.as_deref(), Some("15551234567"));
    }

    #[test]
    fn connecting_keeps_the_identity_and_shows_the_next_retry() {
        let mut d = created();
        d.paired(identity());
        d.connecting(StateReason::ConnectionLost, Some(at(7)));
        assert_eq!(d.next_retry_at, Some(at(7)));
        assert_eq!(d.jid, identity().jid);
    }

    #[test]
    fn logged_in_clears_retry_and_ban_and_records_the_time() {
        let mut d = created();
        d.paired(identity());
        d.offline(StateReason::TemporarilyBanned, Some(at(50)));
        d.logged_in(at(60), LinkedIdentity::default());
        assert_eq!(
            (d.state, d.next_retry_at, d.ban_expires_at),
            (DeviceState::LoggedIn, None, None)
        );
        assert_eq!(d.last_connected_at, Some(at(60)));
        assert_eq!(d.display_name.as_deref(), Some("Front desk"));
    }

    #[test]
    fn temporary_ban_goes_offline_until_expiry() {
        let mut d = created();
        d.paired(identity());
        d.offline(StateReason::TemporarilyBanned, Some(at(99)));
        assert_eq!(
            (d.state, d.ban_expires_at),
            (DeviceState::Offline, Some(at(99)))
        );
    }

    #[test]
    fn other_offline_reasons_carry_no_ban_expiry() {
        let mut d = created();
        d.paired(identity());
        d.offline(StateReason::Replaced, Some(at(99)));
        assert_eq!(d.ban_expires_at, None);
        assert!(d.has_credentials);
    }

    #[test]
    fn a_device_without_credentials_keeps_no_display_name() {
        let mut d = created();
        d.renamed_by_account("Name".into());
        assert_eq!(d.display_name, None);
    }

    #[test]
    fn a_login_moves_through_its_phases() {
        let mut d = created();
        assert_eq!(d.login_phase, None);
        d.begin_pairing(StateReason::QrLoginRequested);
        assert_eq!(d.login_phase, Some(LoginPhase::Waiting));
        d.paired(identity());
        assert_eq!(d.login_phase, Some(LoginPhase::Linking));
        d.logged_in(at(1), LinkedIdentity::default());
        assert_eq!(d.login_phase, Some(LoginPhase::Linked));
        d.connecting(StateReason::ConnectionLost, None);
        assert_eq!(d.login_phase, None);

        let mut d = created();
        d.begin_pairing(StateReason::CodeLoginRequested);
        d.unlinked(StateReason::PairingFailed);
        assert_eq!(d.login_phase, Some(LoginPhase::Failed));
        d.begin_pairing(StateReason::QrLoginRequested);
        d.unlinked(StateReason::LoginCancelled);
        assert_eq!(d.login_phase, Some(LoginPhase::Cancelled));
    }

    #[test]
    fn broken_invariants_are_named() {
        let mut d = created();
        d.login_phase = Some(LoginPhase::Linked);
        assert!(d.check_invariants().is_err());
        let mut d = created();
        d.has_credentials = true;
        assert!(d.check_invariants().is_err());
        let mut d = created();
        d.next_retry_at = Some(at(1));
        assert!(d.check_invariants().is_err());
        let mut d = created();
        d.jid = Some("x".into());
        assert!(d.check_invariants().is_err());
    }
}
