//! The app database: devices, their audit history and the journal of
//! unfinished wipes, in one SQLite file (WAL) in the data folder.
//!
//! It never holds a secret: keys live in the OS keyring, protocol state in the
//! per-device session stores.

use crate::error::{Result, ServiceError};
use crate::model::{
    Actor, Device, DeviceId, DeviceList, DeviceState, HistoryAction, HistoryEntry, LoginPhase,
    Outcome, PendingRevocation, StateReason,
};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

mod webhook_rows;

/// The schema, one entry per version; `PRAGMA user_version` is the number of
/// entries applied. Append only: never edit a released migration.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE devices (
    id                TEXT PRIMARY KEY NOT NULL,
    label             TEXT NOT NULL,
    phone_number      TEXT,
    display_name      TEXT,
    jid               TEXT,
    state             TEXT NOT NULL,
    state_reason      TEXT NOT NULL,
    next_retry_at     INTEGER,
    ban_expires_at    INTEGER,
    has_credentials   INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    last_connected_at INTEGER
) STRICT;
CREATE TABLE history (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    detail    TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_device ON history (device_id, seq);
-- A logout or delete that has started and not finished. Written before the
-- first step, removed after the last: whatever is here at start-up is finished
-- then (crash safety).
CREATE TABLE pending_wipes (
    device_id        TEXT PRIMARY KEY NOT NULL,
    delete_device    INTEGER NOT NULL,
    unlink_confirmed INTEGER NOT NULL DEFAULT 0,
    actor            TEXT NOT NULL,
    requested_at     INTEGER NOT NULL
) STRICT;
"#,
    r#"
-- Links whose unlink WhatsApp did not confirm; their keys wait in the keyring
-- under `revocation/<jid>` until WhatsApp confirms a retry.
CREATE TABLE pending_revocations (
    jid             TEXT PRIMARY KEY NOT NULL,
    device_id       TEXT NOT NULL,
    phone_number    TEXT,
    since           INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
) STRICT;
"#,
    r#"
-- Which save of the device the row is (see `Device::revision`).
ALTER TABLE devices ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Each device's webhook; its secret, if any, is in the keyring under
-- `<scope>/webhook/<device id>`. Removed with the device.
CREATE TABLE webhooks (
    device_id  TEXT PRIMARY KEY NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    has_secret INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
) STRICT;
"#,
];

/// A logout or delete recorded as started and not yet finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWipe {
    pub device_id: DeviceId,
    pub delete_device: bool,
    pub unlink_confirmed: bool,
    pub actor: Actor,
}

pub struct AppDatabase {
    conn: Mutex<Connection>,
    /// The highest revision given out (see [`Device::revision`]). Rows get
    /// theirs while the connection is locked, so a list read sees, for every
    /// device, a revision below that of any later save of it.
    last_revision: AtomicU64,
}

fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// The current time at millisecond precision (what the database keeps), so a
/// value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    from_millis(to_millis(Utc::now()))
}

fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("unknown {what} {value:?} in the app database").into(),
    )
}

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let id: String = row.get("id")?;
    let state: String = row.get("state")?;
    let reason: String = row.get("state_reason")?;
    let state = DeviceState::parse(&state).ok_or_else(|| corrupt("state", &state))?;
    let state_reason = StateReason::parse(&reason).ok_or_else(|| corrupt("reason", &reason))?;
    Ok(Device {
        id: DeviceId::parse(&id).map_err(|_| corrupt("device id", &id))?,
        label: row.get("label")?,
        phone_number: row.get("phone_number")?,
        display_name: row.get("display_name")?,
        jid: row.get("jid")?,
        state,
        state_reason,
        login_phase: LoginPhase::of(state, state_reason),
        next_retry_at: row.get::<_, Option<i64>>("next_retry_at")?.map(from_millis),
        ban_expires_at: row
            .get::<_, Option<i64>>("ban_expires_at")?
            .map(from_millis),
        has_credentials: row.get("has_credentials")?,
        created_at: from_millis(row.get("created_at")?),
        last_connected_at: row
            .get::<_, Option<i64>>("last_connected_at")?
            .map(from_millis),
        revision: u64::try_from(row.get::<_, i64>("revision")?).unwrap_or(0),
    })
}

/// Every column of a device row as named parameters (`:id`, `:label`, ...),
/// the one place that maps a [`Device`] to its row (see [`device_from_row`]
/// for the other way).
fn with_device_params<T>(
    device: &Device,
    run: impl FnOnce(&[(&str, &dyn rusqlite::ToSql)]) -> T,
) -> T {
    run(rusqlite::named_params! {
        ":id": device.id.as_str(),
        ":label": device.label,
        ":phone_number": device.phone_number,
        ":display_name": device.display_name,
        ":jid": device.jid,
        ":state": device.state.as_str(),
        ":state_reason": device.state_reason.as_str(),
        ":next_retry_at": device.next_retry_at.map(to_millis),
        ":ban_expires_at": device.ban_expires_at.map(to_millis),
        ":has_credentials": device.has_credentials,
        ":created_at": to_millis(device.created_at),
        ":last_connected_at": device.last_connected_at.map(to_millis),
        ":revision": i64::try_from(device.revision).unwrap_or(i64::MAX),
    })
}

/// Applies the `migrations` not yet applied to `conn` (`PRAGMA user_version`
/// counts the applied ones), each in its own transaction. A file newer than
/// this program is refused, not touched. `what` names the file in errors.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[&str], what: &str) -> Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > migrations.len() {
        return Err(ServiceError::internal(format!(
            "the {what} has schema version {applied}, newer than this program knows ({}); refusing to touch it",
            migrations.len()
        )));
    }
    for (version, sql) in migrations.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(version + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

impl AppDatabase {
    /// Opens (creating if needed, readable only by the user) and migrates the
    /// app database at `path`.
    pub fn open(path: &Path) -> Result<AppDatabase> {
        crate::files::create_private_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let db = AppDatabase {
            conn: Mutex::new(conn),
            last_revision: AtomicU64::new(0),
        };
        db.migrate()?;
        let last: i64 =
            db.lock()
                .query_row("SELECT COALESCE(MAX(revision), 0) FROM devices", [], |r| {
                    r.get(0)
                })?;
        db.last_revision
            .store(u64::try_from(last).unwrap_or(0), Ordering::SeqCst);
        Ok(db)
    }

    /// [`AppDatabase::open`]; a file SQLite cannot read (not a database, or
    /// corrupt) is renamed `<name>.damaged-<unix time>` with its `-wal` and
    /// `-shm`, and a new database is started. Returns where the damaged one
    /// went.
    pub fn open_or_set_aside(path: &Path) -> Result<(AppDatabase, Option<std::path::PathBuf>)> {
        match AppDatabase::open(path) {
            Ok(db) => return Ok((db, None)),
            Err(err) if !is_damaged(path) => return Err(err),
            Err(_) => {}
        }
        let stamp = Utc::now().timestamp();
        let mut aside = path.as_os_str().to_owned();
        aside.push(format!(".damaged-{stamp}"));
        let aside = std::path::PathBuf::from(aside);
        for suffix in ["", "-wal", "-shm"] {
            let mut from = path.as_os_str().to_owned();
            from.push(suffix);
            let mut to = aside.as_os_str().to_owned();
            to.push(suffix);
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((AppDatabase::open(path)?, Some(aside)))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (every write is one statement or one transaction), so keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        migrate(&mut self.lock(), MIGRATIONS, "app database")
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// A revision above every one given out so far (see
    /// [`Device::revision`]); also what a removal is stamped with.
    pub fn next_revision(&self) -> u64 {
        self.last_revision.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Inserts a new device, stamped with the next revision; `already_exists`
    /// if the id is taken.
    pub fn insert_device(&self, device: &mut Device) -> Result<()> {
        let conn = self.lock();
        device.revision = self.next_revision();
        let inserted = with_device_params(device, |params| {
            conn.execute(
                "INSERT INTO devices (id, label, phone_number, display_name, jid, state,
                    state_reason, next_retry_at, ban_expires_at, has_credentials, created_at,
                    last_connected_at, revision)
                 VALUES (:id, :label, :phone_number, :display_name, :jid, :state, :state_reason,
                    :next_retry_at, :ban_expires_at, :has_credentials, :created_at,
                    :last_connected_at, :revision)
                 ON CONFLICT (id) DO NOTHING",
                params,
            )
        })?;
        if inserted == 0 {
            return Err(ServiceError::new(
                crate::ErrorCode::AlreadyExists,
                format!("a device with id \"{}\" exists already", device.id),
            ));
        }
        Ok(())
    }

    /// Writes every field of an existing device, stamped with the next
    /// revision; `not_found` if it is gone.
    pub fn update_device(&self, device: &mut Device) -> Result<()> {
        let conn = self.lock();
        device.revision = self.next_revision();
        // `created_at` is written back as read: it never changes.
        // Cached: every state change of every device runs it (a thousand
        // times in a start-up restore of a thousand devices).
        let updated = with_device_params(device, |params| {
            conn.prepare_cached(
                "UPDATE devices SET label = :label, phone_number = :phone_number,
                    display_name = :display_name, jid = :jid, state = :state,
                    state_reason = :state_reason, next_retry_at = :next_retry_at,
                    ban_expires_at = :ban_expires_at, has_credentials = :has_credentials,
                    created_at = :created_at, last_connected_at = :last_connected_at,
                    revision = :revision
                 WHERE id = :id",
            )?
            .execute(params)
        })?;
        if updated == 0 {
            return Err(ServiceError::not_found(device.id.as_str()));
        }
        Ok(())
    }

    pub fn device(&self, id: &DeviceId) -> Result<Option<Device>> {
        Ok(self
            .lock()
            .prepare_cached("SELECT * FROM devices WHERE id = ?1")?
            .query_row([id.as_str()], device_from_row)
            .optional()?)
    }

    /// Whether the database knows any device.
    pub fn has_devices(&self) -> Result<bool> {
        Ok(self
            .lock()
            .query_row("SELECT EXISTS(SELECT 1 FROM devices)", [], |r| r.get(0))?)
    }

    /// All devices, ordered by id.
    pub fn devices(&self) -> Result<Vec<Device>> {
        Ok(self.device_list()?.devices)
    }

    /// All devices with the revision they are current as of: read in one
    /// hold of the connection, in which no save can take a revision.
    pub fn device_list(&self) -> Result<DeviceList> {
        let conn = self.lock();
        let revision = self.last_revision.load(Ordering::SeqCst);
        let mut stmt = conn.prepare_cached("SELECT * FROM devices ORDER BY id")?;
        let rows = stmt.query_map([], device_from_row)?;
        let devices = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(DeviceList { revision, devices })
    }

    /// Removes a device row and its webhook, at once: a device created
    /// later with the same id never inherits the webhook. Its history stays
    /// (it is the audit trail).
    pub fn remove_device(&self, id: &DeviceId) -> Result<bool> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM webhooks WHERE device_id = ?1", [id.as_str()])?;
        let removed = tx.execute("DELETE FROM devices WHERE id = ?1", [id.as_str()])? > 0;
        tx.commit()?;
        Ok(removed)
    }

    pub fn append_history(&self, entry: &HistoryEntry) -> Result<()> {
        self.lock()
            .prepare_cached(
                "INSERT INTO history (at, device_id, action, actor, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                to_millis(entry.at),
                entry.device_id,
                entry.action.as_str(),
                entry.actor.to_string(),
                entry.outcome.as_str(),
                entry.detail,
            ])?;
        Ok(())
    }

    /// A device's history, oldest first.
    pub fn history(&self, id: &DeviceId) -> Result<Vec<HistoryEntry>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT at, device_id, action, actor, outcome, detail FROM history
             WHERE device_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([id.as_str()], |row| {
            let action: String = row.get(2)?;
            let outcome: String = row.get(4)?;
            Ok(HistoryEntry {
                at: from_millis(row.get(0)?),
                device_id: row.get(1)?,
                action: HistoryAction::parse(&action).ok_or_else(|| corrupt("action", &action))?,
                actor: Actor::parse(&row.get::<_, String>(3)?),
                outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
                detail: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records that a logout (or delete) of `id` has started.
    pub fn begin_wipe(&self, wipe: &PendingWipe) -> Result<()> {
        self.lock().execute(
            "INSERT INTO pending_wipes (device_id, delete_device, unlink_confirmed, actor, requested_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device_id) DO UPDATE SET
                delete_device = max(delete_device, excluded.delete_device),
                unlink_confirmed = max(unlink_confirmed, excluded.unlink_confirmed)",
            params![
                wipe.device_id.as_str(),
                wipe.delete_device,
                wipe.unlink_confirmed,
                wipe.actor.to_string(),
                to_millis(now()),
            ],
        )?;
        Ok(())
    }

    pub fn set_wipe_unlink_confirmed(&self, id: &DeviceId) -> Result<()> {
        self.lock().execute(
            "UPDATE pending_wipes SET unlink_confirmed = 1 WHERE device_id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    pub fn end_wipe(&self, id: &DeviceId) -> Result<()> {
        self.lock().execute(
            "DELETE FROM pending_wipes WHERE device_id = ?1",
            [id.as_str()],
        )?;
        Ok(())
    }

    pub fn pending_wipes(&self) -> Result<Vec<PendingWipe>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT device_id, delete_device, unlink_confirmed, actor FROM pending_wipes ORDER BY device_id",
        )?;
        let rows = stmt.query_map([], |row| {
            let id: String = row.get(0)?;
            Ok(PendingWipe {
                device_id: DeviceId::parse(&id).map_err(|_| corrupt("device id", &id))?,
                delete_device: row.get(1)?,
                unlink_confirmed: row.get(2)?,
                actor: Actor::parse(&row.get::<_, String>(3)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

impl AppDatabase {
    /// Records a pending revocation; one already recorded for the JID is
    /// kept as it is (crash recovery moves the keys again).
    pub fn insert_revocation(&self, revocation: &PendingRevocation) -> Result<()> {
        self.lock().execute(
            "INSERT INTO pending_revocations
                (jid, device_id, phone_number, since, attempts, next_attempt_at, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (jid) DO NOTHING",
            params![
                revocation.jid,
                revocation.device_id,
                revocation.phone_number,
                to_millis(revocation.since),
                revocation.attempts,
                to_millis(revocation.next_attempt_at),
                revocation.last_error,
            ],
        )?;
        Ok(())
    }

    /// The outcome of a try that did not end the revocation.
    pub fn update_revocation(&self, revocation: &PendingRevocation) -> Result<()> {
        self.lock().execute(
            "UPDATE pending_revocations
             SET attempts = ?2, next_attempt_at = ?3, last_error = ?4 WHERE jid = ?1",
            params![
                revocation.jid,
                revocation.attempts,
                to_millis(revocation.next_attempt_at),
                revocation.last_error,
            ],
        )?;
        Ok(())
    }

    pub fn remove_revocation(&self, jid: &str) -> Result<()> {
        self.lock()
            .execute("DELETE FROM pending_revocations WHERE jid = ?1", [jid])?;
        Ok(())
    }

    /// Every pending revocation, the next due first.
    pub fn revocations(&self) -> Result<Vec<PendingRevocation>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT jid, device_id, phone_number, since, attempts, next_attempt_at, last_error
             FROM pending_revocations ORDER BY next_attempt_at, jid",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok(PendingRevocation {
                jid: row.get(0)?,
                device_id: row.get(1)?,
                phone_number: row.get(2)?,
                since: from_millis(row.get(3)?),
                attempts: row.get(4)?,
                next_attempt_at: from_millis(row.get(5)?),
                last_error: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// Whether SQLite finds the database at `path` unreadable as a database
/// (rather than, say, locked or on a full disk).
fn is_damaged(path: &Path) -> bool {
    let check = || -> rusqlite::Result<()> {
        let conn = Connection::open(path)?;
        let result: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                None,
            ))
        }
    };
    matches!(
        check().err().and_then(|e| e.sqlite_error_code()),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Renders history as CSV (RFC 4180, CRLF line ends) with a header row.
///
/// Cells that a spreadsheet would run as a formula (starting with `=`, `+`,
/// `-`, `@`, tab or CR) get a leading `'`: labels typed by an admin end up in
/// details, and an export must not become an attack on whoever opens it.
pub fn history_to_csv(entries: &[HistoryEntry]) -> String {
    fn cell(out: &mut String, value: &str) {
        let guarded;
        let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            guarded = format!("'{value}");
            guarded.as_str()
        } else {
            value
        };
        if value.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    let mut out = String::from("time,device_id,action,actor,outcome,detail\r\n");
    for e in entries {
        let at = e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let actor = e.actor.to_string();
        let fields = [
            at.as_str(),
            e.device_id.as_str(),
            e.action.as_str(),
            actor.as_str(),
            e.outcome.as_str(),
            e.detail.as_str(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            cell(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_guards_cells() {
        let entry = HistoryEntry {
            at: from_millis(0),
            device_id: "d1".into(),
            action: HistoryAction::Rename,
            actor: Actor::RestApi("bob".into()),
            outcome: Outcome::Ok,
            detail: "renamed to \"=SUM(A1)\", ok".into(),
        };
        let formula = HistoryEntry {
            detail: "=HYPERLINK(\"x\")".into(),
            ..entry.clone()
        };
        let csv = history_to_csv(&[entry, formula]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "time,device_id,action,actor,outcome,detail");
        assert_eq!(
            lines[1],
            "1970-01-01T00:00:00.000Z,d1,rename,api:bob,ok,\"renamed to \"\"=SUM(A1)\"\", ok\""
        );
        assert_eq!(
            lines[2],
            "1970-01-01T00:00:00.000Z,d1,rename,api:bob,ok,\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(lines[3], "");
    }
}
