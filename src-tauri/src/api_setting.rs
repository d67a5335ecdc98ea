//! The window's "Serve the REST API" setting. Off by default; when on, the
//! open app serves the same API as `wa-device-admin serve`, on the same device
//! service, so what a script does shows up live in the window.
//!
//! The switch and the address live in `api-settings.json` in the data folder
//! (nothing secret); the `user:password` pair lives only in the OS keyring,
//! in the entry `wa-device-api` and `serve` use too. The window only listens
//! on loopback: exposing the API to the network is a deliberate
//! `serve --allow-remote`.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use wa_device_api::{ApiConfig, ApiServer, Credential, KeyringCredentialStore, RunningApi};
use wa_device_core::{DeviceService, ErrorCode, SecretStore, ServiceError};

/// What is kept in `api-settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSettings {
    enabled: bool,
    listen: String,
}

impl Default for StoredSettings {
    fn default() -> Self {
        StoredSettings {
            enabled: false,
            listen: wa_device_api::DEFAULT_LISTEN.to_owned(),
        }
    }
}

/// The setting as the window shows it. Never carries the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ts_rs::TS)]
pub struct ApiStatus {
    pub enabled: bool,
    pub listen: String,
    /// The user of the password in the keyring, if one is stored.
    pub user: Option<String>,
    /// Where the API answers now (`http://127.0.0.1:3000`), if it runs.
    pub serving_at: Option<String>,
    /// Why it does not run although enabled (port taken, keyring locked).
    pub problem: Option<String>,
}

/// A change from the window. `password: None` keeps the stored one.
#[derive(Debug, Clone, Deserialize, ts_rs::TS)]
pub struct ApiSettingsUpdate {
    pub enabled: bool,
    pub listen: String,
    pub user: String,
    #[ts(optional)]
    pub password: Option<String>,
}

/// The setting and the server it controls.
pub struct ApiSetting {
    file: PathBuf,
    credentials: KeyringCredentialStore,
    service: DeviceService,
    running: tokio::sync::Mutex<Option<RunningApi>>,
    problem: Mutex<Option<String>>,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::InvalidSetting, message)
}

impl ApiSetting {
    pub fn new(
        data_dir: &Path,
        secrets: Arc<dyn SecretStore>,
        service: DeviceService,
    ) -> ApiSetting {
        ApiSetting {
            file: data_dir.join("api-settings.json"),
            credentials: KeyringCredentialStore::new(
                secrets,
                service.keyring_names().api_password(),
            ),
            service,
            running: tokio::sync::Mutex::new(None),
            problem: Mutex::new(None),
        }
    }

    /// At start-up: serves the API if the admin turned it on. A failure is
    /// kept for [`ApiSetting::status`]; the window opens either way.
    pub async fn start_if_enabled(&self) {
        let settings = match self.load() {
            Ok(settings) => settings,
            Err(err) => return self.set_problem(Some(err.message)),
        };
        if !settings.enabled {
            return;
        }
        let mut running = self.running.lock().await;
        let result = async {
            let addr = parse_listen(&settings.listen)?;
            let credential = self
                .credentials
                .load()?
                .ok_or_else(|| invalid("set a password to serve the API"))?;
            self.start(addr, credential).await
        }
        .await;
        match result {
            Ok(api) => {
                *running = Some(api);
                self.set_problem(None);
            }
            Err(err) => self.set_problem(Some(err.message)),
        }
    }

    pub async fn status(&self) -> ApiStatus {
        let running = self.running.lock().await;
        let settings = self.load().unwrap_or_default();
        let (user, keyring_problem) = match self.credentials.load() {
            Ok(stored) => (stored.map(|c| c.user().to_owned()), None),
            Err(err) => (None, Some(err.message)),
        };
        let problem = self
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .or(if settings.enabled {
                keyring_problem
            } else {
                None
            });
        ApiStatus {
            enabled: settings.enabled,
            listen: settings.listen,
            user,
            serving_at: running
                .as_ref()
                .map(|api| format!("http://{}", api.local_addr())),
            problem,
        }
    }

    /// Applies a change: stores the password (if given), then stops the
    /// server and starts it again if enabled. When it cannot start, the
    /// setting stays off and the error says why.
    pub async fn update(&self, update: ApiSettingsUpdate) -> Result<ApiStatus, ServiceError> {
        let addr = parse_listen(&update.listen)?;
        let user = update.user.trim();
        let new_credential = match update.password.as_deref() {
            Some(password) if !password.is_empty() => Some(
                Credential::new(user, password)
                    .map_err(|_| invalid("the user must not be empty or contain ':'"))?,
            ),
            _ => None,
        };
        if let Some(credential) = &new_credential {
            self.credentials.save(credential)?;
        }
        let credential = match new_credential {
            Some(credential) => Some(credential),
            None => self.credentials.load()?,
        };
        let credential = match credential {
            Some(c) if c.user() == user => Some(c),
            Some(_) if update.enabled => {
                return Err(invalid("type the password again to change the user name"));
            }
            None if update.enabled => return Err(invalid("set a password to serve the API")),
            _ => None,
        };

        let mut running = self.running.lock().await;
        if let Some(api) = running.take() {
            api.shutdown().await;
        }
        let mut settings = StoredSettings {
            enabled: false,
            listen: addr.to_string(),
        };
        if let Some(credential) = credential.filter(|_| update.enabled) {
            let api = self.start(addr, credential).await?;
            *running = Some(api);
            settings.enabled = true;
        }
        self.set_problem(None);
        self.save(&settings)?;
        drop(running);
        Ok(self.status().await)
    }

    async fn start(
        &self,
        addr: SocketAddr,
        credential: Credential,
    ) -> Result<RunningApi, ServiceError> {
        let mut config = ApiConfig::new(vec![credential]);
        config.listen = addr;
        ApiServer::start(self.service.clone(), config)
            .await
            .map_err(|err| invalid(err.to_string()))
    }

    fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = problem;
    }

    fn load(&self) -> Result<StoredSettings, ServiceError> {
        match fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
                invalid(format!(
                    "{} is not valid ({err}); save the REST API setting again",
                    self.file.display()
                ))
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(StoredSettings::default()),
            Err(err) => Err(err.into()),
        }
    }

    /// Writes through a temporary file and a rename, so a crash never leaves
    /// half a file.
    fn save(&self, settings: &StoredSettings) -> Result<(), ServiceError> {
        let json = serde_json::to_vec_pretty(settings)
            .map_err(|err| ServiceError::internal(format!("cannot encode the setting: {err}")))?;
        let tmp = self.file.with_extension("json.tmp");
        let mut file = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, &self.file)?;
        Ok(())
    }
}

/// A loopback `address:port`.
fn parse_listen(listen: &str) -> Result<SocketAddr, ServiceError> {
    let addr: SocketAddr = listen.trim().parse().map_err(|_| {
        invalid(format!(
            "\"{listen}\" is not an address:port such as 127.0.0.1:3000"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(invalid(
            "the window serves the API on this computer only (127.0.0.1 or ::1); use `wa-device-admin serve --allow-remote` to expose it",
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert_eq!(parse_listen(" 127.0.0.1:3000 ").map(|a| a.port()), Ok(3000));
        assert!(parse_listen("[::1]:8080").is_ok());
        for bad in [
            "0.0.0.0:3000",
            "192.168.1.2:3000",
            "localhost",
            "127.0.0.1",
            "",
        ] {
            let err = parse_listen(bad).expect_err(bad);
            assert_eq!(err.code, ErrorCode::InvalidSetting, "{bad}");
        }
    }
}
