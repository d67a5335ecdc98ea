//! Fixtures shared by the integration tests of `wa-device-core` and
//! `wa-device-api` and by the core's benchmark: the simulated phone's reading
//! of a rendered QR code, a throw-away keyring namespace per test, a service
//! with no server, and the rig of a service against the in-process WhatsApp
//! simulator on a temporary data folder.
//!
//! Everything here is real (SQLite files, the Secret Service, the
//! whatsapp-rust client): the suites run inside `tests/desktop-session.sh`.

// Fixtures fail the test that uses them by panicking.
#![allow(clippy::unwrap_used)]

pub mod keyring;
pub mod offline;
pub mod qr;
#[cfg(feature = "simulator")]
pub mod rig;
