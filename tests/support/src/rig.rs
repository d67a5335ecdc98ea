//! The rig: a device service on a temporary data folder, with a keyring
//! namespace of its own, connected to the in-process WhatsApp simulator. Its
//! settings compress the client's clock and shorten the service's waits and
//! retries, so that the flows take seconds.

use crate::keyring::test_keyring;
use crate::qr::qr_payload;
use std::sync::Arc;
use std::time::Duration;
use wa_device_core::{
    Actor, Device, DeviceService, DeviceState, HistoryAction, HistoryEntry, NewDevice, RetryPolicy,
    SecretStore, ServerEndpoint, ServiceConfig,
};
use wa_sim::{Jid, SimConfig, Simulator};

/// The number of the simulated primary phone that links the rig's devices.
pub const PHONE: &str = "15551234567";
/// Upper bound of any wait; the flows finish far sooner.
pub const WAIT: Duration = Duration::from_secs(30);
/// Client clock compression (the fixed 10 s wait after a pairing, QR refs).
const TIME_FACTOR: u32 = 10;

/// A running service against the simulator, with the data folder and the
/// keyring it uses.
pub struct Rig {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub secrets: Arc<dyn SecretStore>,
    pub service: DeviceService,
}

/// The service's settings for the simulator `sim`, the data folder `data`
/// and the keyring `secrets`.
pub fn config(
    sim: &Simulator,
    data: &std::path::Path,
    secrets: &Arc<dyn SecretStore>,
) -> ServiceConfig {
    let mut config = ServiceConfig::new(data, Arc::clone(secrets));
    config.server = ServerEndpoint::Transport(Arc::new(sim.transport_factory()));
    config.client_time_factor = TIME_FACTOR;
    config.unlink_timeout = Duration::from_secs(3);
    config.retry = RETRY;
    config.revocation_retry = REVOCATION_RETRY;
    config.webhook_delivery = wa_device_core::webhooks::DeliveryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    config
}

/// The retries of pending revocations in tests.
pub const REVOCATION_RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(300),
    max: Duration::from_secs(1),
    jitter: 0.2,
    stable_after: Duration::ZERO,
};

/// The service's retry backoff in tests: quick, with the default jitter.
pub const RETRY: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(200),
    max: Duration::from_secs(2),
    jitter: 0.2,
    stable_after: Duration::from_secs(30),
};

impl Rig {
    pub async fn new() -> Rig {
        Rig::with_sim(SimConfig::default()).await
    }

    pub async fn with_sim(sim_config: SimConfig) -> Rig {
        let sim = Simulator::new(sim_config);
        let dir = tempfile::tempdir().unwrap();
        let secrets: Arc<dyn SecretStore> = Arc::new(test_keyring());
        let service = DeviceService::open(config(&sim, &dir.path().join("data"), &secrets))
            .await
            .unwrap();
        Rig {
            sim,
            dir,
            secrets,
            service,
        }
    }

    pub fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Shuts the service down, as the app does at exit.
    pub async fn stop(self) -> StoppedRig {
        self.service.shutdown().await;
        StoppedRig {
            sim: self.sim,
            dir: self.dir,
            secrets: self.secrets,
        }
    }

    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Device) -> bool) -> Device {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let device = self.service.get(id).unwrap();
            if done(&device) {
                return device;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never became {what}: {device:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the device's latest history entry is `action`: an
    /// operation or reaction records its entry once all its steps are done
    /// (a wipe changes the state at its step 3 and deletes files after).
    pub async fn wait_for_history(&self, id: &str, action: HistoryAction) -> HistoryEntry {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let last = self.service.history(id).unwrap().pop();
            if let Some(entry) = last.filter(|e| e.action == action) {
                return entry;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never recorded {action:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_for_state(&self, id: &str, state: DeviceState) -> Device {
        self.wait_for(id, state.as_str(), |d| d.state == state)
            .await
    }

    /// A device linked by QR code and logged in.
    pub async fn linked(&self, id: &str) -> (Device, Jid) {
        self.service
            .create(
                NewDevice {
                    id: Some(id.into()),
                    label: id.into(),
                },
                Actor::Desktop,
            )
            .await
            .unwrap();
        let qr = self.service.login_qr(id, Actor::Desktop).await.unwrap();
        let jid = self
            .sim
            .phone(PHONE)
            .scan(&qr_payload(&qr.svg))
            .await
            .unwrap();
        let device = self.wait_for_state(id, DeviceState::LoggedIn).await;
        (device, jid)
    }
}

/// What outlives the service across a restart: the simulator, the data
/// folder and the keyring.
pub struct StoppedRig {
    pub sim: Simulator,
    pub dir: tempfile::TempDir,
    pub secrets: Arc<dyn SecretStore>,
}

impl StoppedRig {
    /// Waits until no file of the data folder is open in this process any
    /// more: the stopped service's last tasks (a session's watcher, a
    /// client winding down) may hold it, and with it the app database's
    /// connection, a little longer. Tests that damage files wait for this,
    /// or the old connection could write the damage over.
    pub async fn wait_until_files_closed(&self) {
        let data = self.dir.path().join("data");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let open: Vec<std::path::PathBuf> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(&data))
                .collect();
            if open.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "files still open after the service stopped: {open:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens a service on the same data folder, as the app's next start.
    pub async fn start(self) -> Rig {
        let keyring = Arc::clone(&self.secrets);
        self.start_with(keyring).await
    }

    /// [`StoppedRig::start`] with the service reaching the keyring through
    /// `keyring`; the rig's `secrets` stay the keyring itself.
    pub async fn start_with(self, keyring: Arc<dyn SecretStore>) -> Rig {
        let service =
            DeviceService::open(config(&self.sim, &self.dir.path().join("data"), &keyring))
                .await
                .unwrap();
        Rig {
            sim: self.sim,
            dir: self.dir,
            secrets: self.secrets,
            service,
        }
    }
}
