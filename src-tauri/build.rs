// `COMMANDS`: every command of `src-tauri/src/commands.rs`.
include!("src/command_names.rs");

fn main() {
    // Capabilities live beside the shell's sources rather than at the repository root.
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    println!("cargo:rerun-if-changed=src-tauri/src/command_names.rs");
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/*.json")
        // Listing the commands makes each one need an explicit `allow-*` permission
        // in a capability: a command nobody granted cannot be called from the UI.
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attributes).expect("tauri-build failed: see the message above");
}
