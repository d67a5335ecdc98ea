//! Devices, their states, the audit history and the events the shell forwards;
//! plus validation of every argument an admin can type.

use crate::error::{ErrorCode, Result, ServiceError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest accepted device id.
pub const MAX_DEVICE_ID_LEN: usize = 64;
/// Longest accepted label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

/// A validated device id: 1 to 64 characters of `[A-Za-z0-9._-]`.
///
/// Invariant: the id is never `.` or `..` and contains no path separator, so it
/// can name per-device files; it is still never used as a path by itself (see
/// [`DeviceId::file_stem`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(input: &str) -> Result<DeviceId> {
        let reject = |why: &str| {
            Err(ServiceError::new(
                ErrorCode::InvalidId,
                format!(
                    "invalid device id: {why}; use 1 to {MAX_DEVICE_ID_LEN} characters of A-Z, a-z, 0-9, '.', '_' and '-'"
                ),
            ))
        };
        if input.is_empty() {
            return reject("it is empty");
        }
        if input.len() > MAX_DEVICE_ID_LEN {
            return reject("it is too long");
        }
        if !input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return reject("it contains a character that is not allowed");
        }
        if input == "." || input == ".." {
            return reject("it names a directory");
        }
        Ok(DeviceId(input.to_owned()))
    }

    /// A fresh random id for a device the admin did not name: `device-` and 12
    /// lowercase hex digits.
    pub fn generate() -> DeviceId {
        let n: u64 = rand::random();
        DeviceId(format!("device-{:012x}", n & 0xffff_ffff_ffff))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stem of this device's files in the data folder. Prefixed so that no
    /// id can collide with the app's own files, whatever the id is.
    pub fn file_stem(&self) -> String {
        format!("device-{}", self.0)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceId::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Normalizes a phone number typed by an admin for pairing by code: strips `+`,
/// spaces and dashes, then requires 7 to 15 digits without a leading 0 (the
/// international format WhatsApp expects, country code first).
pub fn normalize_phone_number(input: &str) -> Result<String> {
    let digits: String = input
        .chars()
        .filter(|c| !matches!(c, '+' | ' ' | '-'))
        .collect();
    let reject = |why: &str| {
        Err(ServiceError::new(
            ErrorCode::InvalidPhone,
            format!(
                "invalid phone number: {why}; give the international number, country code first, 7 to 15 digits (e.g. +49 151 2345678)"
            ),
        ))
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return reject("only digits, '+', spaces and dashes are allowed");
    }
    if digits.len() < 7 {
        return reject("too short");
    }
    if digits.len() > 15 {
        return reject("too long");
    }
    if digits.starts_with('0') {
        return reject("it must not start with 0");
    }
    Ok(digits)
}

/// Normalizes a label: surrounding whitespace trimmed, at most 100 characters,
/// no control characters. An empty label is allowed (the GUI then shows the id).
pub fn normalize_label(input: &str) -> Result<String> {
    let label = input.trim();
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(ServiceError::new(
            ErrorCode::InvalidLabel,
            format!("invalid label: longer than {MAX_LABEL_CHARS} characters"),
        ));
    }
    if label.chars().any(char::is_control) {
        return Err(ServiceError::new(
            ErrorCode::InvalidLabel,
            "invalid label: it contains control characters",
        ));
    }
    Ok(label.to_owned())
}

/// The states of a device: the GUI and the API show them as they are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No credentials: never linked, logged out, or removed from the phone.
    Disconnected,
    /// A session is open and waits for the phone (QR code or pairing code).
    Pairing,
    /// Has credentials; connecting, or waiting to retry (see `next_retry_at`).
    Connecting,
    /// Connected and authenticated.
    LoggedIn,
    /// Has credentials but will not retry by itself (replaced, banned, outdated).
    Offline,
}

/// Why a device entered its current state; shown to the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum StateReason {
    /// Created, never linked.
    Created,
    /// A QR login was requested; codes are being shown.
    QrLoginRequested,
    /// A pairing-code login was requested; the code is being shown.
    CodeLoginRequested,
    /// Every QR code of the session expired without a scan.
    QrExpired,
    /// The pairing code expired or was refused.
    PairingFailed,
    /// The admin cancelled the pending login.
    LoginCancelled,
    /// The phone accepted the link; the session is logging in.
    Paired,
    /// Connected and authenticated.
    Connected,
    /// Reconnecting at start-up.
    Restoring,
    /// The admin asked for a reconnect.
    ReconnectRequested,
    /// A temporary ban ended: the service reconnects by itself.
    BanEnded,
    /// The connection dropped or failed; retrying at `next_retry_at`.
    ConnectionLost,
    /// The admin logged the device out.
    LoggedOut,
    /// The device was removed in the phone's Linked devices (or its
    /// credentials were refused as logged out).
    RemovedFromPhone,
    /// WhatsApp locked the account or device and logged it out; the
    /// credentials were wiped.
    AccountLocked,
    /// WhatsApp logged the device out for another reason; the credentials
    /// were wiped.
    LoggedOutByWhatsapp,
    /// Another client took over this session.
    Replaced,
    /// WhatsApp banned the account temporarily (until `ban_expires_at`).
    TemporarilyBanned,
    /// WhatsApp refuses this client version.
    ClientOutdated,
    /// The session store or credentials were found missing or unusable.
    CredentialsLost,
    /// The device's session database is damaged (emptied, replaced or
    /// unreadable) while its keys are still in the keyring. Not retried; a
    /// logout still ends the link with those keys.
    SessionDamaged,
}

named_variants!(DeviceState {
    Disconnected => "disconnected",
    Pairing => "pairing",
    Connecting => "connecting",
    LoggedIn => "logged_in",
    Offline => "offline",
});

named_variants!(StateReason {
    Created => "created",
    QrLoginRequested => "qr_login_requested",
    CodeLoginRequested => "code_login_requested",
    QrExpired => "qr_expired",
    PairingFailed => "pairing_failed",
    LoginCancelled => "login_cancelled",
    Paired => "paired",
    Connected => "connected",
    Restoring => "restoring",
    ReconnectRequested => "reconnect_requested",
    BanEnded => "ban_ended",
    ConnectionLost => "connection_lost",
    LoggedOut => "logged_out",
    RemovedFromPhone => "removed_from_phone",
    AccountLocked => "account_locked",
    LoggedOutByWhatsapp => "logged_out_by_whatsapp",
    Replaced => "replaced",
    TemporarilyBanned => "temporarily_banned",
    ClientOutdated => "client_outdated",
    CredentialsLost => "credentials_lost",
    SessionDamaged => "session_damaged",
});

/// Where a login of the device stands, as the login dialogs show it: a pure
/// function of `state` and `state_reason` ([`LoginPhase::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum LoginPhase {
    /// A login session is open and waits for the phone (`pairing`).
    Waiting,
    /// The phone accepted the link; the device logs in (`connecting`,
    /// reason `paired`).
    Linking,
    /// Linked and logged in (`logged_in`).
    Linked,
    /// The login ended without a link: its QR codes ran out (`qr_expired`),
    /// or its pairing code expired or was refused (`pairing_failed`).
    Failed,
    /// The pending login was cancelled (`login_cancelled`), by this admin or
    /// another one.
    Cancelled,
}

named_variants!(LoginPhase {
    Waiting => "waiting",
    Linking => "linking",
    Linked => "linked",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl LoginPhase {
    /// The login phase a device in `state` for `reason` is in; `None` when
    /// the pair tells nothing about a login (e.g. `connecting` after a lost
    /// connection, `offline`).
    pub fn of(state: DeviceState, reason: StateReason) -> Option<LoginPhase> {
        match (state, reason) {
            (DeviceState::Pairing, _) => Some(LoginPhase::Waiting),
            (DeviceState::Connecting, StateReason::Paired) => Some(LoginPhase::Linking),
            (DeviceState::LoggedIn, _) => Some(LoginPhase::Linked),
            (DeviceState::Disconnected, StateReason::QrExpired | StateReason::PairingFailed) => {
                Some(LoginPhase::Failed)
            }
            (DeviceState::Disconnected, StateReason::LoginCancelled) => Some(LoginPhase::Cancelled),
            _ => None,
        }
    }
}

/// A device as the admin sees it: a full snapshot, also sent in events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Device {
    #[ts(type = "string")]
    pub id: DeviceId,
    pub label: String,
    /// Digits only; `None` while the device has no credentials.
    pub phone_number: Option<String>,
    /// The account's push name; `None` while unknown or without credentials.
    pub display_name: Option<String>,
    /// The companion JID (`PN:D@s.whatsapp.net`); `None` without credentials.
    pub jid: Option<String>,
    pub state: DeviceState,
    pub state_reason: StateReason,
    /// Where a login of the device stands, for the login dialogs: always
    /// `LoginPhase::of(state, state_reason)` (the transitions set both).
    pub login_phase: Option<LoginPhase>,
    /// When `connecting` after a failure: the time of the next attempt.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// When `offline` because of a temporary ban: when the ban ends.
    pub ban_expires_at: Option<DateTime<Utc>>,
    /// Whether long-term credentials exist for this device (keyring entry and
    /// session store). `false` exactly in `disconnected` and `pairing`.
    pub has_credentials: bool,
    pub created_at: DateTime<Utc>,
    pub last_connected_at: Option<DateTime<Utc>>,
    /// Which save of the device this snapshot is: every save (and every
    /// removal) in the data folder takes a higher number than all before
    /// it, so of two snapshots of one device the higher revision is the
    /// newer. The window keeps the newer of a listed and an announced
    /// snapshot by it.
    pub revision: u64,
}

/// Every device at one moment: each save with a revision up to `revision`
/// is in it, none after (see [`Device::revision`]). A device the window
/// knows at a revision up to `revision` that is not listed was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct DeviceList {
    pub revision: u64,
    /// Ordered by id.
    pub devices: Vec<Device>,
}

/// Who performed an action recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The admin at the desktop GUI.
    Desktop,
    /// A user of the REST API, by name.
    RestApi(String),
    /// WhatsApp's server (server-initiated endings).
    Whatsapp,
    /// The service itself (start-up restore, crash recovery, retries).
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Desktop => f.write_str("desktop"),
            Actor::RestApi(user) => write!(f, "api:{user}"),
            Actor::Whatsapp => f.write_str("whatsapp"),
            Actor::System => f.write_str("system"),
        }
    }
}

impl Actor {
    pub fn parse(s: &str) -> Actor {
        match s {
            "desktop" => Actor::Desktop,
            "whatsapp" => Actor::Whatsapp,
            "system" => Actor::System,
            other => Actor::RestApi(other.strip_prefix("api:").unwrap_or(other).to_owned()),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Actor::parse(&String::deserialize(d)?))
    }
}

/// What happened, in the audit history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    Create,
    Rename,
    LoginQr,
    LoginCode,
    CancelLogin,
    Paired,
    QrExpired,
    PairingFailed,
    Reconnect,
    Logout,
    Delete,
    RemovedFromPhone,
    /// WhatsApp locked the account or device and logged it out.
    AccountLocked,
    /// WhatsApp logged the device out for a reason other than the above.
    LoggedOutByWhatsapp,
    Replaced,
    TemporarilyBanned,
    ClientOutdated,
    /// A logout or delete interrupted by a crash, finished at start-up.
    RecoveredWipe,
    /// The device's session database was found damaged.
    SessionDamaged,
    /// A logout's unlink was not confirmed: the link's keys moved to a
    /// pending revocation that the service retries.
    RevocationPending,
    /// One try of a pending revocation (its outcome says how it went).
    RevocationAttempt,
    /// WhatsApp confirmed a pending revocation, or said the link was gone.
    RevocationCompleted,
    /// An admin dropped a pending revocation without unlinking.
    RevocationForgotten,
    /// The app database did not know the device; it was restored from its
    /// session file and keyring entry at start-up.
    RecoveredDevice,
    /// An admin set, changed or removed the device's webhook.
    WebhookChanged,
    /// A webhook delivery failed every try, or the full queue dropped it.
    WebhookFailed,
}

named_variants!(HistoryAction {
    Create => "create",
    Rename => "rename",
    LoginQr => "login_qr",
    LoginCode => "login_code",
    CancelLogin => "cancel_login",
    Paired => "paired",
    QrExpired => "qr_expired",
    PairingFailed => "pairing_failed",
    Reconnect => "reconnect",
    Logout => "logout",
    Delete => "delete",
    RemovedFromPhone => "removed_from_phone",
    AccountLocked => "account_locked",
    LoggedOutByWhatsapp => "logged_out_by_whatsapp",
    Replaced => "replaced",
    TemporarilyBanned => "temporarily_banned",
    ClientOutdated => "client_outdated",
    RecoveredWipe => "recovered_wipe",
    SessionDamaged => "session_damaged",
    RevocationPending => "revocation_pending",
    RevocationAttempt => "revocation_attempt",
    RevocationCompleted => "revocation_completed",
    RevocationForgotten => "revocation_forgotten",
    RecoveredDevice => "recovered_device",
    WebhookChanged => "webhook_changed",
    WebhookFailed => "webhook_failed",
});

/// The outcome of a recorded action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Failed,
    /// Ended by another admin action before it completed.
    Cancelled,
}

named_variants!(Outcome {
    Ok => "ok",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// One row of a device's audit history. Never holds a secret: `detail` is
/// written by this crate from non-secret facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub device_id: String,
    pub action: HistoryAction,
    /// `desktop`, `api:<user>`, `whatsapp` or `system`.
    #[ts(type = "string")]
    pub actor: Actor,
    pub outcome: Outcome,
    pub detail: String,
}

/// The result of a logout (and of the logout step of a delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct LogoutOutcome {
    /// Whether the device had credentials (if not, nothing was changed).
    pub had_credentials: bool,
    /// Whether WhatsApp confirmed the unlink (`remove-companion-device`).
    pub unlink_confirmed: bool,
    /// Whether the unlink goes on as a pending revocation (the link's keys
    /// kept for it, see [`PendingRevocation`]).
    pub revocation_pending: bool,
    /// For the admin: what happened, e.g. that the device may remain in the
    /// phone's Linked devices list until removed there.
    pub message: String,
}

/// A link whose logout WhatsApp did not confirm: its keys wait in the
/// keyring, and the service retries the unlink until WhatsApp confirms it
/// or says the link is gone. The device itself was reset already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct PendingRevocation {
    /// The companion JID the link was made as.
    pub jid: String,
    /// The device the link belonged to (it may be linked anew since).
    pub device_id: String,
    pub phone_number: Option<String>,
    /// When the logout that left it pending ran.
    pub since: DateTime<Utc>,
    /// Tries so far, the logout's own included.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    /// What the last try ran into, in words; never a secret.
    pub last_error: Option<String>,
}

/// A QR code to show: the SVG, the PNG and when they stop being valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct QrCode {
    #[ts(type = "string")]
    pub device_id: DeviceId,
    pub svg: String,
    /// For the REST API's PNG route; the window shows the SVG, so events
    /// do not carry it.
    #[serde(skip)]
    #[ts(skip)]
    pub png: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// A pairing code to type on the phone: `XXXX-XXXX`, and its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct PairingCode {
    #[ts(type = "string")]
    pub device_id: DeviceId,
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

/// What the shell forwards to the GUI (and the REST API to its clients).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceEvent {
    /// A device was created or changed: its full new snapshot.
    DeviceChanged { device: Device },
    /// A device was deleted; `revision` is above that of every snapshot of
    /// it (see [`Device::revision`]).
    DeviceRemoved { device_id: DeviceId, revision: u64 },
    /// A new QR code for a pending QR login.
    QrCode(QrCode),
    /// The pairing code of a pending code login.
    PairingCode(PairingCode),
    /// A pending revocation was added or tried.
    RevocationChanged { revocation: PendingRevocation },
    /// A pending revocation ended: `completed` (WhatsApp confirmed, or the
    /// link was gone already) or forgotten by an admin.
    RevocationRemoved { jid: String, completed: bool },
    /// Something the server did on its own, for the admin's attention.
    Notice {
        device_id: DeviceId,
        reason: StateReason,
        message: String,
    },
}

/// Arguments of [`crate::DeviceService::create`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDevice {
    /// The admin's id, or `None` for a generated one.
    pub id: Option<String>,
    pub label: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_accept_the_allowed_alphabet() {
        for ok in ["a", "Phone_1.backup-2", &"x".repeat(64), "..a", "a.."] {
            assert_eq!(DeviceId::parse(ok).map(|id| id.0), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn device_ids_reject_everything_else() {
        let too_long = "x".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "a b",
            "tél",
            "📱",
            "a\0b",
            too_long.as_str(),
        ] {
            let err = DeviceId::parse(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidId, "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = DeviceId::generate();
        let b = DeviceId::generate();
        assert_ne!(a, b);
        assert_eq!(DeviceId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn phone_numbers_are_normalized_to_digits() {
        assert_eq!(
            normalize_phone_number("+49 151-234 5678"),
            Ok("491512345678".to_owned())
        );
        assert_eq!(normalize_phone_number("1234567"), Ok("1234567".to_owned()));
        assert_eq!(
            normalize_phone_number("123456789012345"),
            Ok("123456789012345".to_owned())
        );
    }

    #[test]
    fn bad_phone_numbers_are_rejected() {
        for bad in [
            "",
            "+",
            "123456",
            "1234567890123456",
            "0491512345678",
            "+49 151 CALL ME",
            "49(151)2345678",
            "４９１５１２３４５６７",
        ] {
            let err = normalize_phone_number(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidPhone, "{bad:?}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(
            normalize_label("  Front desk  "),
            Ok("Front desk".to_owned())
        );
        assert_eq!(normalize_label(&"é".repeat(100)), Ok("é".repeat(100)));
        assert_eq!(
            normalize_label(&"é".repeat(101)).map_err(|e| e.code),
            Err(ErrorCode::InvalidLabel)
        );
        assert_eq!(
            normalize_label("a\nb").map_err(|e| e.code),
            Err(ErrorCode::InvalidLabel)
        );
    }

    #[test]
    fn states_and_reasons_round_trip_through_their_names() {
        fn check<T: Copy + PartialEq + std::fmt::Debug + Serialize>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            let mut names = std::collections::HashSet::new();
            for &v in all {
                let json = serde_json::to_value(v).expect("serializes");
                assert_eq!(json, serde_json::Value::String(as_str(v).to_owned()));
                assert_eq!(parse(as_str(v)), Some(v));
                assert!(names.insert(as_str(v)), "{v:?} named twice");
            }
            assert_eq!(parse("no_such_name"), None);
        }
        check(DeviceState::ALL, DeviceState::as_str, DeviceState::parse);
        check(StateReason::ALL, StateReason::as_str, StateReason::parse);
        check(
            HistoryAction::ALL,
            HistoryAction::as_str,
            HistoryAction::parse,
        );
        check(Outcome::ALL, Outcome::as_str, Outcome::parse);
        check(LoginPhase::ALL, LoginPhase::as_str, LoginPhase::parse);
        assert_eq!(DeviceState::ALL.len(), 5);
        let reason = StateReason::RemovedFromPhone;
        assert_eq!(
            serde_json::to_value(reason).expect("serializes"),
            serde_json::json!("removed_from_phone")
        );
        assert_eq!(
            StateReason::parse("qr_expired"),
            Some(StateReason::QrExpired)
        );
    }

    #[test]
    fn login_phases_follow_state_and_reason() {
        use DeviceState as S;
        use StateReason as R;
        let phase = LoginPhase::of;
        for reason in [R::QrLoginRequested, R::CodeLoginRequested] {
            assert_eq!(phase(S::Pairing, reason), Some(LoginPhase::Waiting));
        }
        assert_eq!(phase(S::Connecting, R::Paired), Some(LoginPhase::Linking));
        assert_eq!(phase(S::LoggedIn, R::Connected), Some(LoginPhase::Linked));
        assert_eq!(
            phase(S::Disconnected, R::QrExpired),
            Some(LoginPhase::Failed)
        );
        assert_eq!(
            phase(S::Disconnected, R::PairingFailed),
            Some(LoginPhase::Failed)
        );
        assert_eq!(
            phase(S::Disconnected, R::LoginCancelled),
            Some(LoginPhase::Cancelled)
        );
        // Pairs that say nothing about a login.
        for (state, reason) in [
            (S::Disconnected, R::Created),
            (S::Disconnected, R::LoggedOut),
            (S::Disconnected, R::RemovedFromPhone),
            (S::Connecting, R::ConnectionLost),
            (S::Connecting, R::Restoring),
            (S::Offline, R::Replaced),
            (S::Offline, R::SessionDamaged),
        ] {
            assert_eq!(phase(state, reason), None, "{state:?} {reason:?}");
        }
        // Every pair maps to at most one phase, and only these states to one.
        for &state in DeviceState::ALL {
            for &reason in StateReason::ALL {
                if let Some(p) = phase(state, reason) {
                    assert_ne!(state, S::Offline, "{p:?}");
                }
            }
        }
    }

    #[test]
    fn actors_serialize_as_plain_strings() {
        assert_eq!(Actor::Desktop.to_string(), "desktop");
        assert_eq!(Actor::RestApi("alice".into()).to_string(), "api:alice");
        assert_eq!(Actor::parse("api:alice"), Actor::RestApi("alice".into()));
        assert_eq!(
            serde_json::to_value(Actor::Whatsapp).expect("serializes"),
            serde_json::json!("whatsapp")
        );
    }

    #[test]
    fn events_are_tagged_by_type() {
        let id = DeviceId::parse("d1").expect("valid id");
        let event = ServiceEvent::Notice {
            device_id: id,
            reason: StateReason::Replaced,
            message: "m".into(),
        };
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"type": "notice", "device_id": "d1", "reason": "replaced", "message": "m"})
        );
    }
}
