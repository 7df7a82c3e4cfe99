//! The single writer: one thread owns the write connection and commits whatever is queued as
//! soon as its previous commit finishes (group commit). Each job runs in its own savepoint, so
//! one failing job never takes the others of its batch down. Callers hear back after COMMIT.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::health::{Trouble, WriteHealth};
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

/// Told after COMMIT whether it succeeded, and if not, why.
type Reply = Box<dyn FnOnce(Result<(), Trouble>) + Send>;
/// Runs a job on the connection, or, given none, fails it without running (the batch could
/// not start); says how it went and how to answer its caller.
type Run = Box<dyn FnOnce(Option<&Connection>) -> Ran + Send>;

/// A job that ran: whether it succeeded, the database trouble it met, and its answer.
struct Ran {
    ok: bool,
    trouble: Option<Trouble>,
    reply: Reply,
}

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
    health: Arc<WriteHealth>,
}

/// A job that could not run because its batch could not start.
fn not_run() -> Trouble {
    Trouble::Failed("the batch could not start".into())
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
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {CHECKPOINT_BYTES}"
        ))?;
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let health = Arc::new(WriteHealth::default());
        let reports = Arc::clone(&health);
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
                let last = run(&conn, rx, &observer, &commits, &reports);
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
        Ok(Writer {
            tx,
            on_commit,
            health,
        })
    }

    /// Whether writes are getting through (`/healthz`).
    pub fn health(&self) -> &WriteHealth {
        &self.health
    }

    fn job<T, F>(durability: Durability, f: F) -> (Msg, oneshot::Receiver<Result<T>>)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            let mut outcome = match conn {
                Some(conn) => f(conn),
                None => Err(not_run().error()),
            };
            // A job that met a full disk says so, rather than as an internal error.
            let trouble = outcome.as_ref().err().and_then(Trouble::of_error);
            if let Some(t) = trouble.as_ref().filter(|t| t.is_storage()) {
                outcome = Err(t.error());
            }
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => outcome,
                    Err(t) if ok => Err(t.error()),
                    Err(_) => outcome,
                };
                let _ = reply_tx.send(answer);
            });
            Ran { ok, trouble, reply }
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
    health: &WriteHealth,
) -> Option<oneshot::Sender<()>> {
    let wal = conn.path().map(|p| format!("{p}-wal")).unwrap_or_default();
    let mut last_own_checkpoint = Instant::now();
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
            commit_batch(conn, batch, health);
            if let Some(observe) = on_commit.get() {
                observe(started.elapsed());
            }
            commits.fetch_add(1, Ordering::AcqRel);
            // The checkpoint thread copies the WAL into the database beside the writer, but
            // under steady commits it never reaches the WAL's end, and SQLite starts the WAL
            // over only once all of it is copied. So, at most once a second while the WAL is
            // large, the writer finishes the copy itself between batches (cheap: the thread
            // did the rest), and the next commit starts the WAL over, cut back to
            // journal_size_limit.
            if last_own_checkpoint.elapsed() >= SYNC_EVERY
                && std::fs::metadata(&wal).is_ok_and(|m| m.len() > CHECKPOINT_BYTES)
            {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "writer checkpoint failed");
                }
                last_own_checkpoint = Instant::now();
            }
        }
        if let Some(done) = stop {
            // Answer what raced in behind the shutdown, then close the queue for good.
            rx.close();
            let mut rest = Batch::default();
            while let Ok(msg) = rx.try_recv() {
                rest.take(msg);
            }
            if rest.len() > 0 {
                commit_batch(conn, rest, health);
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
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "checkpoint failed");
        }
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
    let mut quiet = QuietFailures::default();
    while !stop.load(Ordering::Acquire) {
        thread::sleep(CHECKPOINT_POLL);
        let now = commits.load(Ordering::Acquire);
        if now == synced {
            continue;
        }
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() >= CHECKPOINT_BYTES);
        if big || last.elapsed() >= SYNC_EVERY {
            if let Err(e) = checkpoint(conn) {
                quiet.failed(&e);
            }
            last = Instant::now();
            synced = now;
        }
    }
}

/// Checkpoint failures (a full disk fails one every second) logged once per ten seconds with
/// their count.
#[derive(Default)]
struct QuietFailures {
    last_log: Option<Instant>,
    unlogged: u64,
}

impl QuietFailures {
    fn failed(&mut self, e: &str) {
        self.unlogged += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(error = %e, failures = self.unlogged, "checkpoint failed");
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
    }
}

/// Bounds what a power loss can take to about a second: a passive checkpoint copies what it
/// can into the database, and the WAL itself is synced whether or not a reader (a running
/// backup) kept the checkpoint from finishing.
fn checkpoint(conn: &Connection) -> std::result::Result<(), String> {
    let copied = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(|e| e.to_string());
    if let Some(path) = conn.path().filter(|p| !p.is_empty())
        && let Ok(wal) = std::fs::File::open(format!("{path}-wal"))
    {
        wal.sync_data()
            .map_err(|e| format!("syncing the WAL: {e}"))?;
    }
    copied
}

/// Runs a statement without parsing it again each time.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` in its own savepoint: undone alone when it fails. `Err` only when the savepoint
/// itself could not be handled (the transaction cannot go on).
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce() -> (bool, T)) -> rusqlite::Result<T> {
    exec(conn, "SAVEPOINT job")?;
    let (ok, value) = f();
    if ok {
        exec(conn, "RELEASE job")?;
    } else {
        exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))?;
    }
    Ok(value)
}

fn commit_batch(conn: &Connection, batch: Batch, health: &WriteHealth) {
    let durable = batch.jobs.iter().any(|(d, _)| *d == Durability::Full);
    if durable {
        let _ = conn.execute_batch("PRAGMA synchronous = FULL");
    }
    let mut replies = Vec::with_capacity(batch.jobs.len());
    // The first database trouble met, by a job or by the batch itself.
    let mut seen: Option<Trouble> = None;
    let mut failure: Option<Trouble> = exec(conn, "BEGIN IMMEDIATE").err().map(|e| Trouble::of(&e));
    let mut refused = 0;
    for (_, run) in batch.jobs {
        if failure.is_some() {
            // Every caller hears back, also when the batch cannot go on.
            replies.push(run(None).reply);
            continue;
        }
        match in_savepoint(conn, || {
            let ran = run(Some(conn));
            (ran.ok, ran)
        }) {
            Ok(ran) => {
                if let Some(t) = ran.trouble.filter(Trouble::is_storage) {
                    refused += 1;
                    seen.get_or_insert(t);
                }
                replies.push(ran.reply);
            }
            Err(e) => {
                failure = Some(Trouble::of(&e));
                // The job ran; its answer is replaced by the batch's failure below.
                replies.push(Box::new(|_| {}));
            }
        }
    }
    let mut light = batch.light;
    let mut outcomes: Vec<Result<()>> = Vec::with_capacity(light.len());
    if failure.is_none() && !light.is_empty() {
        match run_light(conn, &mut light, &mut seen) {
            Ok(results) => {
                for t in results.iter().filter_map(|r| r.as_ref().err()) {
                    if let Some(t) = Trouble::of_error(t).filter(Trouble::is_storage) {
                        refused += 1;
                        seen.get_or_insert(t);
                    }
                }
                outcomes = results;
            }
            Err(e) => failure = Some(Trouble::of(&e)),
        }
    }
    let commit = match failure {
        Some(t) => Err(t),
        None => exec(conn, "COMMIT").map_err(|e| Trouble::of(&e)),
    };
    if let Err(t) = &commit {
        let _ = conn.execute_batch("ROLLBACK");
        note_rollback();
        // A failed statement names the real cause better than the commit that followed it.
        let t = match (seen.take(), t) {
            (Some(first), Trouble::Failed(_)) => first,
            _ => t.clone(),
        };
        health.failed(t, replies.len() + light.len());
    } else if let Some(t) = seen {
        health.failed(t, refused);
    } else {
        health.committed();
    }
    restore_sync(conn, durable);
    for reply in replies {
        reply(commit.clone());
    }
    let mut outcomes = outcomes.into_iter();
    for (_, reply) in light {
        let answer = match (&commit, outcomes.next()) {
            (Ok(()), Some(outcome)) => outcome.map_err(|e| match Trouble::of_error(&e) {
                Some(t) if t.is_storage() => t.error(),
                _ => e,
            }),
            (Err(t), _) => Err(t.error()),
            (Ok(()), None) => Err(not_run().error()),
        };
        let _ = reply.send(answer);
    }
}

/// Runs the light jobs together in one savepoint. Should one fail, they are all undone and
/// run again one savepoint each, so that only the failing one is left out.
fn run_light(
    conn: &Connection,
    light: &mut [(LightRun, oneshot::Sender<Result<()>>)],
    seen: &mut Option<Trouble>,
) -> rusqlite::Result<Vec<Result<()>>> {
    exec(conn, "SAVEPOINT light")?;
    let mut failed = false;
    for (run, _) in light.iter_mut() {
        if let Err(e) = run(conn) {
            if let Some(t) = Trouble::of_error(&e).filter(Trouble::is_storage) {
                seen.get_or_insert(t);
            }
            failed = true;
            break;
        }
    }
    if !failed {
        exec(conn, "RELEASE light")?;
        return Ok(light.iter().map(|_| Ok(())).collect());
    }
    exec(conn, "ROLLBACK TO light").and_then(|()| exec(conn, "RELEASE light"))?;
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
