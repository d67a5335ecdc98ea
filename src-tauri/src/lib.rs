//! The Tauri shell of WA Device Admin: the only crate that imports `tauri`.
//! It turns Tauri commands into calls on the core and core events into UI
//! events; everything else lives in `wa-device-core`.

pub mod bindings;
mod cli;
mod commands;
mod data_dir;

use std::process::ExitCode;

use clap::Parser;
use tauri::Manager;

pub use cli::Cli;

/// Starts the desktop app and blocks until its window closes.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = tauri::Builder::default()
        .setup(move |app| {
            let data_dir = match cli.data_dir.clone() {
                Some(dir) => dir,
                None => app.path().app_data_dir()?,
            };
            data_dir::prepare(&data_dir)?;
            app.manage(commands::ShellState { data_dir });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![commands::app_info])
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wa-device-admin: {error}");
            ExitCode::FAILURE
        }
    }
}
