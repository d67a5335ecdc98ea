/// Every command of `src-tauri/src/commands.rs`.
const COMMANDS: &[&str] = &[
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
];

fn main() {
    // Capabilities live beside the shell's sources rather than at the repository root.
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/*.json")
        // Listing the commands makes each one need an explicit `allow-*` permission
        // in a capability: a command nobody granted cannot be called from the UI.
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes).expect("tauri-build failed: see the message above");
}
