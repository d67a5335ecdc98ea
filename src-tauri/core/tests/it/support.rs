//! Helpers shared by the integration tests.

use std::sync::Arc;
use wa_device_core::{DeviceService, KeyringSecretStore, SecretStore, ServiceConfig};

/// A keyring store under a service name of its own, so that tests running
/// in parallel (and earlier runs) never see each other's entries.
pub fn test_keyring() -> KeyringSecretStore {
    KeyringSecretStore::new(format!("wa-device-admin-test-{:016x}", rand_u64()))
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

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
