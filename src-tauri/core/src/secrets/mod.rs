//! Where long-term secrets live: the OS keyring, behind [`SecretStore`].
//! Every read and write of a secret goes through this module:
//! - `keyring`: the OS keyring on every OS ([`KeyringSecretStore`]);
//! - `deadline`: the time bound of every keyring call;
//! - `secret_service`, `batch` (Linux only): the start-up read of every
//!   entry in one pass;
//! - `names`: the names of a data folder's entries;
//! - [`device_entry`]: the format of a device's entry (its session's keys);
//! - `api_password`: the REST API's password entry;
//! - `prefetch`: the start-up read handed to each device's first attempt;
//! - `memory`: an in-memory store for unit tests.
//!
//! Invariant: secret bytes go only through this trait. If the keyring cannot
//! be reached the operation fails with `keyring_unavailable`; nothing falls
//! back to a file.

use crate::error::Result;
use std::collections::HashMap;

mod api_password;
#[cfg(target_os = "linux")]
mod batch;
mod deadline;
pub mod device_entry;
mod keyring;
mod memory;
mod names;
mod prefetch;
#[cfg(target_os = "linux")]
mod secret_service;

pub use api_password::ApiPasswordEntry;
pub use deadline::KEYRING_CALL_LIMIT;
pub use keyring::KeyringSecretStore;
pub use memory::MemorySecretStore;
pub use names::{KeyringNames, UNSCOPED_API_PASSWORD, unscoped_device_entry};
pub(crate) use prefetch::KeyringPrefetch;

/// A store of named secrets.
pub trait SecretStore: Send + Sync + 'static {
    /// The secret called `name`, or `None` if there is none.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Creates or replaces the secret called `name`.
    fn set(&self, name: &str, secret: &[u8]) -> Result<()>;
    /// Deletes the secret called `name`; deleting a missing one succeeds.
    fn delete(&self, name: &str) -> Result<()>;
    /// Every secret whose name starts with `prefix`, by name, read in one
    /// pass: the start-up restore reads all devices' entries this way
    /// instead of one lookup per device. A name with more than one entry is
    /// left out (its own `get` reports the ambiguity). A store that cannot
    /// list its entries returns none, and callers fall back to `get`.
    ///
    /// `named_by` reads the name of its entry that a secret carries, if it
    /// carries one (see `session::store::secret_entry_name`): a store that
    /// reads names dearer than secrets takes that name, and reads its own
    /// record of the name only for secrets that carry none.
    fn get_all(
        &self,
        prefix: &str,
        named_by: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Result<HashMap<String, Vec<u8>>> {
        let _ = (prefix, named_by);
        Ok(HashMap::new())
    }
}
