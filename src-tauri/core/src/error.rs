//! The one error type of the service, shared by the GUI commands and the REST API.
//!
//! Every error carries a stable machine-readable [`ErrorCode`] and a message for a
//! human. Messages are written by this crate from non-secret facts only (ids,
//! states, counts, library error texts that carry no key material); no key, QR
//! payload or pairing code is ever formatted into one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Stable error codes. The serialized names are part of the public contract of
/// the GUI and the REST API: never rename one, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No device with that id.
    NotFound,
    /// A device id outside 1 to 64 characters of `[A-Za-z0-9._-]`.
    InvalidId,
    /// A phone number that is not 7 to 15 digits without a leading 0.
    InvalidPhone,
    /// A label that is too long or contains control characters.
    InvalidLabel,
    /// A device with that id exists already.
    AlreadyExists,
    /// The device is in a state where the operation cannot run now (for
    /// example a login while a login is pending).
    Busy,
    /// The operation needs credentials the device does not have.
    NoCredentials,
    /// The OS keyring (Secret Service) cannot be reached or is locked.
    KeyringUnavailable,
    /// WhatsApp (or the connection to it) failed or refused the operation.
    WhatsappError,
    /// Anything else: storage failures, broken invariants.
    Internal,
    /// A setting of the app (such as the REST API's address or password)
    /// that cannot be used as given.
    InvalidSetting,
    /// A pending login was ended by another admin action (cancel, logout,
    /// delete) before it produced its code.
    LoginCancelled,
    /// The device's local session data is damaged; it keeps its keys, and
    /// can still be logged out.
    SessionDamaged,
}

named_variants!(ErrorCode {
    NotFound => "not_found",
    InvalidId => "invalid_id",
    InvalidPhone => "invalid_phone",
    InvalidLabel => "invalid_label",
    AlreadyExists => "already_exists",
    Busy => "busy",
    NoCredentials => "no_credentials",
    KeyringUnavailable => "keyring_unavailable",
    WhatsappError => "whatsapp_error",
    Internal => "internal",
    InvalidSetting => "invalid_setting",
    LoginCancelled => "login_cancelled",
    SessionDamaged => "session_damaged",
});

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the service: serialized as `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, ts_rs::TS)]
#[error("{code}: {message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

/// Result of every fallible service operation.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServiceError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(device_id: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("no device with id \"{device_id}\""),
        )
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Busy, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn whatsapp(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::WhatsappError, message)
    }

    pub fn keyring_unavailable(detail: impl fmt::Display) -> Self {
        Self::new(
            ErrorCode::KeyringUnavailable,
            format!("the OS keyring (Secret Service) is unavailable: {detail}"),
        )
    }
}

impl From<rusqlite::Error> for ServiceError {
    fn from(err: rusqlite::Error) -> Self {
        // SQLite errors describe statements and constraints, never bound
        // values (and no database holds a secret: see `session::store`).
        ServiceError::internal(format!("database error: {err}"))
    }
}

impl From<std::io::Error> for ServiceError {
    fn from(err: std::io::Error) -> Self {
        ServiceError::internal(format!("file system error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_stable_name() {
        let mut names = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).expect("code serializes");
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
            let back: ErrorCode = serde_json::from_value(json).expect("code deserializes");
            assert_eq!(back, code);
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
            assert!(names.insert(code.as_str()), "{code:?} named twice");

            let err = ServiceError::new(code, "m");
            let json = serde_json::to_value(&err).expect("error serializes");
            assert_eq!(
                json,
                serde_json::json!({"code": code.as_str(), "message": "m"})
            );
            let back: ServiceError = serde_json::from_value(json).expect("error deserializes");
            assert_eq!(back, err);
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    /// The names are a contract of the GUI and the REST API: a renamed code
    /// breaks their clients.
    #[test]
    fn the_codes_keep_their_published_names() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_found",
                "invalid_id",
                "invalid_phone",
                "invalid_label",
                "already_exists",
                "busy",
                "no_credentials",
                "keyring_unavailable",
                "whatsapp_error",
                "internal",
                "invalid_setting",
                "login_cancelled",
                "session_damaged",
            ]
        );
    }

    #[test]
    fn error_serializes_as_code_and_message_only() {
        let err = ServiceError::not_found("phone-1");
        let json = serde_json::to_value(&err).expect("error serializes");
        assert_eq!(
            json,
            serde_json::json!({"code": "not_found", "message": "no device with id \"phone-1\""})
        );
        let back: ServiceError = serde_json::from_value(json).expect("error deserializes");
        assert_eq!(back, err);
    }
}
