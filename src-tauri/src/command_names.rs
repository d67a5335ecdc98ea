// Included by `build.rs` as well as compiled into the shell, so it holds
// items only (no inner attributes or doc comments).

/// Every Tauri command of `commands.rs`, by name. `build.rs` makes each one
/// need an `allow-*` permission; the TypeScript bindings list them for
/// `backend.ts`; tests in `commands.rs` check this list against the commands,
/// their handler and the main window's capability.
pub const COMMANDS: &[&str] = &[
    "app_info",
    "list_devices",
    "get_device",
    "create_device",
    "rename_device",
    "login_qr",
    "login_code",
    "cancel_login",
    "reconnect_device",
    "logout_device",
    "delete_device",
    "device_history",
    "export_history_csv",
    "api_status",
    "update_api_settings",
    "list_revocations",
    "retry_revocation",
    "forget_revocation",
    "device_webhook",
    "set_device_webhook",
];
