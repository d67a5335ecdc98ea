//! `wa-device-admin serve`: the REST API without a window. No Tauri runtime
//! runs here; the same core service and data folder as the desktop app are
//! used, so the app shows what the API did when it opens.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use wa_device_api::{ApiConfig, ApiServer, Credential, KeyringCredentialStore, parse_credentials};
use wa_device_core::files::DataLayout;
use wa_device_core::secrets::KeyringNames;
use wa_device_core::{DeviceService, KeyringSecretStore, SecretStore};

use crate::cli::{Cli, ServeArgs};
use crate::{APP_IDENTIFIER, data_dir, service_config};

/// Runs `serve` to completion and returns the process status.
pub fn run(cli: &Cli, args: &ServeArgs) -> ExitCode {
    if let Err(why) = crate::logging::for_serve(args.log_level.as_deref(), args.log_format) {
        return fail(&why);
    }
    let keyring: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::new(APP_IDENTIFIER));
    let data_dir = match cli.data_dir.clone().or_else(default_data_dir) {
        Some(dir) => dir,
        None => return fail("cannot find the app-data folder; pass --data-dir"),
    };
    if let Err(err) = data_dir::prepare(&data_dir) {
        return fail(&format!("cannot prepare {}: {err}", data_dir.display()));
    }
    // The password entry is named under the folder's keyring scope, like
    // every entry of the folder.
    let names = match KeyringNames::for_folder(&DataLayout::new(data_dir.clone())) {
        Ok(names) => names,
        Err(err) => {
            return fail(&format!(
                "cannot read the data folder's keyring scope: {err}"
            ));
        }
    };
    let store = KeyringCredentialStore::new(Arc::clone(&keyring), names.api_password());
    if args.set_password {
        return match set_password(&store, &args.user) {
            Ok(()) => {
                eprintln!(
                    "wa-device-admin: API password of user \"{}\" stored in the OS keyring",
                    args.user
                );
                ExitCode::SUCCESS
            }
            Err(message) => fail(&message),
        };
    }
    let credentials = match credentials(&args.basic_auth, &store) {
        Ok(credentials) => credentials,
        Err(message) => return fail(&message),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the async runtime: {err}")),
    };
    let mut config = ApiConfig::new(credentials);
    config.listen = args.listen;
    config.allow_remote = args.allow_remote;
    config.public_url = args.public_url.clone();
    let service_config = service_config(cli, data_dir);
    let status = runtime.block_on(async move {
        let service = match DeviceService::open(service_config).await {
            Ok(service) => service,
            Err(err) => return fail(&format!("cannot open the device service: {err}")),
        };
        let api = match ApiServer::start(service.clone(), config).await {
            Ok(api) => api,
            Err(err) => {
                service.shutdown().await;
                return fail(&err.to_string());
            }
        };
        let addr = api.local_addr();
        if !addr.ip().is_loopback() {
            eprintln!(
                "wa-device-admin: WARNING: the API listens on {addr}, reachable from the network; anyone who can reach it and knows a password can log devices out"
            );
        }
        // One line on stdout, for scripts and tests waiting for readiness.
        println!("listening on http://{addr}");
        tracing::info!(%addr, "REST API listening");
        wait_for_stop_signal().await;
        eprintln!("wa-device-admin: stopping");
        tracing::info!("stop signal received; stopping");
        let stopping = async {
            api.shutdown().await;
            service.shutdown().await;
        };
        if tokio::time::timeout(STOP_GRACE, stopping).await.is_err() {
            // What did not finish is safe to cut: SQLite files are written
            // in transactions, and an interrupted logout is finished by the
            // next start.
            eprintln!(
                "wa-device-admin: stopped before every session closed ({} s passed)",
                STOP_GRACE.as_secs()
            );
        }
        ExitCode::SUCCESS
    });
    // Blocking calls still running (a keyring call waiting on an unlock
    // prompt) do not hold the process: dropping the runtime would wait for
    // them.
    runtime.shutdown_timeout(RUNTIME_GRACE);
    status
}

/// How long a stop signal waits for the API and the sessions to close
/// before the process ends anyway: with [`RUNTIME_GRACE`], a stop signal
/// always ends the process within 5 s.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long the runtime's own shutdown may wait for blocking calls.
const RUNTIME_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

fn fail(message: &str) -> ExitCode {
    eprintln!("wa-device-admin serve: {message}");
    ExitCode::FAILURE
}

/// Tauri's app-data folder for our identifier (what the window uses).
fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|dir| dir.join(APP_IDENTIFIER))
}

/// The accepted pairs: those given on the command line or in
/// `APP_BASIC_AUTH`, plus the one stored in the keyring. A keyring that
/// cannot be read only matters when nothing else is configured.
pub fn credentials(
    given: &[String],
    store: &KeyringCredentialStore,
) -> Result<Vec<Credential>, String> {
    let mut credentials = parse_credentials(given).map_err(|e| e.to_string())?;
    match store.load() {
        Ok(Some(stored)) => credentials.push(stored),
        Ok(None) => {}
        Err(err) if !credentials.is_empty() => {
            eprintln!("wa-device-admin serve: ignoring the keyring's API password: {err}");
        }
        Err(err) => {
            return Err(format!(
                "no API credentials are configured and the keyring cannot be read ({err}); pass --basic-auth user:password or set APP_BASIC_AUTH"
            ));
        }
    }
    if credentials.is_empty() {
        return Err(wa_device_api::StartError::NoCredentials.to_string());
    }
    Ok(credentials)
}

/// Reads one line from stdin (echo off on a terminal) and stores it.
fn set_password(store: &KeyringCredentialStore, user: &str) -> Result<(), String> {
    let stdin = std::io::stdin();
    let on_terminal = stdin.is_terminal();
    if on_terminal {
        eprint!("API password for \"{user}\": ");
        set_terminal_echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if on_terminal {
        set_terminal_echo(true);
        eprintln!();
    }
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']);
    let credential = Credential::new(user, password).map_err(|_| {
        "the user must be non-empty without ':' and the password non-empty".to_owned()
    })?;
    store.save(&credential).map_err(|e| e.to_string())
}

/// `stty` on the controlling terminal: no dependency and no unsafe code for
/// a prompt typed once.
fn set_terminal_echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
