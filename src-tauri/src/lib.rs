//! The Tauri shell: the only crate that knows about Tauri.
