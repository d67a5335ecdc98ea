//! Integration tests of the REST API: the real server on 127.0.0.1:0, a real
//! HTTP client, the real device service with real SQLite files, the real
//! keyring (run inside `tests/desktop-session.sh`) and the WhatsApp simulator
//! in process.
//!
//! `tests/desktop-session.sh cargo nextest run -p wa-device-api --locked`

#![allow(clippy::unwrap_used)]

mod app_routes;
mod auth;
mod chaos;
mod concurrency;
mod connections;
mod devices;
mod events;
mod limits;
mod login;
mod support;
mod webhooks;
