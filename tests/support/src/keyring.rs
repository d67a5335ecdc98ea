//! A throw-away keyring namespace per test.

use wa_device_core::KeyringSecretStore;

/// A keyring store under a service name of its own, so that tests running
/// in parallel (and earlier runs) never see each other's entries.
pub fn test_keyring() -> KeyringSecretStore {
    KeyringSecretStore::new(format!("wa-device-admin-test-{:016x}", rand_u64()))
}

/// A number that differs from call to call and run to run (the standard
/// library's randomly keyed hasher over the clock), for names and seeds.
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
