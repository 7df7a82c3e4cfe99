//! The database: bundled SQLite in WAL mode, one writer thread, a pool of readers.

pub mod backup;
pub mod health;
pub mod migrations;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use migrations::Migration;
pub use writer::Durability;

pub const DB_FILE: &str = "jetrack.db";
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READERS: u32 = 8;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// Pragmas every connection gets. `synchronous` is NORMAL here; the writer raises it to FULL
/// for the transactions that must be durable when confirmed (accounts, sessions, keys).
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA synchronous = NORMAL;",
    )
}

/// Opens a connection, refusing a database from a newer version before changing anything,
/// then switches it to WAL and applies the pragmas.
pub fn open_connection(path: &Path, migrations: &[Migration]) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    migrations::ensure_not_newer(&conn, migrations)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Internal(format!(
            "could not switch the database to WAL (got {mode})"
        )));
    }
    configure(&conn)?;
    Ok(conn)
}

/// Opens an existing database read-only, without creating or migrating anything.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The SQLite library version compiled into the executable.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// Shared handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    writer: writer::Writer,
    path: std::path::PathBuf,
}

impl Db {
    /// Opens (creating when missing) `DATA_DIR/jetrack.db`, migrates it, starts the writer.
    pub fn open(data_dir: &Path, queue_capacity: usize) -> Result<Db> {
        Self::open_with(data_dir, queue_capacity, migrations::MIGRATIONS)
    }

    pub fn open_with(
        data_dir: &Path,
        queue_capacity: usize,
        migrations: &[Migration],
    ) -> Result<Db> {
        let path = data_dir.join(DB_FILE);
        let conn = open_connection(&path, migrations)?;
        migrations::migrate(&conn, migrations, &data_dir.join(backup::BACKUP_DIR))?;
        let manager = SqliteConnectionManager::file(&path).with_init(|c| {
            configure(c)?;
            c.execute_batch("PRAGMA query_only = ON;")
        });
        let pool = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)?;
        // The writer revisits the same index pages all the time: keep more of them at hand.
        conn.execute_batch("PRAGMA cache_size = -32768")?;
        let writer = writer::Writer::start(conn, queue_capacity)?;
        Ok(Db { pool, writer, path })
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .map_err(|e| Error::Internal(format!("reader task failed: {e}")))?
    }

    /// Runs `f` inside a write transaction on the writer thread; answers after the commit.
    pub async fn write<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.submit(durability, f).await
    }

    /// Like [`Db::write`], but a full queue answers 503 at once (ingestion).
    pub async fn try_write<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.try_submit(durability, f).await
    }

    /// Sets what hears of each write batch's commit time.
    pub fn observe_commits(&self, observer: writer::CommitObserver) {
        self.writer.observe_commits(observer);
    }

    /// Like [`Db::try_write`] for a small job that may be run twice (see
    /// `writer::Writer::try_submit_light`): many of them share one savepoint.
    pub async fn try_write_light<F>(&self, f: F) -> Result<()>
    where
        F: FnMut(&Connection) -> Result<()> + Send + 'static,
    {
        self.writer.try_submit_light(f).await
    }

    /// `Err(reason)` while the latest write of the last minute could not be committed.
    pub fn write_health(&self) -> std::result::Result<(), String> {
        self.writer.health().status()
    }

    /// Jobs waiting for the writer, and the queue's capacity.
    pub fn queue(&self) -> (usize, usize) {
        self.writer.queue()
    }

    /// The database file and its WAL, in bytes (0 when missing).
    pub fn file_sizes(&self) -> (u64, u64) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = self.path.with_file_name(format!("{DB_FILE}-wal"));
        (size(&self.path), size(&wal))
    }

    /// Like [`Db::write`] without waiting for the answer; failures are logged.
    pub fn write_detached<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        self.writer.submit_detached(f);
    }

    /// Commits everything queued, then stops the writer. Later writes fail with 503.
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
    }
}

/// For tests: a migrated database in a temporary folder, with one website (`w1`, site 1,
/// `example.com`) and no account.
#[cfg(test)]
pub(crate) fn test_database() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open_connection(&dir.path().join("j.db"), migrations::MIGRATIONS).unwrap();
    migrations::migrate(&conn, migrations::MIGRATIONS, &dir.path().join("backups")).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO websites (id, account_id, name, domain, created_at)
         VALUES ('w1', 'a1', 'Site', 'example.com', 0);
         PRAGMA foreign_keys = ON;",
    )
    .unwrap();
    (dir, conn)
}
