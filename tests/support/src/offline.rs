//! A service that needs no server.

use crate::keyring::test_keyring;
use std::sync::Arc;
use wa_device_core::{DeviceService, SecretStore, ServiceConfig};

/// A service on a fresh data folder with the real keyring; no start-up
/// restore, no server needed.
pub async fn offline_service() -> (tempfile::TempDir, Arc<dyn SecretStore>, DeviceService) {
    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(test_keyring());
    let mut config = ServiceConfig::new(dir.path().join("data"), Arc::clone(&secrets));
    config.restore_on_open = false;
    let service = DeviceService::open(config).await.unwrap();
    (dir, secrets, service)
}
