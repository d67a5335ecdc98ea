//! Secrets in process memory, for unit tests.

use super::SecretStore;
use crate::error::Result;
use std::collections::HashMap;
use std::sync::Mutex;

/// Secrets in process memory: for unit tests of logic that needs some store.
/// Never used by the product (it would lose credentials at exit).
#[derive(Debug, Default)]
pub struct MemorySecretStore {
    entries: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemorySecretStore {
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

impl SecretStore for MemorySecretStore {
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned())
    }

    fn set(&self, name: &str, secret: &[u8]) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), secret.to_vec());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    fn get_all(
        &self,
        prefix: &str,
        _named_by: &dyn Fn(&[u8]) -> Option<String>,
    ) -> Result<HashMap<String, Vec<u8>>> {
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(name, secret)| (name.clone(), secret.clone()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_deletes_missing_entries_without_error() {
        let store = MemorySecretStore::default();
        store
            .delete("nothing")
            .expect("delete of a missing entry succeeds");
        store.set("a", b"1").expect("set");
        assert_eq!(store.get("a").expect("get"), Some(b"1".to_vec()));
        store.delete("a").expect("delete");
        assert_eq!(store.get("a").expect("get"), None);
    }
}
