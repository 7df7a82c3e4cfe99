//! The single writer: one thread owns the write connection and commits whatever is queued as
//! soon as its previous commit finishes (group commit). Each job runs in its own savepoint, so
//! one failing job never takes the others of its batch down. Callers hear back after COMMIT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// How a write must survive a power loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced to disk before the caller hears back (`synchronous = FULL`): accounts, sessions, keys.
    Full,
    /// Survives a process crash at once and a power loss within a second (`synchronous = NORMAL`
    /// plus a checkpoint every second): ingestion and bookkeeping.
    Normal,
}

const MAX_BATCH: usize = 4096;

/// Batches rolled back as a whole in this process. Caches of what the database holds (the
/// ingest string numbers) compare it to know when to start over.
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);

pub fn rollbacks() -> u64 {
    ROLLBACKS.load(Ordering::Acquire)
}

pub(crate) fn note_rollback() {
    ROLLBACKS.fetch_add(1, Ordering::AcqRel);
}
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Told after COMMIT whether it succeeded.
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs a job on the connection, or, given none, fails it without running (the batch could
/// not start); says whether it succeeded and how to answer its caller.
type Run = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

enum Msg {
    Job { durability: Durability, run: Run },
    Tick,
    Shutdown(oneshot::Sender<()>),
}

/// Told how long each commit of a batch took (for the metrics).
pub type CommitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    on_commit: Arc<OnceLock<CommitObserver>>,
}

fn busy() -> Error {
    Error::Unavailable {
        message: "The database is busy; try again shortly".into(),
        retry_after: 2,
    }
}

fn shutting_down() -> Error {
    Error::Unavailable {
        message: "The server is shutting down".into(),
        retry_after: 5,
    }
}

impl Writer {
    pub fn start(conn: Connection, capacity: usize) -> Result<Writer> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let on_commit: Arc<OnceLock<CommitObserver>> = Arc::default();
        let observer = Arc::clone(&on_commit);
        thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || run(conn, rx, &observer))?;
        let writer = Writer { tx, on_commit };
        writer.start_ticker();
        Ok(writer)
    }

    /// Wakes the writer every second so that a quiet database still gets its sync.
    fn start_ticker(&self) {
        let tx = self.tx.downgrade();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let mut every = tokio::time::interval(SYNC_EVERY);
            loop {
                every.tick().await;
                let Some(tx) = tx.upgrade() else { return };
                if tx.try_send(Msg::Tick).is_err() && tx.is_closed() {
                    return;
                }
            }
        });
    }

    fn job<T, F>(durability: Durability, f: F) -> (Msg, oneshot::Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            let outcome = match conn {
                Some(conn) => f(conn),
                None => Err(busy()),
            };
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => outcome,
                    Err(e) if ok => {
                        tracing::error!(error = %e, "a write batch failed to commit");
                        Err(busy())
                    }
                    Err(_) => outcome,
                };
                let _ = reply_tx.send(answer);
            });
            (ok, reply)
        });
        (Msg::Job { durability, run }, reply_rx)
    }

    pub async fn submit<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (msg, reply) = Self::job(durability, f);
        self.tx.send(msg).await.map_err(|_| shutting_down())?;
        reply.await.map_err(|_| shutting_down())?
    }

    /// Like [`Writer::submit`], but answers 503 at once when the queue is full instead of
    /// waiting for room: for ingestion, where a client can retry and must never hang.
    pub async fn try_submit<T, F>(&self, durability: Durability, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (msg, reply) = Self::job(durability, f);
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable {
                message: "The server is busy; try again shortly".into(),
                retry_after: 1,
            },
            mpsc::error::TrySendError::Closed(_) => shutting_down(),
        })?;
        reply.await.map_err(|_| shutting_down())?
    }

    /// Sets what hears of each batch's commit time (once; later calls are ignored).
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.on_commit.set(observer);
    }

    /// Jobs waiting in the queue, and how many it holds at most.
    pub fn queue(&self) -> (usize, usize) {
        let max = self.tx.max_capacity();
        (max - self.tx.capacity(), max)
    }

    pub fn submit_detached<F>(&self, f: F)
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        let (msg, reply) = Self::job(Durability::Normal, f);
        if self.tx.try_send(msg).is_err() {
            tracing::warn!("write queue full or closed; skipped a bookkeeping write");
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Ok(Err(e)) = reply.await {
                    tracing::warn!(error = %e, "background write failed");
                }
            });
        }
    }

    pub async fn shutdown(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done_tx)).await.is_ok() {
            let _ = done_rx.await;
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Msg>, on_commit: &OnceLock<CommitObserver>) {
    let mut last_sync = Instant::now();
    let mut dirty = false;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::new();
        let mut stop = None;
        match first {
            Msg::Job { durability, run } => batch.push((durability, run)),
            Msg::Tick => {}
            Msg::Shutdown(done) => stop = Some(done),
        }
        while stop.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job { durability, run }) => batch.push((durability, run)),
                Ok(Msg::Tick) => {}
                Ok(Msg::Shutdown(done)) => stop = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let started = Instant::now();
            commit_batch(&conn, batch);
            if let Some(observe) = on_commit.get() {
                observe(started.elapsed());
            }
            dirty = true;
        }
        if let Some(done) = stop {
            // Answer what raced in behind the shutdown, then close the queue for good.
            rx.close();
            let mut rest = Vec::new();
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Job { durability, run } = msg {
                    rest.push((durability, run));
                }
            }
            if !rest.is_empty() {
                commit_batch(&conn, rest);
            }
            checkpoint(&conn);
            let _ = done.send(());
            return;
        }
        if dirty && last_sync.elapsed() >= SYNC_EVERY {
            checkpoint(&conn);
            dirty = false;
            last_sync = Instant::now();
        }
    }
    checkpoint(&conn);
}

/// Bounds what a power loss can take to about a second: a passive checkpoint copies what it
/// can into the database, and the WAL itself is synced whether or not a reader (a running
/// backup) kept the checkpoint from finishing.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "checkpoint failed");
    }
    if let Some(path) = conn.path().filter(|p| !p.is_empty())
        && let Ok(wal) = std::fs::File::open(format!("{path}-wal"))
        && let Err(e) = wal.sync_data()
    {
        tracing::warn!(error = %e, "syncing the WAL failed");
    }
}

fn commit_batch(conn: &Connection, batch: Vec<(Durability, Run)>) {
    let durable = batch.iter().any(|(d, _)| *d == Durability::Full);
    if durable {
        let _ = conn.execute_batch("PRAGMA synchronous = FULL");
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut failure: Option<String> = conn
        .execute_batch("BEGIN IMMEDIATE")
        .err()
        .map(|e| e.to_string());
    for (_, run) in batch {
        if failure.is_some() {
            // Every caller hears back, also when the batch cannot go on.
            replies.push(run(None).1);
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            failure = Some(e.to_string());
            replies.push(run(None).1);
            continue;
        }
        let (ok, reply) = run(Some(conn));
        let end = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            failure = Some(e.to_string());
        }
        replies.push(reply);
    }
    let commit = match failure {
        Some(e) => Err(e),
        None => conn.execute_batch("COMMIT").map_err(|e| e.to_string()),
    };
    if let Err(e) = &commit {
        tracing::error!(error = %e, jobs = replies.len(), "write batch rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        note_rollback();
    }
    restore_sync(conn, durable);
    for reply in replies {
        reply(commit.clone());
    }
}

fn restore_sync(conn: &Connection, durable: bool) {
    if durable {
        let _ = conn.execute_batch("PRAGMA synchronous = NORMAL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        let w = Writer::start(conn, 64).unwrap();
        (dir, w, path)
    }

    #[tokio::test]
    async fn a_failing_job_does_not_undo_its_neighbours() {
        let (_dir, w, path) = writer();
        let mut handles = Vec::new();
        for v in [1, 2, 1, 3] {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                w.submit(Durability::Normal, move |c| {
                    c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
                    Ok(())
                })
                .await
            }));
        }
        let mut failures = 0;
        for h in handles {
            if h.await.unwrap().is_err() {
                failures += 1;
            }
        }
        assert_eq!(failures, 1);
        w.shutdown().await;
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }

    #[tokio::test]
    async fn writes_after_shutdown_are_refused() {
        let (_dir, w, _path) = writer();
        w.shutdown().await;
        let err = w.submit(Durability::Full, |_| Ok(())).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
