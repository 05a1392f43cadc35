//! The embedded online store: one SQLite file in WAL mode, one table per feature view.
//!
//! Table `"<project>:<view>"` holds `(entity_key BLOB PRIMARY KEY, event_ts INTEGER,
//! created_ts INTEGER, value BLOB)` WITHOUT ROWID; `banquet_views (project, view)` records
//! which tables a project owns, so `teardown` drops exactly those. Timestamps are UTC
//! microseconds. A write is one transaction of one prepared upsert whose `WHERE` keeps the
//! newer `(event_ts, created_ts)`, so an older event never replaces a newer one.
//!
//! SQLite comes bundled: this is the only SQLite in the process that opens the file (two
//! SQLite copies in one process would release each other's POSIX locks). Connections are
//! pooled, each with its own prepared-statement cache; a connection is used by one thread at
//! a time, so readers on several threads run in parallel (WAL).
//!
//! Checkpoints (copying the WAL into the database file, with its fsyncs) run on a background
//! thread instead of inside the committing write: a commit that leaves at least
//! `CHECKPOINT_PAGES` pages in the WAL starts one `PASSIVE` checkpoint unless one is running.
//! This is SQLite's own auto-checkpoint rule, moved off the writer's path (on a 100k-row
//! write it was ~40% of the time). Committed rows are visible to readers either way.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::builder::BinaryBuilder;
use arrow_array::BinaryArray;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// The table recording which tables belong to which project.
const VIEWS: &str = "banquet_views";
/// Idle connections kept for reuse; more threads than this still work, they just reconnect.
const MAX_IDLE: usize = 16;
/// Prepared statements cached per connection (a read uses one per view).
const STATEMENTS: usize = 256;
/// Page size of a new database file (an existing file keeps its own). 64 KiB pages made a
/// 100k-row upsert into a fresh table ~20-25% faster than SQLite's default 4 KiB (fewer page
/// splits and B-tree levels); point lookups stay two page visits.
const PAGE_SIZE: i32 = 65536;
/// WAL size (pages) after a commit that starts a background checkpoint: SQLite's default
/// auto-checkpoint threshold in bytes (1000 pages of 4 KiB), in our page size.
const CHECKPOINT_PAGES: i32 = 4_096_000 / PAGE_SIZE;
/// The same while checkpoints are held (a bulk write): 256 MiB, so a large materialization
/// still keeps its WAL bounded.
const HELD_CHECKPOINT_PAGES: i32 = (256 << 20) / PAGE_SIZE;

thread_local! {
    /// Pages in the WAL after this thread's last commit (set by the WAL hook during COMMIT).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|c| c.set(pages));
    Ok(())
}

/// The quoted table name of `(project, view)`. `:` cannot occur in either name, so no two
/// pairs share a table.
pub fn table_name(project: &str, view: &str) -> String {
    format!("\"{}\"", format!("{project}:{view}").replace('"', "\"\""))
}

/// The point lookup of one value in `(project, view)`'s table.
pub fn select_sql(project: &str, view: &str) -> String {
    format!(
        "SELECT value FROM {} WHERE entity_key = ?1",
        table_name(project, view)
    )
}

/// The upsert; with `overwrite` a given row replaces the stored one whatever their times
/// (the way to correct a wrongly future-dated value), else only when it is not older.
fn upsert_sql(project: &str, view: &str, overwrite: bool) -> String {
    let t = table_name(project, view);
    let newer = if overwrite {
        String::new()
    } else {
        format!(" WHERE (excluded.event_ts, excluded.created_ts) >= ({t}.event_ts, {t}.created_ts)")
    };
    format!(
        "INSERT INTO {t} (entity_key, event_ts, created_ts, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(entity_key) DO UPDATE SET event_ts = excluded.event_ts, \
         created_ts = excluded.created_ts, value = excluded.value{newer}"
    )
}

/// One row to write. A `None` value is refused by the table (NOT NULL) and fails the batch.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub key: &'a [u8],
    pub event_ts: i64,
    pub created_ts: i64,
    pub value: Option<&'a [u8]>,
}

/// A SQLite online store at one path.
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// What the store and its checkpoint thread share.
struct Shared {
    path: PathBuf,
    /// The process that opened the idle connections, and the connections.
    idle: Mutex<(u32, Vec<Connection>)>,
    checkpointing: AtomicBool,
    /// Holders of [`SqliteStore::hold_checkpoints`]; while > 0 small checkpoints wait.
    holders: AtomicUsize,
    /// A checkpoint was skipped while held: run one on release.
    deferred: AtomicBool,
}

/// A pooled connection, handed back on drop.
pub struct Conn<'a> {
    store: &'a Shared,
    conn: Option<Connection>,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        // Never pool a connection left inside a transaction (a panic mid-write).
        let mut idle = self.store.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.0 != std::process::id() {
            std::mem::forget(conn); // opened before a fork: see `Shared::conn`
        } else if conn.is_autocommit() && idle.1.len() < MAX_IDLE {
            idle.1.push(conn);
        }
    }
}

fn store_err(e: rusqlite::Error) -> Error {
    Error::Store(e.to_string())
}

/// The error for a failed statement on `view`'s table: a missing table names the view.
fn view_err(e: rusqlite::Error, view: &str) -> Error {
    if e.to_string().contains("no such table") {
        Error::MissingTable(view.to_string())
    } else {
        store_err(e)
    }
}

impl SqliteStore {
    /// A store at `path`. Nothing is opened until the first use; then the parent folder and
    /// the file are created if missing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteStore {
            shared: Arc::new(Shared {
                path: path.into(),
                idle: Mutex::new((std::process::id(), Vec::new())),
                checkpointing: AtomicBool::new(false),
                holders: AtomicUsize::new(0),
                deferred: AtomicBool::new(false),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A connection from the pool, or a new one.
    pub fn conn(&self) -> Result<Conn<'_>> {
        self.shared.conn()
    }

    /// True while a background checkpoint runs.
    pub fn checkpointing(&self) -> bool {
        self.shared.checkpointing.load(Ordering::Acquire)
    }

    /// Hold back background checkpoints until the matching
    /// [`release_checkpoints`](Self::release_checkpoints) (counted; for bulk writes): the
    /// checkpoint's fsyncs otherwise stall whatever else writes to the disk meanwhile (a
    /// registry update after a materialization waited ~40 ms for it). The WAL still gets a
    /// checkpoint past `HELD_CHECKPOINT_PAGES`.
    pub fn hold_checkpoints(&self) {
        self.shared.holders.fetch_add(1, Ordering::AcqRel);
    }

    /// Undo one [`hold_checkpoints`](Self::hold_checkpoints); the last one starts the
    /// checkpoint that was held back, in the background.
    pub fn release_checkpoints(&self) {
        let before = self
            .shared
            .holders
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) && self.shared.deferred.swap(false, Ordering::AcqRel) {
            self.start_checkpoint();
        }
    }

    /// After a commit on this thread: start a background checkpoint if the WAL has grown
    /// past `CHECKPOINT_PAGES` (`HELD_CHECKPOINT_PAGES` while held) and none is running.
    fn after_commit(&self) {
        let pages = WAL_PAGES.with(|c| c.replace(0));
        if pages < CHECKPOINT_PAGES {
            return;
        }
        if pages < HELD_CHECKPOINT_PAGES && self.shared.holders.load(Ordering::Acquire) > 0 {
            self.shared.deferred.store(true, Ordering::Release);
            return;
        }
        self.start_checkpoint();
    }

    /// One `PASSIVE` checkpoint on a background thread, unless one is running.
    fn start_checkpoint(&self) {
        if self.shared.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let run = move || {
            // PASSIVE: never waits for readers or writers; what it cannot copy now, the
            // next one will. Errors only delay the checkpoint.
            if let Ok(conn) = shared.conn() {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            shared.checkpointing.store(false, Ordering::Release);
        };
        let spawned = std::thread::Builder::new()
            .name("banquet-sqlite-checkpoint".into())
            .spawn(run);
        if spawned.is_err() {
            self.shared.checkpointing.store(false, Ordering::Release);
        }
    }
}

impl Shared {
    fn conn(&self) -> Result<Conn<'_>> {
        let pooled = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let pid = std::process::id();
            if idle.0 != pid {
                // A forked child must not use (or close) the parent's connections: SQLite
                // connections do not survive fork. Leak them and start afresh.
                idle.1.drain(..).for_each(std::mem::forget);
                idle.0 = pid;
            }
            idle.1.pop()
        };
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        Ok(Conn {
            store: self,
            conn: Some(conn),
        })
    }

    fn connect(&self) -> Result<Connection> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Store(format!("cannot create folder {}: {e}", dir.display()))
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)
            .map_err(|e| Error::Store(format!("cannot open {}: {e}", self.path.display())))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(store_err)?;
        // Before WAL: the page size of a new file is fixed by its first write, and a WAL
        // file's can no longer change. A no-op on an existing file.
        conn.execute_batch(&format!("PRAGMA page_size={PAGE_SIZE};"))
            .map_err(store_err)?;
        // WAL is persistent in the file; setting it again is a no-op.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(store_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Store(format!(
                "{} cannot use WAL mode (journal_mode is {mode})",
                self.path.display()
            )));
        }
        // NORMAL: a commit is durable once the WAL is checkpointed; a crash loses at most the
        // last transactions, never consistency. 128 MiB of cache keeps bulk upserts in memory.
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-131072;")
            .map_err(store_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENTS);
        // Replaces SQLite's auto-checkpoint: see `after_commit`.
        conn.wal_hook(Some(note_wal_pages));
        Ok(conn)
    }
}

impl SqliteStore {
    /// Closes the idle connections. The store stays usable: the next call reconnects.
    pub fn close(&self) {
        let mut idle = self.shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.0 == std::process::id() {
            idle.1.clear();
        }
    }

    /// Makes `view`'s table and records it for `project` (idempotent).
    pub fn create_view(&self, project: &str, view: &str) -> Result<()> {
        let conn = self.conn()?;
        let tx = Tx::begin(&conn, "BEGIN IMMEDIATE")?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {} (entity_key BLOB PRIMARY KEY, \
             event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, value BLOB NOT NULL) \
             WITHOUT ROWID; \
             CREATE TABLE IF NOT EXISTS {VIEWS} (project TEXT, view TEXT, \
             PRIMARY KEY (project, view));",
            table_name(project, view)
        ))
        .map_err(store_err)?;
        conn.execute(
            &format!("INSERT OR IGNORE INTO {VIEWS} VALUES (?1, ?2)"),
            (project, view),
        )
        .map_err(store_err)?;
        tx.commit()
    }

    /// Removes `view`'s table and its record (idempotent).
    pub fn drop_view(&self, project: &str, view: &str) -> Result<()> {
        let conn = self.conn()?;
        let tx = Tx::begin(&conn, "BEGIN IMMEDIATE")?;
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS {}",
            table_name(project, view)
        ))
        .map_err(store_err)?;
        if has_table(&conn, VIEWS)? {
            conn.execute(
                &format!("DELETE FROM {VIEWS} WHERE project = ?1 AND view = ?2"),
                (project, view),
            )
            .map_err(store_err)?;
        }
        tx.commit()
    }

    /// Drops every table `project` owns (and nothing else).
    pub fn teardown(&self, project: &str) -> Result<()> {
        let views: Vec<String> = {
            let conn = self.conn()?;
            if !has_table(&conn, VIEWS)? {
                return Ok(());
            }
            let mut stmt = conn
                .prepare(&format!("SELECT view FROM {VIEWS} WHERE project = ?1"))
                .map_err(store_err)?;
            let rows = stmt.query_map([project], |r| r.get(0)).map_err(store_err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(store_err)?
        };
        for view in views {
            self.drop_view(project, &view)?;
        }
        Ok(())
    }

    /// Upserts `rows` into `view`'s table in one transaction; a row replaces the stored one
    /// only if its `(event_ts, created_ts)` is not older. On any error nothing is written.
    /// Returns the number of rows given.
    pub fn write<'a>(
        &self,
        project: &str,
        view: &str,
        rows: impl IntoIterator<Item = Row<'a>>,
    ) -> Result<usize> {
        self.write_rows(project, view, rows, false)
    }

    /// `write`; with `overwrite` every given row replaces the stored one, newer or not.
    pub fn write_rows<'a>(
        &self,
        project: &str,
        view: &str,
        rows: impl IntoIterator<Item = Row<'a>>,
        overwrite: bool,
    ) -> Result<usize> {
        let conn = self.conn()?;
        let tx = Tx::begin(&conn, "BEGIN IMMEDIATE")?;
        let mut n = 0;
        {
            let mut stmt = conn
                .prepare_cached(&upsert_sql(project, view, overwrite))
                .map_err(|e| view_err(e, view))?;
            for row in rows {
                stmt.raw_bind_parameter(1, row.key).map_err(store_err)?;
                stmt.raw_bind_parameter(2, row.event_ts)
                    .map_err(store_err)?;
                stmt.raw_bind_parameter(3, row.created_ts)
                    .map_err(store_err)?;
                stmt.raw_bind_parameter(4, row.value).map_err(store_err)?;
                stmt.raw_execute().map_err(|e| view_err(e, view))?;
                n += 1;
            }
        }
        tx.commit()?;
        drop(conn);
        self.after_commit();
        Ok(n)
    }

    /// For each `(view, keys)` request, the stored value of each key (null when absent), in
    /// key order. Each key is one lookup through a cached prepared statement; all requests
    /// read one snapshot.
    pub fn read(&self, project: &str, requests: &[(&str, Vec<&[u8]>)]) -> Result<Vec<BinaryArray>> {
        let sql: Vec<String> = requests
            .iter()
            .map(|(v, _)| select_sql(project, v))
            .collect();
        let views: Vec<(&str, &str, &[&[u8]])> = requests
            .iter()
            .zip(&sql)
            .map(|((v, keys), sql)| (*v, sql.as_str(), keys.as_slice()))
            .collect();
        self.read_views(&views)
    }

    /// [`read`](Self::read) with each view's statement given: `(view name, SQL from
    /// [`select_sql`], keys)`. For callers that keep the statements between calls.
    pub fn read_views(&self, views: &[(&str, &str, &[&[u8]])]) -> Result<Vec<BinaryArray>> {
        let conn = self.conn()?;
        let lookups: usize = views.iter().map(|(_, _, k)| k.len()).sum();
        // One read transaction when there is more than one lookup: one snapshot, and the
        // WAL read lock is taken once instead of per statement.
        let tx = if lookups > 1 {
            Some(Tx::begin(&conn, "BEGIN")?)
        } else {
            None
        };
        let mut out = Vec::with_capacity(views.len());
        for &(view, sql, keys) in views {
            let mut stmt = conn.prepare_cached(sql).map_err(|e| view_err(e, view))?;
            let mut builder = BinaryBuilder::with_capacity(keys.len(), 128 * keys.len());
            for key in keys {
                stmt.raw_bind_parameter(1, *key).map_err(store_err)?;
                let mut rows = stmt.raw_query();
                match rows.next().map_err(|e| view_err(e, view))? {
                    Some(row) => match row.get_ref(0).map_err(store_err)? {
                        ValueRef::Blob(b) => builder.append_value(b),
                        other => {
                            return Err(Error::Corrupt(format!(
                                "feature view '{view}': a stored value is {:?}, not a blob",
                                other.data_type()
                            )))
                        }
                    },
                    None => builder.append_null(),
                }
            }
            out.push(builder.finish());
        }
        if let Some(tx) = tx {
            tx.commit()?;
        }
        Ok(out)
    }

    /// Runs one SQL statement and returns its rows: for inspection and tests, through the
    /// same SQLite as the store (opening the file with another SQLite in this process would
    /// break its locks).
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(sql).map_err(store_err)?;
        let ncols = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(store_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(store_err)? {
            out.push(
                (0..ncols)
                    .map(|i| row.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(store_err)?,
            );
        }
        Ok(out)
    }
}

/// A transaction on a pooled connection, rolled back on drop unless committed (an error or
/// a panic midway leaves nothing written and no lock held).
struct Tx<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Tx<'c> {
    /// `begin` is `BEGIN` or `BEGIN IMMEDIATE`; both statements are cached (parsing them
    /// per call was a visible share of a one-key read).
    fn begin(conn: &'c Connection, begin: &str) -> Result<Self> {
        conn.prepare_cached(begin)
            .and_then(|mut s| s.execute([]))
            .map_err(store_err)?;
        Ok(Tx { conn, open: true })
    }

    fn commit(mut self) -> Result<()> {
        self.open = false;
        let done = self
            .conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]));
        if let Err(e) = done {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(store_err(e));
        }
        Ok(())
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(store_err)
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
