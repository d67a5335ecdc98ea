//! The one-time move of a folder's keyring entries under its scope (see
//! [`crate::secrets::KeyringNames`]), run by the first start of the service
//! on the folder after scopes exist; the file `keyring-scope-moved` records
//! that it ran (the scope itself may be created earlier, by `serve`).
//!
//! Only entries the folder can show to be its own are moved: those of its
//! devices with credentials, and of its session files. Each is copied under
//! the scope (with the name it carries rewritten), then the old entry is
//! deleted; a crash in between leaves both, and the next start finds the
//! scope and uses the copy. Another folder's device of the same id lost its
//! keys to this folder before scopes existed (the bug the scope ends): the
//! entry can belong to one folder only, and the first to start takes it.

use super::DeviceService;
use crate::model::DeviceId;
use crate::secrets::unscoped_device_entry;
use crate::session::store::secrets_renamed;
use std::collections::BTreeSet;

impl DeviceService {
    pub(super) async fn scope_old_entries(&self) {
        let core = &self.inner;
        let done = core.layout.root().join("keyring-scope-moved");
        if done.exists() {
            return;
        }
        let mut ids: BTreeSet<DeviceId> = core
            .db
            .devices()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.has_credentials)
            .map(|d| d.id)
            .collect();
        ids.extend(core.layout.session_file_ids());
        let mut moved = 0usize;
        for id in ids {
            let old = unscoped_device_entry(&id);
            let new = core.names.device(&id);
            let read = old.clone();
            let Ok(Some(raw)) = core.keyring(move |s| s.get(&read)).await else {
                continue;
            };
            let Ok(raw) = secrets_renamed(&raw, &old, &new) else {
                continue;
            };
            let write = new.clone();
            if core.keyring(move |s| s.set(&write, &raw)).await.is_err() {
                continue;
            }
            let _ = core.keyring(move |s| s.delete(&old)).await;
            moved += 1;
        }
        if crate::files::create_private_file(&done).is_err() {
            return;
        }
        if moved > 0 {
            eprintln!(
                "wa-device-admin: moved {moved} device keyring entries under this data folder's scope {}",
                core.names.scope()
            );
        }
    }
}
