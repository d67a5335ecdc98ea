//! End-to-end tests: the real built app in a real window, driven over WebDriver
//! (tauri-driver in front of WebKitWebDriver). Run them inside a desktop
//! session: `tests/desktop-session.sh cargo nextest run --test e2e`, which
//! provides Xvfb, a D-Bus session bus and an unlocked Secret Service.

mod harness;
mod window;
