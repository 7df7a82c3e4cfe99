//! The single writer: one thread owns the write connection and commits whatever is queued as
//! soon as its previous commit finishes (group commit). Each job runs in its own savepoint, so
//! one failing job never takes the others of its batch down. Callers hear back after COMMIT.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A job that can run again: light jobs of a batch run together in one savepoint and, only
/// when one of them fails, again one by one (ingestion: one savepoint per event costs more
/// than the event).
type LightRun = Box<dyn FnMut(&Connection) -> Result<()> + Send>;

enum Msg {
    Job {
        durability: Durability,
        run: Run,
    },
    Light {
        run: LightRun,
        reply: oneshot::Sender<Result<()>>,
    },
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
        // Checkpoints (and their fsyncs) happen beside the writer, never inside a commit.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let mut side = None;
        if let Some(path) = conn.path().filter(|p| !p.is_empty()) {
            let checkpoints = Connection::open(path)?;
            super::configure(&checkpoints)?;
            let (stop, commits) = (Arc::clone(&stop), Arc::clone(&commits));
            side = Some(
                thread::Builder::new()
                    .name("db-checkpoint".into())
                    .spawn(move || checkpointer(&checkpoints, &stop, &commits))?,
            );
        }
        thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || {
                let last = run(&conn, rx, &observer, &commits);
                // The checkpoint thread first, so that the last checkpoint can empty the WAL.
                stop.store(true, Ordering::Release);
                if let Some(side) = side {
                    let _ = side.join();
                }
                final_checkpoint(&conn);
                drop(conn);
                if let Some(done) = last {
                    let _ = done.send(());
                }
            })?;
        Ok(Writer { tx, on_commit })
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
        self.enqueue_now(msg)?;
        reply.await.map_err(|_| shutting_down())?
    }

    /// Sets what hears of each batch's commit time (once; later calls are ignored).
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.on_commit.set(observer);
    }

    /// A light job (see [`LightRun`]) with `synchronous = NORMAL`; answers 503 at once when
    /// the queue is full. `f` may run twice, so it must not have effects outside the database.
    pub async fn try_submit_light<F>(&self, f: F) -> Result<()>
    where
        F: FnMut(&Connection) -> Result<()> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let msg = Msg::Light {
            run: Box::new(f),
            reply,
        };
        self.enqueue_now(msg)?;
        answer.await.map_err(|_| shutting_down())?
    }

    /// Queues without waiting for room: a full queue is a 503 the client may retry.
    fn enqueue_now(&self, msg: Msg) -> Result<()> {
        self.tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Error::Unavailable {
                message: "The server is busy; try again shortly".into(),
                retry_after: 1,
            },
            mpsc::error::TrySendError::Closed(_) => shutting_down(),
        })
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

/// What the writer takes from the queue at once.
#[derive(Default)]
struct Batch {
    jobs: Vec<(Durability, Run)>,
    light: Vec<(LightRun, oneshot::Sender<Result<()>>)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.jobs.len() + self.light.len()
    }

    /// Takes a message; returns the shutdown request if it is one.
    fn take(&mut self, msg: Msg) -> Option<oneshot::Sender<()>> {
        match msg {
            Msg::Job { durability, run } => self.jobs.push((durability, run)),
            Msg::Light { run, reply } => self.light.push((run, reply)),
            Msg::Shutdown(done) => return Some(done),
        }
        None
    }
}

/// Commits batches until the queue closes or a shutdown arrives; returns whom to tell once
/// the database is closed.
fn run(
    conn: &Connection,
    mut rx: mpsc::Receiver<Msg>,
    on_commit: &OnceLock<CommitObserver>,
    commits: &AtomicU64,
) -> Option<oneshot::Sender<()>> {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Batch::default();
        let mut stop = batch.take(first);
        while stop.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(msg) => stop = batch.take(msg),
                Err(_) => break,
            }
        }
        if batch.len() > 0 {
            let started = Instant::now();
            commit_batch(conn, batch);
            if let Some(observe) = on_commit.get() {
                observe(started.elapsed());
            }
            commits.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(done) = stop {
            // Answer what raced in behind the shutdown, then close the queue for good.
            rx.close();
            let mut rest = Batch::default();
            while let Ok(msg) = rx.try_recv() {
                rest.take(msg);
            }
            if rest.len() > 0 {
                commit_batch(conn, rest);
            }
            return Some(done);
        }
    }
    None
}

/// At shutdown: everything into the database file and the WAL emptied, so that the file
/// alone holds the data (a copy or a reader of the file misses nothing).
fn final_checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "final checkpoint failed");
        checkpoint(conn);
    }
}

/// WAL size past which a checkpoint runs before its second is up (SQLite's own default).
const CHECKPOINT_BYTES: u64 = 1000 * 4096;
const CHECKPOINT_POLL: Duration = Duration::from_millis(100);

/// The checkpoint thread: after commits, every second, and every 100 ms while the WAL is
/// over [`CHECKPOINT_BYTES`], copies what it can of the WAL into the database and syncs the
/// WAL, on its own connection, so that the writer never waits for it.
fn checkpointer(conn: &Connection, stop: &AtomicBool, commits: &AtomicU64) {
    let wal = conn.path().map(|p| format!("{p}-wal")).unwrap_or_default();
    let mut last = Instant::now();
    let mut synced = commits.load(Ordering::Acquire);
    while !stop.load(Ordering::Acquire) {
        thread::sleep(CHECKPOINT_POLL);
        let now = commits.load(Ordering::Acquire);
        if now == synced {
            continue;
        }
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() >= CHECKPOINT_BYTES);
        if big || last.elapsed() >= SYNC_EVERY {
            checkpoint(conn);
            last = Instant::now();
            synced = now;
        }
    }
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

/// Runs a statement without parsing it again each time.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` in its own savepoint: undone alone when it fails. `Err` only when the savepoint
/// itself could not be handled (the transaction cannot go on).
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce() -> (bool, T),
) -> std::result::Result<T, String> {
    exec(conn, "SAVEPOINT job").map_err(|e| e.to_string())?;
    let (ok, value) = f();
    let end = if ok {
        exec(conn, "RELEASE job")
    } else {
        exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
    };
    end.map_err(|e| e.to_string())?;
    Ok(value)
}

fn commit_batch(conn: &Connection, batch: Batch) {
    let durable = batch.jobs.iter().any(|(d, _)| *d == Durability::Full);
    if durable {
        let _ = conn.execute_batch("PRAGMA synchronous = FULL");
    }
    let mut replies = Vec::with_capacity(batch.jobs.len());
    let mut failure: Option<String> = exec(conn, "BEGIN IMMEDIATE").err().map(|e| e.to_string());
    for (_, run) in batch.jobs {
        if failure.is_some() {
            // Every caller hears back, also when the batch cannot go on.
            replies.push(run(None).1);
            continue;
        }
        match in_savepoint(conn, || run(Some(conn))) {
            Ok(reply) => replies.push(reply),
            Err(e) => {
                failure = Some(e);
                // The job ran; its answer is replaced by the batch's failure below.
                replies.push(Box::new(|_| {}));
            }
        }
    }
    let mut light = batch.light;
    let mut outcomes: Vec<Result<()>> = Vec::with_capacity(light.len());
    if failure.is_none() && !light.is_empty() {
        match run_light(conn, &mut light) {
            Ok(results) => outcomes = results,
            Err(e) => failure = Some(e),
        }
    }
    let commit = match failure {
        Some(e) => Err(e),
        None => exec(conn, "COMMIT").map_err(|e| e.to_string()),
    };
    if let Err(e) = &commit {
        tracing::error!(error = %e, jobs = replies.len() + light.len(), "write batch rolled back");
        let _ = conn.execute_batch("ROLLBACK");
        note_rollback();
    }
    restore_sync(conn, durable);
    for reply in replies {
        reply(commit.clone());
    }
    let mut outcomes = outcomes.into_iter();
    for (_, reply) in light {
        let answer = match (&commit, outcomes.next()) {
            (Ok(()), Some(outcome)) => outcome,
            _ => Err(busy()),
        };
        let _ = reply.send(answer);
    }
}

/// Runs the light jobs together in one savepoint. Should one fail, they are all undone and
/// run again one savepoint each, so that only the failing one is left out.
fn run_light(
    conn: &Connection,
    light: &mut [(LightRun, oneshot::Sender<Result<()>>)],
) -> std::result::Result<Vec<Result<()>>, String> {
    exec(conn, "SAVEPOINT light").map_err(|e| e.to_string())?;
    let mut failed = false;
    for (run, _) in light.iter_mut() {
        if run(conn).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        exec(conn, "RELEASE light").map_err(|e| e.to_string())?;
        return Ok(light.iter().map(|_| Ok(())).collect());
    }
    exec(conn, "ROLLBACK TO light")
        .and_then(|()| exec(conn, "RELEASE light"))
        .map_err(|e| e.to_string())?;
    // Caches of what the undone jobs wrote are now wrong.
    note_rollback();
    let mut results = Vec::with_capacity(light.len());
    for (run, _) in light.iter_mut() {
        let outcome = in_savepoint(conn, || {
            let r = run(conn);
            (r.is_ok(), r)
        })?;
        if outcome.is_err() {
            note_rollback();
        }
        results.push(outcome);
    }
    Ok(results)
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
    async fn a_failing_light_job_leaves_out_only_itself() {
        let (_dir, w, path) = writer();
        let mut handles = Vec::new();
        for v in [1, 2, 2, 3, 4] {
            let w = w.clone();
            handles.push(tokio::spawn(async move {
                w.try_submit_light(move |c| {
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
        assert_eq!(failures, 1, "only the duplicate fails");
        w.shutdown().await;
        let conn = Connection::open(&path).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 4);
    }

    #[tokio::test]
    async fn writes_after_shutdown_are_refused() {
        let (_dir, w, _path) = writer();
        w.shutdown().await;
        let err = w.submit(Durability::Full, |_| Ok(())).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
