//! Persistent WAL mode for a rusqlite connection.
//!
//! In WAL mode SQLite deletes the `-wal` and `-shm` files when the last
//! connection to a database closes, and creates them again at the next open.
//! Creating two files costs far more than everything else an open does (on
//! the ext4 machines we measured, about 2 ms of kernel time per database,
//! against 0.7 ms for the whole open, read and first write with the files
//! present). The app opens one session database per WhatsApp device, all of
//! them at start-up, so that cost was paid a thousand times over.
//!
//! With `SQLITE_FCNTL_PERSIST_WAL` the last close checkpoints as usual but
//! keeps both files (the WAL truncated to `journal_size_limit`). Nothing else
//! changes: durability, recovery and locking are those of WAL mode. Whoever
//! deletes a database must delete its `-wal` and `-shm` files too, as before.
//!
//! rusqlite has no safe wrapper for `sqlite3_file_control`, hence this crate:
//! the workspace forbids `unsafe` everywhere else.

use rusqlite::{Connection, ffi};
use std::os::raw::c_int;

/// Keeps the `-wal` and `-shm` files of `conn`'s main database when the last
/// connection to it closes. Set it right after opening, before the first
/// statement; it lasts as long as the connection.
///
/// Errors: the file control's SQLite error (e.g. `SQLITE_NOTFOUND` for an
/// in-memory database, which has no files).
pub fn keep_wal_files(conn: &Connection) -> rusqlite::Result<()> {
    let mut persist: c_int = 1;
    // SAFETY: `handle()` is the connection's live `sqlite3*`, valid while
    // `conn` is borrowed, and used only on this thread for this one call.
    // The schema name is a NUL-terminated static string. For this opcode
    // SQLite reads and writes exactly one `int` through the pointer, which
    // points at `persist` for the duration of the call.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut persist).cast(),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("cannot keep the database's WAL files (SQLITE_FCNTL_PERSIST_WAL)".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::path::Path;

    fn write_in_wal_mode(path: &Path, persist: bool) {
        let conn = Connection::open(path).unwrap();
        if persist {
            keep_wal_files(&conn).unwrap();
        }
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "journal_size_limit", 0).unwrap();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }

    fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        name.into()
    }

    #[test]
    fn the_wal_files_outlive_the_last_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("kept.sqlite3");
        write_in_wal_mode(&db, true);
        assert!(sibling(&db, "-wal").exists());
        assert!(sibling(&db, "-shm").exists());
        // Checkpointed at close, so the kept WAL holds nothing to replay
        // and the data is in the database file.
        assert_eq!(std::fs::metadata(sibling(&db, "-wal")).unwrap().len(), 0);
        write_in_wal_mode(&db, true);
        let conn = Connection::open(&db).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn without_it_sqlite_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("plain.sqlite3");
        write_in_wal_mode(&db, false);
        assert!(!sibling(&db, "-wal").exists());
        assert!(!sibling(&db, "-shm").exists());
    }

    #[test]
    fn an_in_memory_database_has_no_files_to_keep() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(keep_wal_files(&conn).is_err());
    }
}
