//! Tauri commands: thin adapters from the UI's calls to the core.

use std::path::PathBuf;

use serde::Serialize;
use wa_device_core::{Device, DeviceService, PRODUCT_NAME, ServiceError};

/// State the shell keeps for the lifetime of the window.
pub struct ShellState {
    pub data_dir: PathBuf,
    pub service: DeviceService,
}

/// What the shell reports about itself.
#[derive(Debug, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub product_name: &'static str,
    pub version: &'static str,
    pub data_dir: String,
}

#[tauri::command]
pub fn app_info(state: tauri::State<'_, ShellState>) -> AppInfo {
    AppInfo {
        product_name: PRODUCT_NAME,
        version: env!("CARGO_PKG_VERSION"),
        data_dir: state.data_dir.display().to_string(),
    }
}

/// Every device, in the order the registry keeps them.
#[tauri::command]
pub fn list_devices(state: tauri::State<'_, ShellState>) -> Result<Vec<Device>, ServiceError> {
    state.service.list()
}
