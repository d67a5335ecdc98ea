use serde::Serialize;

/// Failures inside the simulator's protocol handling. They end the one
/// connection they occur on, never the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the client closed the connection")]
    Closed,
}

/// Why a simulated phone refused or failed an action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum PhoneError {
    #[error("the QR code is malformed")]
    MalformedQr,
    #[error("no connected companion is showing this QR code")]
    UnknownQr,
    #[error("this QR code has expired")]
    ExpiredQr,
    #[error("the phone already links the maximum of {0} companion devices")]
    DeviceLimit(usize),
    #[error("no companion is waiting for a pairing code for this number")]
    NoPendingCode,
    #[error("the pairing code has expired")]
    ExpiredCode,
    #[error("the code entered on the phone does not match the companion's")]
    WrongCode,
    #[error("the companion refused the pairing: {0}")]
    CompanionRejected(String),
    #[error("the companion did not answer in time")]
    CompanionTimeout,
    #[error("the companion's connection is gone")]
    CompanionGone,
    #[error("no linked device {0} on this phone")]
    UnknownDevice(String),
}

/// A `wait_for_*` call ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {0:?} waiting for {1}")]
pub struct WaitTimeout(pub std::time::Duration, pub String);
