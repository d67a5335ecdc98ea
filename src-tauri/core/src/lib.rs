//! The Tauri-free core of WA Device Admin: the device service that the desktop
//! shell, the REST API and the tests all drive.
//!
//! Where to look:
//! - [`service`]: every operation, one file per responsibility (its module
//!   doc has the map; the four logout steps are in `service/logout.rs`);
//! - [`lifecycle`]: the named transitions, the only code that sets a
//!   device's state; `service/reactions.rs` says which WhatsApp event leads
//!   to which;
//! - [`secrets`]: every place a secret is read or written (the OS keyring,
//!   the device entry's format, the API password, the start-up prefetch);
//! - [`session`]: a device's whatsapp-rust client and its SQLite store;
//! - [`app_db`], [`files`]: the app database and the data folder;
//! - [`model`], [`error`]: the types the UI and the API share.

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
pub mod webhooks;

pub use error::{ErrorCode, Result, ServiceError};
pub use model::{
    Actor, Device, DeviceId, DeviceList, DeviceState, HistoryAction, HistoryEntry, LoginPhase,
    LogoutOutcome, NewDevice, Outcome, PairingCode, PendingRevocation, QrCode, ServiceEvent,
    StateReason,
};
pub use secrets::{KeyringSecretStore, MemorySecretStore, SecretStore};
pub use service::{
    DeviceService, LoginStep, LoginStepObserver, OnPendingLogin, RetryPolicy, RevocationTry,
    ServiceConfig, WipeStep, WipeStepObserver,
};
pub use session::ServerEndpoint;

/// The product name shown in the window title and the header.
pub const PRODUCT_NAME: &str = "WA Device Admin";
