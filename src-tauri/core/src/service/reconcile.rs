//! Start-up reconciliation: the app database against the session files and
//! keyring entries of its data folder, so that no linked device is ever
//! orphaned by a damaged or emptied app database.
//!
//! - An app database that SQLite cannot read is set aside
//!   (`app.sqlite3.damaged-<time>`, with its `-wal` and `-shm`), and a new one
//!   is started: never a silent empty list.
//! - Every session file whose device the database does not know is restored
//!   as a device: with its keyring entry and the JID its store records, as a
//!   linked device (the restore connects it); with its keys but no readable
//!   JID, as `offline` / `session_damaged`. A session file without keys can
//!   end nothing and is removed.
//! - When the database was lost (set aside, or empty beside session files),
//!   the folder's keyring entries are read too: a device entry without
//!   session file is restored as `session_damaged` (its delete removes the
//!   keys), and a pending revocation's entry without its row gets the row
//!   back, so that its retries go on.
//!
//! Each finding is a warning: on stderr at start-up, and in the window.

use super::{DeviceService, ServiceCore};
use crate::app_db::{AppDatabase, now};
use crate::error::Result;
use crate::files::DataLayout;
use crate::lifecycle::LinkedIdentity;
use crate::model::{
    Actor, Device, DeviceId, HistoryAction, Outcome, PendingRevocation, StateReason,
};
use crate::session::store::secret_entry_name;
use std::collections::HashSet;

/// The app database as found at start-up.
pub(super) struct OpenedDatabase {
    pub(super) db: AppDatabase,
    /// Whether what it knew may be lost: it was unreadable (and set aside),
    /// or it knows no device while session files exist.
    pub(super) lost: bool,
    pub(super) warnings: Vec<String>,
}

/// Opens the folder's app database; sets an unreadable one aside and
/// starts a new one (see the module docs).
pub(super) fn open_app_database(layout: &DataLayout) -> Result<OpenedDatabase> {
    let path = layout.app_db();
    let mut warnings = Vec::new();
    let (db, set_aside) = AppDatabase::open_or_set_aside(&path)?;
    if let Some(aside) = &set_aside {
        warnings.push(format!(
            "The app database could not be read; it was set aside as {} and a new one started. Devices are restored from their session files and keyring entries.",
            aside.display()
        ));
    }
    let lost = set_aside.is_some() || (!db.has_devices()? && !layout.session_file_ids().is_empty());
    if lost && set_aside.is_none() {
        warnings.push(
            "The app database knew no device, but the data folder holds session files: it was emptied or lost its recent changes. Devices are restored from their session files and keyring entries."
                .to_owned(),
        );
    }
    Ok(OpenedDatabase { db, lost, warnings })
}

impl DeviceService {
    /// What the start-up found wrong and repaired (a damaged app database,
    /// devices restored from their files); empty when all was well.
    pub fn startup_warnings(&self) -> Vec<String> {
        self.inner
            .startup_warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// See the module docs. Runs after crash recovery, before the restore.
    pub(super) async fn reconcile(&self, lost: bool) -> Result<()> {
        let core = &self.inner;
        let known: HashSet<DeviceId> = core.db.devices()?.into_iter().map(|d| d.id).collect();
        let wiping: HashSet<DeviceId> = core
            .db
            .pending_wipes()?
            .into_iter()
            .map(|w| w.device_id)
            .collect();
        let mut candidates: Vec<(DeviceId, bool)> = core
            .layout
            .session_file_ids()
            .into_iter()
            .map(|id| (id, true))
            .collect();
        if lost {
            let prefix = core.names.device_prefix();
            let read = core
                .keyring(move |s| s.get_all(&prefix, &secret_entry_name))
                .await;
            match read {
                Ok(entries) => {
                    for name in entries.keys() {
                        if let Some(id) = name
                            .strip_prefix(core.names.device_prefix().as_str())
                            .and_then(|id| DeviceId::parse(id).ok())
                            && !candidates.iter().any(|(c, _)| *c == id)
                        {
                            candidates.push((id, false));
                        }
                    }
                }
                Err(err) => core.warn(format!(
                    "The keyring could not be read to look for devices the app database lost: {}",
                    err.message
                )),
            }
            self.reconcile_revocations().await;
        }
        let mut restored = 0usize;
        for (id, has_file) in candidates {
            if known.contains(&id) || wiping.contains(&id) {
                continue;
            }
            match core.restore_unknown_device(&id, has_file).await {
                Ok(true) => restored += 1,
                Ok(false) => {}
                Err(err) => core.warn(format!(
                    "Device \"{id}\" has files the app database does not know, and could not be restored: {}",
                    err.message
                )),
            }
        }
        if restored > 0 {
            core.warn(format!(
                "{restored} device(s) unknown to the app database were restored from their session files and keyring entries; check their labels."
            ));
        }
        Ok(())
    }

    /// Pending revocations whose keyring entry outlived their row.
    async fn reconcile_revocations(&self) {
        let core = &self.inner;
        let prefix = core.names.revocation_prefix();
        let read = prefix.clone();
        let Ok(entries) = core
            .keyring(move |s| s.get_all(&read, &secret_entry_name))
            .await
        else {
            return;
        };
        let Ok(rows) = core.db.revocations() else {
            return;
        };
        for name in entries.keys() {
            let Some(jid) = name.strip_prefix(prefix.as_str()) else {
                continue;
            };
            if rows.iter().any(|r| r.jid == jid) {
                continue;
            }
            let at = now();
            let revocation = PendingRevocation {
                jid: jid.to_owned(),
                device_id: String::new(),
                phone_number: jid.split([':', '@']).next().map(str::to_owned),
                since: at,
                attempts: 0,
                next_attempt_at: at,
                last_error: Some("found in the keyring after the app database was lost".into()),
            };
            if core.db.insert_revocation(&revocation).is_ok() {
                core.warn(format!(
                    "A pending unlink of {jid} was found in the keyring and is retried again."
                ));
            }
        }
    }
}

impl ServiceCore {
    /// Adds a startup warning (also printed on stderr, for `serve`).
    fn warn(&self, warning: String) {
        eprintln!("wa-device-admin: warning: {warning}");
        self.startup_warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(warning);
    }

    /// Restores one device the app database does not know; `Ok(false)`
    /// when nothing could be restored (a session file without keys, which
    /// is then removed).
    async fn restore_unknown_device(&self, id: &DeviceId, has_file: bool) -> Result<bool> {
        let name = self.names.device(id);
        let has_keys = self.keyring(move |s| s.get(&name)).await?.is_some();
        if !has_keys {
            self.layout.remove_session_files(id)?;
            self.warn(format!(
                "A session file of device \"{id}\" had no keys in the keyring; it could end no link and was removed."
            ));
            return Ok(false);
        }
        let jid = if has_file {
            self.linked_jid_in_store(id)
        } else {
            None
        };
        let mut device = Device::created(id.clone(), String::new(), now());
        let detail = match &jid {
            Some(jid) => {
                device.paired(LinkedIdentity::of_account(jid));
                device.connecting(StateReason::Restoring, None);
                format!(
                    "the app database did not know this device; restored as {jid} from its session file and keyring entry"
                )
            }
            None => {
                device.paired(LinkedIdentity::default());
                device.offline(StateReason::SessionDamaged, None);
                "the app database did not know this device; its keys are in the keyring but no session file tells its JID, so its link cannot be ended from here (delete it to remove the keys)".to_owned()
            }
        };
        self.db.insert_device(&mut device)?;
        self.record(
            id,
            HistoryAction::RecoveredDevice,
            &Actor::System,
            Outcome::Ok,
            detail,
        );
        self.emit_device(&device);
        Ok(true)
    }
}
