//! The Tauri shell of WA Device Admin: the only crate that imports `tauri`.
//! It turns Tauri commands into calls on the core and core events into UI
//! events; everything else lives in `wa-device-core`.

mod api_setting;
pub mod bindings;
mod cli;
mod command_names;
mod commands;
mod data_dir;
mod events;
pub mod logging;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tauri::Manager;
use wa_device_core::{DeviceService, KeyringSecretStore, ServiceConfig};

pub use cli::Cli;

/// The app's identifier (`identifier` in `tauri.conf.json`). It names the
/// data folder (`<OS data folder>/<identifier>`, Tauri's `app_data_dir`) and
/// the keyring service every secret of the app is stored under.
pub const APP_IDENTIFIER: &str = "app.wadeviceadmin.desktop";

/// Starts the desktop app and blocks until its window closes; or, for
/// `serve`, runs the REST API headless (no window, no Tauri event loop).
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(cli::Command::Serve(args)) = &cli.command {
        return serve::run(&cli, args);
    }
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            let data_dir = match cli.data_dir.clone() {
                Some(dir) => dir,
                None => app.path().app_data_dir()?,
            };
            data_dir::prepare(&data_dir)?;
            // Without a log file the app still works; the admin is told why.
            if let Err(why) = logging::for_window(&data_dir) {
                eprintln!("wa-device-admin: no log file: {why}");
            }
            let config = service_config(&cli, data_dir.clone());
            // Opening finishes interrupted wipes and marks devices with
            // credentials `connecting`; their connections are made by tasks
            // that run on after this returns, so the window shows at once and
            // the cards follow the restore through events.
            let service = tauri::async_runtime::block_on(DeviceService::open(config))?;
            events::forward(app.handle().clone(), &service);
            if let Some(theme) = cli.theme
                && let Some(window) = app.get_webview_window("main")
            {
                window.set_theme(Some(theme.into()))?;
            }
            let api = Arc::new(api_setting::ApiSetting::new(
                &data_dir,
                Arc::new(KeyringSecretStore::new(APP_IDENTIFIER)),
                service.clone(),
            ));
            tauri::async_runtime::spawn({
                let api = Arc::clone(&api);
                async move { api.start_if_enabled().await }
            });
            app.manage(commands::ShellState {
                data_dir,
                service,
                api,
            });
            Ok(())
        })
        .invoke_handler(commands::handler())
        .run(tauri::generate_context!());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wa-device-admin: {error}");
            ExitCode::FAILURE
        }
    }
}

fn service_config(cli: &Cli, data_dir: PathBuf) -> ServiceConfig {
    #[allow(unused_mut)] // only the simulator build changes it
    let mut config =
        ServiceConfig::new(data_dir, Arc::new(KeyringSecretStore::new(APP_IDENTIFIER)));
    #[cfg(feature = "simulator")]
    if let Some(url) = &cli.simulator_url {
        config.server = wa_device_core::ServerEndpoint::WebSocketUrl(url.clone());
    }
    #[cfg(feature = "simulator")]
    {
        config.client_time_factor = cli.client_time_factor.max(1);
    }
    #[cfg(not(feature = "simulator"))]
    let _ = cli;
    config
}

#[cfg(test)]
mod app_identifier_tests {
    /// Tauri names the window's data folder after the configured identifier;
    /// `serve` and the keyring use the constant: both must be one name.
    #[test]
    fn the_constant_is_tauris_identifier() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tauri.conf.json");
        let text = std::fs::read_to_string(path).expect("read tauri.conf.json");
        let config: serde_json::Value =
            serde_json::from_str(&text).expect("tauri.conf.json parses");
        assert_eq!(
            config["identifier"],
            serde_json::json!(super::APP_IDENTIFIER)
        );
    }
}

/// The feature set a user gets (`cargo build`, `make package`) must never
/// reach whatsapp-rust's `danger-skip-cert-chain-verify`: that would accept
/// any server as WhatsApp. Cargo unifies features across a build, so this asks
/// cargo itself what the app's normal dependency graph enables.
#[cfg(test)]
mod shipped_features_tests {
    use std::process::Command;

    const DANGER: &str = "wacore-noise feature \"danger-skip-cert-chain-verify\"";

    fn wacore_noise_features(extra: &[&str]) -> String {
        let output = Command::new(env!("CARGO"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["tree", "--offline", "--locked", "-p", "wa-device-admin"])
            .args([
                "-e",
                "features,no-dev",
                "-i",
                "wacore-noise",
                "--prefix",
                "none",
            ])
            .args(extra)
            .output()
            .expect("run cargo tree");
        assert!(
            output.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("cargo tree prints UTF-8")
    }

    #[test]
    fn default_build_verifies_whatsapps_certificates() {
        let tree = wacore_noise_features(&[]);
        assert!(
            tree.contains("wacore-noise"),
            "wacore-noise is in the graph:\n{tree}"
        );
        assert!(
            !tree.contains(DANGER),
            "the default build skips certificate checks:\n{tree}"
        );
    }

    #[test]
    fn only_the_simulator_feature_skips_them() {
        let tree = wacore_noise_features(&["--features", "simulator"]);
        assert!(
            tree.contains(DANGER),
            "the simulator feature no longer reaches it:\n{tree}"
        );
    }
}
