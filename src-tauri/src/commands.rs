//! Tauri commands: thin adapters from the UI's calls to the core. Every
//! command acts as `Actor::Desktop` and rejects with the core's
//! `ServiceError` (`{code, message}`), which the UI shows in words.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tauri::Runtime;
use tauri::ipc::Invoke;

use crate::api_setting::{ApiSetting, ApiSettingsUpdate, ApiStatus};
use wa_device_core::webhooks::{SecretChange, Webhook, WebhookChange, WebhookEvent};
use wa_device_core::{
    Actor, Device, DeviceList, DeviceService, HistoryEntry, LogoutOutcome, NewDevice, PRODUCT_NAME,
    PairingCode, PendingRevocation, QrCode, RevocationTry, ServiceError,
};

/// State the shell keeps for the lifetime of the window.
pub struct ShellState {
    pub data_dir: PathBuf,
    pub service: DeviceService,
    pub api: Arc<ApiSetting>,
}

type Shell<'a> = tauri::State<'a, ShellState>;

/// What the shell reports about itself.
#[derive(Debug, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub product_name: &'static str,
    pub version: &'static str,
    pub data_dir: String,
    /// What the start-up found wrong and repaired (a damaged app database,
    /// devices restored from their files); shown as a banner.
    pub warnings: Vec<String>,
}

#[tauri::command]
pub fn app_info(state: Shell<'_>) -> AppInfo {
    AppInfo {
        product_name: PRODUCT_NAME,
        version: env!("CARGO_PKG_VERSION"),
        data_dir: state.data_dir.display().to_string(),
        warnings: state.service.startup_warnings(),
    }
}

/// Every device, ordered by id, with the revision the list is current as of.
#[tauri::command]
pub fn list_devices(state: Shell<'_>) -> Result<DeviceList, ServiceError> {
    state.service.device_list()
}

#[tauri::command]
pub fn get_device(state: Shell<'_>, id: String) -> Result<Device, ServiceError> {
    state.service.get(&id)
}

/// `id: null` lets the core generate one.
#[tauri::command]
pub async fn create_device(
    state: Shell<'_>,
    id: Option<String>,
    label: String,
) -> Result<Device, ServiceError> {
    let service = state.service.clone();
    service
        .create(NewDevice { id, label }, Actor::Desktop)
        .await
}

#[tauri::command]
pub async fn rename_device(
    state: Shell<'_>,
    id: String,
    label: String,
) -> Result<Device, ServiceError> {
    let service = state.service.clone();
    service.rename(&id, &label, Actor::Desktop).await
}

/// The first QR code; later ones arrive as `device://qr-code` events.
#[tauri::command]
pub async fn login_qr(state: Shell<'_>, id: String) -> Result<QrCode, ServiceError> {
    let service = state.service.clone();
    service.login_qr(&id, Actor::Desktop).await
}

#[tauri::command]
pub async fn login_code(
    state: Shell<'_>,
    id: String,
    phone_number: String,
) -> Result<PairingCode, ServiceError> {
    let service = state.service.clone();
    service.login_code(&id, &phone_number, Actor::Desktop).await
}

#[tauri::command]
pub async fn cancel_login(state: Shell<'_>, id: String) -> Result<Device, ServiceError> {
    let service = state.service.clone();
    service.cancel_login(&id, Actor::Desktop).await
}

#[tauri::command]
pub async fn reconnect_device(state: Shell<'_>, id: String) -> Result<Device, ServiceError> {
    let service = state.service.clone();
    service.reconnect(&id, Actor::Desktop).await
}

#[tauri::command]
pub async fn logout_device(state: Shell<'_>, id: String) -> Result<LogoutOutcome, ServiceError> {
    let service = state.service.clone();
    service.logout(&id, Actor::Desktop).await
}

#[tauri::command]
pub async fn delete_device(state: Shell<'_>, id: String) -> Result<LogoutOutcome, ServiceError> {
    let service = state.service.clone();
    service.delete(&id, Actor::Desktop).await
}

/// The device's audit history, oldest first.
#[tauri::command]
pub fn device_history(state: Shell<'_>, id: String) -> Result<Vec<HistoryEntry>, ServiceError> {
    state.service.history(&id)
}

/// The history as CSV text; the UI offers it as a download, so the shell
/// needs no file-system access.
#[tauri::command]
pub fn export_history_csv(state: Shell<'_>, id: String) -> Result<String, ServiceError> {
    state.service.history_csv(&id)
}

/// The "Serve the REST API" setting and whether the API runs.
#[tauri::command]
pub async fn api_status(state: Shell<'_>) -> Result<ApiStatus, ServiceError> {
    Ok(state.api.status().await)
}

/// Changes the setting; starts or stops the API accordingly.
#[tauri::command]
pub async fn update_api_settings(
    state: Shell<'_>,
    update: ApiSettingsUpdate,
) -> Result<ApiStatus, ServiceError> {
    state.api.update(update).await
}

/// Links whose unlink WhatsApp has not confirmed yet, the next due first.
#[tauri::command]
pub fn list_revocations(state: Shell<'_>) -> Result<Vec<PendingRevocation>, ServiceError> {
    state.service.revocations()
}

/// "Try now".
#[tauri::command]
pub async fn retry_revocation(
    state: Shell<'_>,
    jid: String,
) -> Result<RevocationTry, ServiceError> {
    let service = state.service.clone();
    service.retry_revocation(&jid, Actor::Desktop).await
}

/// "Forget without unlinking" (the UI asks for confirmation first).
#[tauri::command]
pub async fn forget_revocation(state: Shell<'_>, jid: String) -> Result<(), ServiceError> {
    let service = state.service.clone();
    service.forget_revocation(&jid, Actor::Desktop).await
}

/// The device's webhook (its URL, events, and whether deliveries are
/// signed; never the secret).
#[tauri::command]
pub fn device_webhook(state: Shell<'_>, id: String) -> Result<Webhook, ServiceError> {
    state.service.webhook(&id)
}

/// Sets the device's webhook; an empty `url` removes it. `secret`: `null`
/// keeps the secret, `""` removes it, anything else replaces it.
#[tauri::command]
pub async fn set_device_webhook(
    state: Shell<'_>,
    id: String,
    url: String,
    events: Vec<WebhookEvent>,
    secret: Option<String>,
) -> Result<Webhook, ServiceError> {
    let change = WebhookChange {
        url,
        events: Some(events),
        secret: match secret.as_deref() {
            None => SecretChange::Keep,
            Some("") => SecretChange::Remove,
            Some(secret) => SecretChange::Set(secret.to_owned()),
        },
    };
    let service = state.service.clone();
    service.set_webhook(&id, change, Actor::Desktop).await
}

/// The window's handler of every command above; each is also listed in
/// `command_names.rs` (a test checks the three agree).
pub fn handler<R: Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![
        app_info,
        list_devices,
        get_device,
        create_device,
        rename_device,
        login_qr,
        login_code,
        cancel_login,
        reconnect_device,
        logout_device,
        delete_device,
        device_history,
        export_history_csv,
        api_status,
        update_api_settings,
        list_revocations,
        retry_revocation,
        forget_revocation,
        device_webhook,
        set_device_webhook,
    ]
}

/// A command must be written as a function, registered in [`handler`],
/// listed in `COMMANDS` (which makes it need a permission) and granted in
/// the main window's capability; these tests fail when any of them disagree.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::command_names::COMMANDS;

    const SOURCE: &str = include_str!("commands.rs");
    const CAPABILITY: &str = include_str!("../capabilities/main-window.json");

    fn listed() -> BTreeSet<String> {
        let names: BTreeSet<String> = COMMANDS.iter().map(|c| c.to_string()).collect();
        assert_eq!(names.len(), COMMANDS.len(), "a command is listed twice");
        names
    }

    /// The names of the functions marked `#[tauri::command]`.
    fn written() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        let mut marked = false;
        for line in SOURCE.lines().map(str::trim) {
            if line == "#[tauri::command]" {
                marked = true;
            } else if marked && let Some(rest) = line.strip_prefix("pub ") {
                let rest = rest.strip_prefix("async ").unwrap_or(rest);
                let name = rest
                    .strip_prefix("fn ")
                    .and_then(|r| r.split(['(', '<']).next())
                    .expect("a command is a `pub fn`");
                names.insert(name.to_owned());
                marked = false;
            }
        }
        names
    }

    /// The names inside `generate_handler![...]` in [`super::handler`].
    fn registered() -> BTreeSet<String> {
        let start = SOURCE
            .find(concat!("generate_handler", "!["))
            .expect("the handler");
        let body = &SOURCE[start..];
        let body = &body[body.find('[').expect("[") + 1..body.find(']').expect("]")];
        body.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_written_command_is_listed() {
        assert_eq!(written(), listed());
    }

    #[test]
    fn every_listed_command_is_registered() {
        assert_eq!(registered(), listed());
    }

    #[test]
    fn the_main_window_may_call_every_listed_command_and_no_other() {
        let capability: serde_json::Value =
            serde_json::from_str(CAPABILITY).expect("the capability parses");
        let granted: BTreeSet<String> = capability["permissions"]
            .as_array()
            .expect("a permission list")
            .iter()
            .filter_map(|p| p.as_str())
            .filter_map(|p| p.strip_prefix("allow-"))
            .map(|p| p.replace('-', "_"))
            .collect();
        assert_eq!(granted, listed());
    }
}
