//! Integration tests of the device service: real SQLite files in temporary
//! folders and the real Secret Service keyring.
//!
//! Run inside a D-Bus session with an unlocked gnome-keyring (see the crate
//! README), e.g.
//! `dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; cargo test -p wa-device-core'`.

#![allow(clippy::unwrap_used)]

mod app_database;
mod at_latency;
mod crash;
mod faults;
mod keyring_store;
mod links;
mod locked_keyring;
mod service_offline;
mod session_store;
mod sessions;
mod support;
