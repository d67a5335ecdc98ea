// No console window on Windows release builds; the app is a GUI first.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    wa_device_admin::run()
}
