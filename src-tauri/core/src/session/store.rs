//! The whatsapp-rust session store of one device: our own [`Backend`] on one
//! SQLite file (rusqlite), with the long-term secrets in the OS keyring.
//!
//! Why not the library's `SqliteStore`: at start-up every device opens its
//! store and runs a few dozen queries, and the library's store spent most of
//! a 1000-device restore on its connection pool (a pool per device, pragmas
//! and a migrations check per connection, a schema of ~25 tables parsed per
//! connection) and on one blocking-thread hop per query. This store holds one
//! connection, a compact schema migrated by `user_version`, cached
//! statements, and runs each query inline: a query here is a few
//! microseconds against a file only this device uses, cheaper than the hop.
//!
//! Semantics follow wacore's `InMemoryBackend` (the reference the library
//! ships) and the trait docs; `tests/it/session_store.rs` checks the two
//! agree call by call.
//!
//! Secrets: the device record's noise key, identity key and signed pre-key
//! (each a full key pair) and its ADV secret go to the keyring; the SQLite
//! row holds the record with all-zero placeholders. Signed pre-key records
//! (which hold private keys) live in the same keyring entry. One keyring
//! entry per device (named by [`secret_name`]) holds all of them, so deleting
//! a device's secrets is a single delete.
//!
//! Invariant: no code path hands a secret byte to SQLite. `create()` saves a
//! fresh device through `save()`, which scrubs it.
//!
//! Errors: SQLite failures are `StoreError::Database`; a keyring failure is
//! `StoreError::Connection` carrying the service's message (no secret), and
//! the typed failure is kept for [`SessionStore::take_keyring_failure`].

use crate::error::ServiceError;
use crate::files::create_private_file;
use crate::model::DeviceId;
use crate::secrets::SecretStore;
pub use crate::secrets::device_entry::{
    DeviceSecrets, REVOCATION_NAME_PREFIX, SECRET_NAME_PREFIX, revocation_name, secret_entry_name,
    secret_name, secrets_renamed,
};
use crate::secrets::device_entry::{parse_secrets, scrubbed};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry,
};
use whatsapp_rust::bytes::Bytes;

/// Why a save was refused: see [`SessionStore`]'s `save`.
pub const KEYS_WOULD_BE_REPLACED: &str = "the session store holds no device, but the keyring holds this device's keys; a fresh device is never saved over them (the session store is damaged)";

/// The schema, one entry per version; `PRAGMA user_version` is the number of
/// entries applied. Append only: never edit a released migration.
///
/// Tables without a natural integer key are `WITHOUT ROWID`: each is looked
/// up by its primary key only, so the key is the row.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE device (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    record BLOB NOT NULL
) STRICT;
CREATE TABLE identities (address TEXT PRIMARY KEY, key BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE sessions (address TEXT PRIMARY KEY, record BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE pre_keys (
    id       INTEGER PRIMARY KEY,
    record   BLOB NOT NULL,
    uploaded INTEGER NOT NULL
) STRICT;
CREATE TABLE sender_keys (address TEXT PRIMARY KEY, record BLOB NOT NULL) STRICT, WITHOUT ROWID;
-- stored_seq orders keys by when they were stored: the latest key is the
-- one stored last, whatever its id.
CREATE TABLE sync_keys (
    key_id      BLOB PRIMARY KEY,
    key_data    BLOB NOT NULL,
    fingerprint BLOB NOT NULL,
    timestamp   INTEGER NOT NULL,
    stored_seq  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE app_state_versions (name TEXT PRIMARY KEY, state BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE mutation_macs (
    name      TEXT NOT NULL,
    index_mac BLOB NOT NULL,
    value_mac BLOB NOT NULL,
    version   INTEGER NOT NULL,
    PRIMARY KEY (name, index_mac)
) STRICT, WITHOUT ROWID;
CREATE TABLE sender_key_devices (
    group_jid  TEXT NOT NULL,
    device_jid TEXT NOT NULL,
    has_key    INTEGER NOT NULL,
    PRIMARY KEY (group_jid, device_jid)
) STRICT, WITHOUT ROWID;
CREATE TABLE lid_mappings (
    lid             TEXT PRIMARY KEY,
    phone_number    TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    learning_source TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX lid_mappings_by_phone ON lid_mappings (phone_number, updated_at);
CREATE TABLE base_keys (
    address    TEXT NOT NULL,
    message_id TEXT NOT NULL,
    base_key   BLOB NOT NULL,
    PRIMARY KEY (address, message_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE device_lists (user TEXT PRIMARY KEY, record BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE group_metadata (group_jid TEXT PRIMARY KEY, blob BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE tc_tokens (
    jid              TEXT PRIMARY KEY,
    token            BLOB NOT NULL,
    token_timestamp  INTEGER NOT NULL,
    sender_timestamp INTEGER
) STRICT, WITHOUT ROWID;
CREATE TABLE sent_messages (
    chat_jid   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload    BLOB NOT NULL,
    sent_at    INTEGER NOT NULL,
    PRIMARY KEY (chat_jid, message_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE pending_inbound (
    chat      TEXT NOT NULL,
    sender    TEXT NOT NULL,
    id        TEXT NOT NULL,
    message   BLOB NOT NULL,
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (chat, sender, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE msg_secrets (
    chat       TEXT NOT NULL,
    sender     TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    secret     BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    message_ts INTEGER NOT NULL,
    PRIMARY KEY (chat, sender, msg_id)
) STRICT, WITHOUT ROWID;
"#];

/// The most a session store's WAL keeps between uses, in bytes. A device's
/// session writes a few pages at a time, so its WAL stays below this and is
/// never truncated and regrown (0 would do that at every restart of the
/// log); a burst past it is cut back, so a thousand devices' WALs cannot
/// hold more than this each.
const WAL_SIZE_LIMIT: i64 = 64 * 1024;

/// Statements kept prepared per connection. A reconnect runs about a dozen
/// distinct ones; the rest of the headroom serves a device in use.
const STATEMENT_CACHE: usize = 48;

fn db_error(err: rusqlite::Error) -> StoreError {
    // SQLite's messages name statements and constraints, never bound values.
    StoreError::Database(Box::new(err))
}

fn malformed(what: &str) -> StoreError {
    StoreError::Validation(format!("the session store holds a malformed {what}"))
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn from_json<T: for<'de> Deserialize<'de>>(raw: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(raw).map_err(|_| malformed(what))
}

fn array_32(raw: Vec<u8>, what: &str) -> Result<[u8; 32]> {
    raw.try_into().map_err(|_| malformed(what))
}

/// The bounds of the addresses `user@…` and `user:…` (device 0 and the
/// others): `[user@, userA)` and `[user:, user;)`, the character after `@`
/// and `:` being `A` and `;`. Ranges, not `LIKE`, so a `%` or `_` in `user`
/// means itself and the primary key index is used.
fn user_address_ranges(user: &str) -> [(String, String); 2] {
    [
        (format!("{user}@"), format!("{user}A")),
        (format!("{user}:"), format!("{user};")),
    ]
}

fn now_secs() -> i64 {
    wacore::time::now_secs()
}

/// The session store of one device (see the module docs).
pub struct SessionStore {
    /// `None` once [`SessionStore::close`]d.
    conn: Mutex<Option<Connection>>,
    secrets: Arc<dyn SecretStore>,
    secret_name: String,
    /// What the keyring entry holds, once read or written: saves that change
    /// no secret (most of them) then cost no keyring round trip.
    cached: Mutex<Option<DeviceSecrets>>,
    /// The last keyring failure, as the service's typed error: the library
    /// sees only a `StoreError`, and whoever started it recognises the
    /// failure by this (see [`SessionStore::take_keyring_failure`]).
    keyring_failure: Mutex<Option<ServiceError>>,
}

impl SessionStore {
    /// Opens (creating if needed, readable only by the user) and migrates the
    /// session database at `path`. `secrets` holds the device's keyring
    /// entry, named by [`secret_name`] of `id`.
    pub fn open(
        path: &Path,
        secrets: Arc<dyn SecretStore>,
        id: &DeviceId,
    ) -> crate::Result<SessionStore> {
        SessionStore::open_named(path, secrets, secret_name(id))
    }

    /// [`SessionStore::open`] on the keyring entry named `secret_name` (a
    /// pending revocation's, see [`revocation_name`]).
    pub fn open_named(
        path: &Path,
        secrets: Arc<dyn SecretStore>,
        secret_name: String,
    ) -> crate::Result<SessionStore> {
        create_private_file(path)?;
        let cannot_open = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                ServiceError::new(
                    crate::ErrorCode::SessionDamaged,
                    "the device's session database is damaged (not a database, or corrupt)",
                )
            }
            _ => ServiceError::internal(format!("cannot open the session store: {e}")),
        };
        let mut conn = Connection::open(path).map_err(cannot_open)?;
        // Every device's store is opened at start-up; creating its `-wal`
        // and `-shm` files anew each time cost more than the rest of the
        // open (see `persistent_wal`). Kept, the WAL is cut back to
        // `WAL_SIZE_LIMIT` at close and after a commit that restarted it;
        // logout and delete remove all three files.
        persistent_wal::keep_wal_files(&conn).map_err(cannot_open)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
            .map_err(cannot_open)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // A stopped session's store can linger in the library's tasks for a
        // moment while the next one opens: wait for its lock, do not fail.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(cannot_open)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(cannot_open)?;
        // WAL with NORMAL: a commit is durable at the next checkpoint, and the
        // file is never corrupted. Losing the last ratchet step to a power
        // cut costs a Signal session retry, not the device.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(cannot_open)?;
        crate::app_db::migrate(&mut conn, MIGRATIONS, "session store").map_err(|e| {
            ServiceError::internal(format!("cannot open the session store: {}", e.message))
        })?;
        Ok(SessionStore {
            conn: Mutex::new(Some(conn)),
            secrets,
            secret_name,
            cached: Mutex::new(None),
            keyring_failure: Mutex::new(None),
        })
    }

    /// Whether the store holds a device record (every store that a client
    /// started on does; an emptied or replaced file does not).
    pub fn has_device(&self) -> crate::Result<bool> {
        self.exists_row("SELECT EXISTS(SELECT 1 FROM device)", [])
            .map_err(|e| ServiceError::internal(format!("cannot read the session store: {e}")))
    }

    /// The account JID the stored device is linked to, once its pairing
    /// completed; reads no secret.
    pub fn linked_jid(&self) -> crate::Result<Option<whatsapp_rust::Jid>> {
        let raw = self
            .blob("SELECT record FROM device WHERE id = 1", [])
            .map_err(|e| ServiceError::internal(format!("cannot read the session store: {e}")))?;
        let Some(raw) = raw else { return Ok(None) };
        let device: Device = from_json(&raw, "device record")
            .map_err(|e| ServiceError::internal(format!("cannot read the session store: {e}")))?;
        Ok(device.pn)
    }

    /// Makes the stored device one linked as `jid`, so that a client can log
    /// in with it and end the link: the stored record gets the JID if it
    /// lacks one (a link that landed as its session stopped), and a store
    /// that lost its record gets one rebuilt from the keyring entry (keys and
    /// JID, nothing more). The keys always come from the keyring entry.
    pub async fn ensure_linked_as(&self, jid: whatsapp_rust::Jid) -> crate::Result<()> {
        let failed = |e: StoreError| {
            ServiceError::internal(format!("cannot prepare the session store: {e}"))
        };
        let stored = if self.has_device()? {
            self.load().await.map_err(failed)?
        } else {
            None
        };
        let mut device = match stored {
            Some(device) => device,
            None => {
                let secrets = self.read_secrets().await.map_err(failed)?.ok_or_else(|| {
                    ServiceError::new(
                        crate::ErrorCode::NoCredentials,
                        "the device's keyring entry is gone; nothing can end its link",
                    )
                })?;
                let mut device = Device::new();
                secrets.apply_to(&mut device).map_err(failed)?;
                device
            }
        };
        if device.pn.is_some() {
            return Ok(());
        }
        device.pn = Some(jid);
        self.save(&device).await.map_err(failed)
    }

    /// Seeds the cache with the keyring entry's content, read by the caller.
    pub fn prime(&self, raw: &[u8]) -> crate::Result<()> {
        let secrets = parse_secrets(raw, &self.secret_name)
            .map_err(|why| ServiceError::internal(format!("the device's keyring entry {why}")))?;
        self.set_cached(secrets);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connection>> {
        // Every write is one statement or one transaction, so a panic while
        // holding the lock cannot leave the file half-written.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the database now (checkpointing it), whoever still holds the
    /// store: the client's tasks can outlive its session for a while, and a
    /// logout must not delete the files under an open connection. Every
    /// later call fails with a connection error.
    pub fn close(&self) {
        if let Some(conn) = self.lock().take() {
            // On failure rusqlite still frees the connection; the files are
            // consistent either way (WAL), and the caller deletes or keeps
            // them.
            let _ = conn.close();
        }
    }

    /// Runs `work` on the connection, inline (see the module docs).
    fn with_conn<T>(&self, work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        match self.lock().as_mut() {
            Some(conn) => work(conn).map_err(db_error),
            None => Err(StoreError::Connection(
                "the session store was closed: its session has ended".into(),
            )),
        }
    }

    /// Runs one statement with `params`.
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
        self.with_conn(|conn| conn.prepare_cached(sql)?.execute(params))
    }

    /// Runs `sql` once per item of `items`, in one transaction.
    fn run_each<I, P>(&self, sql: &str, items: I) -> Result<()>
    where
        I: IntoIterator<Item = P>,
        P: rusqlite::Params,
    {
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            {
                let mut statement = tx.prepare_cached(sql)?;
                for params in items {
                    statement.execute(params)?;
                }
            }
            tx.commit()
        })
    }

    /// The row `sql` selects, if any, read by `read`.
    fn optional_row<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        read: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.with_conn(|conn| conn.prepare_cached(sql)?.query_row(params, read).optional())
    }

    /// The first column of the row `sql` selects, if any.
    fn blob(&self, sql: &str, params: impl rusqlite::Params) -> Result<Option<Vec<u8>>> {
        self.optional_row(sql, params, |row| row.get(0))
    }

    /// Whether `sql` (a `SELECT EXISTS(…)`) is true.
    fn exists_row(&self, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
        self.with_conn(|conn| {
            conn.prepare_cached(sql)?
                .query_row(params, |row| row.get(0))
        })
    }

    /// The deleted-row count as the trait reports it.
    fn deleted(&self, sql: &str, params: impl rusqlite::Params) -> Result<u32> {
        Ok(u32::try_from(self.run(sql, params)?).unwrap_or(u32::MAX))
    }

    /// The keyring failure behind the last `StoreError::Connection` this
    /// store returned, if one was: taken, so that it is reported once.
    pub fn take_keyring_failure(&self) -> Option<ServiceError> {
        self.keyring_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// `err` as the library's error, recorded for
    /// [`SessionStore::take_keyring_failure`]. The service error's message
    /// carries no secret (see `secrets`).
    fn keyring_failed(&self, err: ServiceError) -> StoreError {
        let returned = StoreError::Connection(err.message.clone().into());
        *self
            .keyring_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(err);
        returned
    }

    fn cached(&self) -> Option<DeviceSecrets> {
        self.cached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_cached(&self, secrets: DeviceSecrets) {
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some(secrets);
    }

    async fn read_secrets(&self) -> Result<Option<DeviceSecrets>> {
        if let Some(cached) = self.cached() {
            return Ok(Some(cached));
        }
        let store = Arc::clone(&self.secrets);
        let name = self.secret_name.clone();
        let raw = tokio::task::spawn_blocking(move || store.get(&name))
            .await
            .map_err(|e| StoreError::Connection(Box::new(e)))?
            .map_err(|e| self.keyring_failed(e))?;
        let Some(raw) = raw else { return Ok(None) };
        let secrets = parse_secrets(&raw, &self.secret_name)
            .map_err(|why| StoreError::Validation(format!("the device's keyring entry {why}")))?;
        self.set_cached(secrets.clone());
        Ok(Some(secrets))
    }

    async fn write_secrets(&self, secrets: DeviceSecrets) -> Result<()> {
        if self.cached().as_ref() == Some(&secrets) {
            return Ok(());
        }
        let raw =
            serde_json::to_vec(&secrets).map_err(|e| StoreError::Serialization(Box::new(e)))?;
        // Under the connection's lock, and refused once the store is closed:
        // a stopped session's client can still be saving when its device is
        // logged out or linked anew, and a key written after the wipe would
        // outlive the logout (or meet the next login as someone else's
        // keys). Once `close` returns, this store writes no secret. The
        // keyring call blocks this worker for one D-Bus round trip; secrets
        // change only at pairing and key rotations.
        let conn = self.lock();
        if conn.is_none() {
            return Err(StoreError::Connection(
                "the session store was closed: its session has ended".into(),
            ));
        }
        self.secrets
            .set(&self.secret_name, &raw)
            .map_err(|e| self.keyring_failed(e))?;
        drop(conn);
        self.set_cached(secrets);
        Ok(())
    }

    async fn signed_pre_key_records(&self) -> Result<BTreeMap<u32, Vec<u8>>> {
        Ok(self
            .read_secrets()
            .await?
            .map(|s| s.signed_pre_key_records)
            .unwrap_or_default())
    }

    async fn update_records(&self, change: impl FnOnce(&mut BTreeMap<u32, Vec<u8>>)) -> Result<()> {
        let mut secrets = self.read_secrets().await?.ok_or_else(|| {
            StoreError::Validation("no keyring entry for this device's credentials".into())
        })?;
        change(&mut secrets.signed_pre_key_records);
        self.write_secrets(secrets).await
    }

    fn has_address_of_user(&self, table: &str, user: &str) -> Result<bool> {
        let sql = format!(
            "SELECT EXISTS(SELECT 1 FROM {table} WHERE (address >= ?1 AND address < ?2)
                OR (address >= ?3 AND address < ?4))"
        );
        let [(a, b), (c, d)] = user_address_ranges(user);
        self.exists_row(&sql, (a, b, c, d))
    }
}

#[async_trait]
impl SignalStore for SessionStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO identities (address, key) VALUES (?1, ?2)",
            (address, &key[..]),
        )?;
        Ok(())
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.run_each(
            "INSERT OR REPLACE INTO identities (address, key) VALUES (?1, ?2)",
            identities
                .iter()
                .map(|(address, key)| (address.as_ref(), &key[..])),
        )
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.blob("SELECT key FROM identities WHERE address = ?1", [address])?
            .map(|key| array_32(key, "identity key"))
            .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.run("DELETE FROM identities WHERE address = ?1", [address])?;
        Ok(())
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self
            .blob("SELECT record FROM sessions WHERE address = ?1", [address])?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO sessions (address, record) VALUES (?1, ?2)",
            (address, session),
        )?;
        Ok(())
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.run_each(
            "INSERT OR REPLACE INTO sessions (address, record) VALUES (?1, ?2)",
            sessions
                .iter()
                .map(|(address, record)| (address.as_ref(), record.as_ref())),
        )
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.run("DELETE FROM sessions WHERE address = ?1", [address])?;
        Ok(())
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        self.exists_row(
            "SELECT EXISTS(SELECT 1 FROM sessions WHERE address = ?1)",
            [address],
        )
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        Ok(self.has_address_of_user("sessions", user)?
            || self.has_address_of_user("identities", user)?)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO pre_keys (id, record, uploaded) VALUES (?1, ?2, ?3)",
            (id, record, uploaded),
        )?;
        Ok(())
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        self.run_each(
            "INSERT OR REPLACE INTO pre_keys (id, record, uploaded) VALUES (?1, ?2, ?3)",
            keys.iter()
                .map(|(id, record)| (id, record.as_ref(), uploaded)),
        )
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self
            .blob("SELECT record FROM pre_keys WHERE id = ?1", [id])?
            .map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        self.with_conn(|conn| {
            let mut statement = conn.prepare_cached("SELECT record FROM pre_keys WHERE id = ?1")?;
            let mut found = Vec::with_capacity(ids.len());
            for &id in ids {
                if let Some(record) = statement
                    .query_row([id], |row| row.get::<_, Vec<u8>>(0))
                    .optional()?
                {
                    found.push((id, Bytes::from(record)));
                }
            }
            Ok(found)
        })
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        // UPDATE, never upsert: a key consumed meanwhile stays deleted.
        self.run_each(
            "UPDATE pre_keys SET uploaded = 1 WHERE id = ?1",
            ids.iter().map(|id| [id]),
        )
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.run("DELETE FROM pre_keys WHERE id = ?1", [id])?;
        Ok(())
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT IFNULL(MAX(id), 0) FROM pre_keys")?
                .query_row([], |row| row.get(0))
        })
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        let record = record.to_vec();
        self.update_records(|records| {
            records.insert(id, record);
        })
        .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        Ok(self.signed_pre_key_records().await?.remove(&id))
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self.signed_pre_key_records().await?.into_iter().collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.update_records(|records| {
            records.remove(&id);
        })
        .await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO sender_keys (address, record) VALUES (?1, ?2)",
            (address, record),
        )?;
        Ok(())
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.run_each(
            "INSERT OR REPLACE INTO sender_keys (address, record) VALUES (?1, ?2)",
            sender_keys
                .iter()
                .map(|(address, record)| (address.as_ref(), record.as_ref())),
        )
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.blob(
            "SELECT record FROM sender_keys WHERE address = ?1",
            [address],
        )
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.run("DELETE FROM sender_keys WHERE address = ?1", [address])?;
        Ok(())
    }
}

#[async_trait]
impl AppSyncStore for SessionStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.optional_row(
            "SELECT key_data, fingerprint, timestamp FROM sync_keys WHERE key_id = ?1",
            [key_id],
            |row| {
                Ok(AppStateSyncKey {
                    key_data: row.get(0)?,
                    fingerprint: row.get(1)?,
                    timestamp: row.get(2)?,
                })
            },
        )
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO sync_keys (key_id, key_data, fingerprint, timestamp, stored_seq)
             VALUES (?1, ?2, ?3, ?4, (SELECT IFNULL(MAX(stored_seq), 0) + 1 FROM sync_keys))",
            (key_id, &key.key_data, &key.fingerprint, key.timestamp),
        )?;
        Ok(())
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        match self.blob(
            "SELECT state FROM app_state_versions WHERE name = ?1",
            [name],
        )? {
            Some(raw) => from_json(&raw, "app state version"),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO app_state_versions (name, state) VALUES (?1, ?2)",
            (name, to_json(&state)?),
        )?;
        Ok(())
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let version = i64::try_from(version).map_err(|_| malformed("app state version number"))?;
        self.run_each(
            "INSERT OR REPLACE INTO mutation_macs (name, index_mac, value_mac, version)
             VALUES (?1, ?2, ?3, ?4)",
            mutations
                .iter()
                .map(|m| (name, &m.index_mac, &m.value_mac, version)),
        )
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.blob(
            "SELECT value_mac FROM mutation_macs WHERE name = ?1 AND index_mac = ?2",
            (name, index_mac),
        )
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        self.with_conn(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT value_mac FROM mutation_macs WHERE name = ?1 AND index_mac = ?2",
            )?;
            let mut found = HashMap::with_capacity(index_macs.len());
            for index_mac in index_macs {
                if let Some(value_mac) = statement
                    .query_row((name, &index_mac[..]), |row| row.get(0))
                    .optional()?
                {
                    found.insert(*index_mac, value_mac);
                }
            }
            Ok(found)
        })
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        self.run_each(
            "DELETE FROM mutation_macs WHERE name = ?1 AND index_mac = ?2",
            index_macs.iter().map(|index_mac| (name, index_mac)),
        )
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.run("DELETE FROM mutation_macs WHERE name = ?1", [name])?;
        Ok(())
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.blob(
            "SELECT key_id FROM sync_keys ORDER BY stored_seq DESC LIMIT 1",
            [],
        )
    }
}

fn lid_mapping_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<LidPnMappingEntry> {
    Ok(LidPnMappingEntry {
        lid: row.get(0)?,
        phone_number: row.get(1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
        learning_source: row.get(4)?,
    })
}

const INSERT_LID_MAPPING: &str = "INSERT OR REPLACE INTO lid_mappings
    (lid, phone_number, created_at, updated_at, learning_source) VALUES (?1, ?2, ?3, ?4, ?5)";

fn lid_mapping_params(entry: &LidPnMappingEntry) -> impl rusqlite::Params + '_ {
    (
        &entry.lid,
        &entry.phone_number,
        entry.created_at,
        entry.updated_at,
        &entry.learning_source,
    )
}

const INSERT_PENDING_INBOUND: &str = "INSERT OR REPLACE INTO pending_inbound
    (chat, sender, id, message, stored_at) VALUES (?1, ?2, ?3, ?4, ?5)";

#[async_trait]
impl ProtocolStore for SessionStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT device_jid, has_key FROM sender_key_devices WHERE group_jid = ?1",
            )?
            .query_map([group_jid], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect()
        })
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.run_each(
            "INSERT OR REPLACE INTO sender_key_devices (group_jid, device_jid, has_key)
             VALUES (?1, ?2, ?3)",
            entries
                .iter()
                .map(|(device_jid, has_key)| (group_jid, device_jid, has_key)),
        )
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.run(
            "DELETE FROM sender_key_devices WHERE group_jid = ?1",
            [group_jid],
        )?;
        Ok(())
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.run("DELETE FROM sender_key_devices", [])?;
        Ok(())
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        self.run_each(
            "DELETE FROM sender_key_devices WHERE device_jid = ?1",
            device_jids.iter().map(|jid| [jid]),
        )
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.optional_row(
            "SELECT lid, phone_number, created_at, updated_at, learning_source
             FROM lid_mappings WHERE lid = ?1",
            [lid],
            lid_mapping_from_row,
        )
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        // A phone number can have had several LIDs: the most recent one.
        self.optional_row(
            "SELECT lid, phone_number, created_at, updated_at, learning_source
             FROM lid_mappings WHERE phone_number = ?1 ORDER BY updated_at DESC LIMIT 1",
            [phone],
            lid_mapping_from_row,
        )
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.run(INSERT_LID_MAPPING, lid_mapping_params(entry))?;
        Ok(())
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        self.run_each(INSERT_LID_MAPPING, entries.iter().map(lid_mapping_params))
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT lid, phone_number, created_at, updated_at, learning_source
                 FROM lid_mappings",
            )?
            .query_map([], lid_mapping_from_row)?
            .collect()
        })
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO base_keys (address, message_id, base_key) VALUES (?1, ?2, ?3)",
            (address, message_id, base_key),
        )?;
        Ok(())
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.exists_row(
            "SELECT EXISTS(SELECT 1 FROM base_keys
                WHERE address = ?1 AND message_id = ?2 AND base_key = ?3)",
            (address, message_id, current_base_key),
        )
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.run(
            "DELETE FROM base_keys WHERE address = ?1 AND message_id = ?2",
            (address, message_id),
        )?;
        Ok(())
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO device_lists (user, record) VALUES (?1, ?2)",
            (&record.user, to_json(&record)?),
        )?;
        Ok(())
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let rows = records
            .iter()
            .map(|record| Ok((record.user.as_str(), to_json(record)?)))
            .collect::<Result<Vec<_>>>()?;
        self.run_each(
            "INSERT OR REPLACE INTO device_lists (user, record) VALUES (?1, ?2)",
            rows.iter().map(|(user, raw)| (user, raw)),
        )
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.blob("SELECT record FROM device_lists WHERE user = ?1", [user])?
            .map(|raw| from_json(&raw, "device list"))
            .transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.run("DELETE FROM device_lists WHERE user = ?1", [user])?;
        Ok(())
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.blob(
            "SELECT blob FROM group_metadata WHERE group_jid = ?1",
            [group_jid],
        )
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO group_metadata (group_jid, blob) VALUES (?1, ?2)",
            (group_jid, blob),
        )?;
        Ok(())
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.run(
            "DELETE FROM group_metadata WHERE group_jid = ?1",
            [group_jid],
        )?;
        Ok(())
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.optional_row(
            "SELECT token, token_timestamp, sender_timestamp FROM tc_tokens WHERE jid = ?1",
            [jid],
            |row| {
                Ok(TcTokenEntry {
                    token: row.get(0)?,
                    token_timestamp: row.get(1)?,
                    sender_timestamp: row.get(2)?,
                })
            },
        )
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO tc_tokens (jid, token, token_timestamp, sender_timestamp)
             VALUES (?1, ?2, ?3, ?4)",
            (
                jid,
                &entry.token,
                entry.token_timestamp,
                entry.sender_timestamp,
            ),
        )?;
        Ok(())
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.run("DELETE FROM tc_tokens WHERE jid = ?1", [jid])?;
        Ok(())
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT jid FROM tc_tokens")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        // A row goes only when both its received token and its sender bucket
        // are stale or absent.
        self.deleted(
            "DELETE FROM tc_tokens WHERE NOT (
                (length(token) > 0 AND token_timestamp >= ?1)
                OR (sender_timestamp IS NOT NULL AND sender_timestamp >= ?2))",
            (token_cutoff, sender_cutoff),
        )
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        // One statement, so atomic against `store_received_tc_token`; the
        // bucket only moves forward.
        self.run(
            "INSERT INTO tc_tokens (jid, token, token_timestamp, sender_timestamp)
             VALUES (?1, x'', ?2, ?2)
             ON CONFLICT (jid) DO UPDATE SET sender_timestamp =
                max(IFNULL(tc_tokens.sender_timestamp, excluded.sender_timestamp),
                    excluded.sender_timestamp)",
            (jid, sender_timestamp),
        )?;
        Ok(())
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        // Newer wins, a placeholder never blocks a real token, and the sender
        // bucket is kept: one statement, so atomic.
        self.run(
            "INSERT INTO tc_tokens (jid, token, token_timestamp, sender_timestamp)
             VALUES (?1, ?2, ?3, NULL)
             ON CONFLICT (jid) DO UPDATE SET
                token = excluded.token, token_timestamp = excluded.token_timestamp
             WHERE length(tc_tokens.token) = 0
                OR excluded.token_timestamp >= tc_tokens.token_timestamp",
            (jid, token, token_timestamp),
        )?;
        Ok(())
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.run(
            "INSERT OR REPLACE INTO sent_messages (chat_jid, message_id, payload, sent_at)
             VALUES (?1, ?2, ?3, ?4)",
            (chat_jid, message_id, payload, now_secs()),
        )?;
        Ok(())
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.blob(
            "DELETE FROM sent_messages WHERE chat_jid = ?1 AND message_id = ?2 RETURNING payload",
            (chat_jid, message_id),
        )
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.deleted(
            "DELETE FROM sent_messages WHERE sent_at < ?1",
            [cutoff_timestamp],
        )
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.run(
            INSERT_PENDING_INBOUND,
            (chat, sender, id, message, now_secs()),
        )?;
        Ok(())
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.blob(
            "SELECT message FROM pending_inbound WHERE chat = ?1 AND sender = ?2 AND id = ?3",
            (chat, sender, id),
        )
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.run(
            "DELETE FROM pending_inbound WHERE chat = ?1 AND sender = ?2 AND id = ?3",
            (chat, sender, id),
        )?;
        Ok(())
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.deleted(
            "DELETE FROM pending_inbound WHERE stored_at < ?1",
            [cutoff_timestamp],
        )
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let now = now_secs();
        self.run_each(
            INSERT_PENDING_INBOUND,
            rows.iter()
                .map(|row| (row.chat, row.sender, row.id, row.message, now)),
        )
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.run_each(
            "DELETE FROM pending_inbound WHERE chat = ?1 AND sender = ?2 AND id = ?3",
            keys.iter().map(|key| (key.chat, key.sender, key.id)),
        )
    }
}

#[async_trait]
impl MsgSecretStore for SessionStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        // On a key conflict the secret is replaced, the deadline only grows
        // (0 = never wins) and a known parent time is never cleared: the
        // trait's `merge_msg_secret_expiry` and `merge_msg_secret_message_ts`.
        self.run_each(
            "INSERT INTO msg_secrets (chat, sender, msg_id, secret, expires_at, message_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (chat, sender, msg_id) DO UPDATE SET
                secret = excluded.secret,
                expires_at = CASE
                    WHEN msg_secrets.expires_at = 0 OR excluded.expires_at = 0 THEN 0
                    ELSE max(msg_secrets.expires_at, excluded.expires_at) END,
                message_ts = max(msg_secrets.message_ts, excluded.message_ts)",
            entries.iter().map(|e| {
                (
                    e.chat.as_ref(),
                    e.sender.as_ref(),
                    e.msg_id.as_ref(),
                    &e.secret[..],
                    e.expires_at,
                    e.message_ts,
                )
            }),
        )?;
        Ok(entries.len())
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.optional_row(
            "SELECT secret, message_ts FROM msg_secrets
             WHERE chat = ?1 AND sender = ?2 AND msg_id = ?3",
            (chat, sender, msg_id),
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.deleted(
            "DELETE FROM msg_secrets WHERE expires_at != 0 AND expires_at <= ?1",
            [cutoff_timestamp],
        )
    }
}

#[async_trait]
impl DeviceStore for SessionStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let existing = self.read_secrets().await?;
        let records = existing
            .as_ref()
            .map(|s| s.signed_pre_key_records.clone())
            .unwrap_or_default();
        let secrets = DeviceSecrets::of(&self.secret_name, device, records);
        // A store without a device while the keyring holds other keys is
        // damaged (emptied, replaced): the device being saved is a fresh one
        // the library built over it, and writing it would destroy the only
        // keys that can still end the existing link.
        if existing.is_some_and(|e| e.identity_key != secrets.identity_key)
            && !self.exists_row("SELECT EXISTS(SELECT 1 FROM device)", [])?
        {
            return Err(StoreError::Validation(KEYS_WOULD_BE_REPLACED.into()));
        }
        self.write_secrets(secrets).await?;
        self.run(
            "INSERT OR REPLACE INTO device (id, record) VALUES (1, ?1)",
            [to_json(&scrubbed(device)?)?],
        )?;
        Ok(())
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(raw) = self.blob("SELECT record FROM device WHERE id = 1", [])? else {
            return Ok(None);
        };
        let mut device: Device = from_json(&raw, "device record")?;
        // Not persisted (serde skips them): what this build sends.
        device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
        device.client_profile = wacore::client_profile::ClientProfile::web();
        let secrets = self.read_secrets().await?.ok_or_else(|| {
            StoreError::Validation(
                "the session store exists but the device's keyring entry is missing".into(),
            )
        })?;
        secrets.apply_to(&mut device)?;
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        self.exists_row("SELECT EXISTS(SELECT 1 FROM device)", [])
    }

    async fn create(&self) -> Result<i32> {
        // Never over an existing device: that would replace its credentials
        // with fresh keys, and the link to the phone would be lost.
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        // One device per store: its row id is always 1.
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecretStore;

    #[tokio::test]
    async fn a_saved_entry_carries_its_name_and_one_naming_another_device_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let keyring = Arc::new(MemorySecretStore::default());
        let id = DeviceId::parse("phone-1").expect("valid id");
        let store = SessionStore::open(&dir.path().join("session.db"), keyring.clone(), &id)
            .expect("opens");
        store.create().await.expect("creates");
        let raw = keyring
            .get("device/phone-1")
            .expect("reads")
            .expect("saved");
        assert_eq!(secret_entry_name(&raw).as_deref(), Some("device/phone-1"));
        assert!(parse_secrets(&raw, "device/phone-1").is_ok());

        // The same secrets under another device's entry: refused, whatever
        // path reads them.
        assert_eq!(
            parse_secrets(&raw, "device/phone-2").map(|_| ()),
            Err("belongs to another device")
        );
        store.close();
        let other = DeviceId::parse("phone-2").expect("valid id");
        keyring.set("device/phone-2", &raw).expect("writes");
        let store = SessionStore::open(&dir.path().join("session.db"), keyring.clone(), &other)
            .expect("opens");
        let err = store.prime(&raw).expect_err("refused");
        assert!(err.message.contains("belongs to another device"), "{err:?}");
        assert!(store.load().await.is_err());
    }

    #[test]
    fn an_entry_written_before_names_were_carried_still_parses() {
        let mut secrets: serde_json::Value = serde_json::from_slice(
            &serde_json::to_vec(&DeviceSecrets {
                entry: Some("device/a".into()),
                noise_key: vec![1; 64],
                identity_key: vec![2; 64],
                signed_pre_key: vec![3; 64],
                adv_secret_key: vec![4; 32],
                signed_pre_key_records: BTreeMap::new(),
            })
            .expect("serializes"),
        )
        .expect("parses");
        secrets.as_object_mut().expect("object").remove("entry");
        let raw = serde_json::to_vec(&secrets).expect("serializes");
        assert_eq!(secret_entry_name(&raw), None);
        assert!(parse_secrets(&raw, "device/a").is_ok_and(|s| s.entry.is_none()));
        assert_eq!(secret_entry_name(b"not json"), None);
    }
}
