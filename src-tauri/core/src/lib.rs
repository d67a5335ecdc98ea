//! The Tauri-free core of WA Device Admin: the device service that the desktop
//! shell, the REST API and the tests all drive.

#[macro_use]
mod named_variants;

pub mod app_db;
pub mod error;
pub mod files;
pub mod lifecycle;
pub mod model;
pub mod secrets;
pub mod service;
pub mod session;

pub use error::{ErrorCode, Result, ServiceError};
pub use model::{
    Actor, Device, DeviceId, DeviceState, HistoryAction, HistoryEntry, LoginPhase, LogoutOutcome,
    NewDevice, Outcome, PairingCode, PendingRevocation, QrCode, ServiceEvent, StateReason,
};
pub use secrets::{KeyringSecretStore, MemorySecretStore, SecretStore};
pub use service::{
    DeviceService, LoginStep, LoginStepObserver, RetryPolicy, RevocationTry, ServiceConfig,
    WipeStep, WipeStepObserver,
};
pub use session::ServerEndpoint;

/// The product name shown in the window title and the header.
pub const PRODUCT_NAME: &str = "WA Device Admin";
