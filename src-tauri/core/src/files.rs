//! The data folder: private directories and files, and the per-device session
//! store files.

use crate::error::{Result, ServiceError};
use crate::model::DeviceId;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and parents) readable only by the user, and tightens it to
/// 0700 if it existed with wider permissions.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// Makes sure `path` exists as a file readable only by the user (0600),
/// without touching its content. SQLite gives its `-wal` and `-shm` files the
/// permissions of the database file, so pre-creating the database file this
/// way keeps all three private.
pub fn create_private_file(path: &Path) -> Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Removes a file; a file that does not exist counts as removed.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The SQLite database `db` and the files SQLite keeps beside it.
pub fn sqlite_files(db: &Path) -> Vec<PathBuf> {
    let mut files = vec![db.to_path_buf()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

/// Where the files live inside the data folder.
#[derive(Debug, Clone)]
pub struct DataLayout {
    root: PathBuf,
}

impl DataLayout {
    pub fn new(root: PathBuf) -> DataLayout {
        DataLayout { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the folder's lock (held until the returned handle is dropped or
    /// the process ends), or fails with `busy` if another service holds it.
    /// Two processes on one folder would run two WhatsApp clients with the
    /// same credentials, and WhatsApp would disconnect one as `replaced`.
    ///
    /// The lock is an OS lock (`flock`) on the folder itself, not on a file
    /// in it: a lock file can be unlinked while held, and the next process
    /// would lock a new file of the same name; the folder cannot go while it
    /// holds the app's files.
    pub fn lock_exclusively(&self) -> Result<fs::File> {
        let file = fs::File::open(&self.root)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(ServiceError::busy(format!(
                "another WA Device Admin (the window or `serve`) is using the data folder {}; \
                 close it, or let the window serve the REST API",
                self.root.display()
            ))),
            Err(fs::TryLockError::Error(err)) => Err(err.into()),
        }
    }

    /// The folder's keyring scope (see [`crate::secrets::KeyringNames`]).
    pub fn keyring_scope_file(&self) -> PathBuf {
        self.root.join("keyring-scope")
    }

    pub fn app_db(&self) -> PathBuf {
        self.root.join("app.sqlite3")
    }

    /// Temporary session stores of the clients that retry pending
    /// revocations; empty between tries.
    pub fn revocations_dir(&self) -> PathBuf {
        self.root.join("revocations")
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.root.join("sessions")
    }

    /// The whatsapp-rust session store of a device. The id is validated (no
    /// separators, not `.`/`..`) and prefixed, so this stays inside
    /// `sessions/`.
    pub fn session_db(&self, id: &DeviceId) -> PathBuf {
        self.sessions_dir()
            .join(format!("{}.sqlite3", id.file_stem()))
    }

    /// Every file that makes up a device's session store.
    pub fn session_files(&self, id: &DeviceId) -> Vec<PathBuf> {
        sqlite_files(&self.session_db(id))
    }

    /// The ids of the devices that have a session database, sorted.
    pub fn session_file_ids(&self) -> Vec<DeviceId> {
        let Ok(entries) = fs::read_dir(self.sessions_dir()) else {
            return Vec::new();
        };
        let mut ids: Vec<DeviceId> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let id = name.strip_prefix("device-")?.strip_suffix(".sqlite3")?;
                DeviceId::parse(id).ok()
            })
            .collect();
        ids.sort();
        ids
    }

    /// Deletes a device's session store files (those that exist).
    pub fn remove_session_files(&self, id: &DeviceId) -> Result<()> {
        for file in self.session_files(id) {
            remove_file_if_exists(&file)?;
        }
        Ok(())
    }

    pub fn has_session_files(&self, id: &DeviceId) -> bool {
        self.session_files(id).iter().any(|f| f.exists())
    }
}
