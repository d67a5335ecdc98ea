//! The Tauri-free core of WA Device Admin: the device service that the desktop
//! shell, the REST API and the tests all drive.

/// The product name shown in the window title and the header.
pub const PRODUCT_NAME: &str = "WA Device Admin";
