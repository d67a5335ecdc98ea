//! The names of a data folder's keyring entries.
//!
//! Every data folder has a keyring scope of its own: a random id created with
//! the folder (the file `keyring-scope`, beside the app database, so that it
//! outlives a damaged database), and every entry the folder's service writes
//! is named under it. Two data folders with a device of the same id never
//! share, and so never overwrite, each other's keys.
//!
//! Entries written before scopes existed (`device/<id>`, no scope) are moved
//! under the folder's scope once (see `service::keyring_scope`).

use crate::error::{Result, ServiceError};
use crate::files::{DataLayout, create_private_file};
use crate::model::DeviceId;

/// The entry names of one data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringNames {
    scope: String,
}

impl KeyringNames {
    /// The names under `scope` (16 lowercase hex digits).
    pub fn new(scope: &str) -> KeyringNames {
        KeyringNames {
            scope: scope.to_owned(),
        }
    }

    /// The folder's names, reading its scope or creating one.
    pub fn for_folder(layout: &DataLayout) -> Result<KeyringNames> {
        if let Some(names) = KeyringNames::of_folder(layout)? {
            return Ok(names);
        }
        let scope = format!("{:016x}", rand::random::<u64>());
        let path = layout.keyring_scope_file();
        create_private_file(&path)?;
        std::fs::write(&path, format!("{scope}\n"))?;
        Ok(KeyringNames::new(&scope))
    }

    /// The folder's names, if it has a scope yet.
    pub fn of_folder(layout: &DataLayout) -> Result<Option<KeyringNames>> {
        let path = layout.keyring_scope_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let scope = text.trim();
        if scope.len() != 16 || !scope.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::internal(format!(
                "{} is damaged: it should hold the folder's keyring scope (16 hex digits); restore it from a backup, or remove it only if this folder never linked a device",
                path.display()
            )));
        }
        Ok(Some(KeyringNames::new(scope)))
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The entry holding a device's keys.
    pub fn device(&self, id: &DeviceId) -> String {
        format!("{}{id}", self.device_prefix())
    }

    /// What every device entry of the folder starts with.
    pub fn device_prefix(&self) -> String {
        format!("{}/device/", self.scope)
    }

    /// The entry holding a pending revocation's keys.
    pub fn revocation(&self, jid: &str) -> String {
        format!("{}{jid}", self.revocation_prefix())
    }

    pub fn revocation_prefix(&self) -> String {
        format!("{}/revocation/", self.scope)
    }

    /// The entry holding the secret that signs a device's webhook
    /// deliveries.
    pub fn webhook(&self, id: &DeviceId) -> String {
        format!("{}/webhook/{id}", self.scope)
    }

    /// The entry of the REST API's password.
    pub fn api_password(&self) -> String {
        format!("{}/api/basic-auth", self.scope)
    }
}

/// A device's entry name from before scopes existed.
pub fn unscoped_device_entry(id: &DeviceId) -> String {
    format!("device/{id}")
}

/// The REST API password's entry name from before scopes existed.
pub const UNSCOPED_API_PASSWORD: &str = "api/basic-auth";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_folders_name_the_same_device_apart() {
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        let names_a = KeyringNames::for_folder(&DataLayout::new(a.path().into())).expect("scope");
        let names_b = KeyringNames::for_folder(&DataLayout::new(b.path().into())).expect("scope");
        let id = DeviceId::parse("x").expect("valid id");
        assert_ne!(names_a.device(&id), names_b.device(&id));
        assert!(names_a.device(&id).starts_with(&names_a.device_prefix()));
    }

    #[test]
    fn a_folder_keeps_its_scope() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = DataLayout::new(dir.path().into());
        let first = KeyringNames::for_folder(&layout).expect("scope");
        let again = KeyringNames::for_folder(&layout).expect("scope");
        assert_eq!(first, again);
    }

    #[test]
    fn a_damaged_scope_file_is_an_error_not_a_new_scope() {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = DataLayout::new(dir.path().into());
        std::fs::write(layout.keyring_scope_file(), "garbage").expect("write");
        assert!(KeyringNames::for_folder(&layout).is_err());
    }
}
