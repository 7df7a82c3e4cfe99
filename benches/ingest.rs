//! Ingestion load benchmark (issue 4, acceptance 11). It prints numbers and asserts none.
//!
//! `cargo bench --bench ingest -- [--duration S] [--connections C] [--rate R]
//! [--only hello|closed|open] [--server-bin PATH]`
//!
//! Two servers are measured in one run under the same load, the baseline first:
//! - `hello`: a bare warp 0.4 endpoint answering 202 with an empty body, in a child process (this
//!   binary re-executed with `JETRACK_BENCH_HELLO=1`) so it shares no runtime with the load;
//! - `jetrack`: the real `jetrack serve` on a fresh data directory, `POST /api/collect`.
//!
//! For each: a closed loop (C keep-alive connections sending back to back for S seconds) and an
//! open loop (R requests per second on a fixed timetable, latency measured from each request's
//! scheduled time so that a stalled server cannot hide its stall). Stored events are counted in
//! the database after a SIGTERM; the closed and open loops post to two different websites so
//! each loop's stored rows can be told apart.
//!
//! Run without `--bench` (as `cargo test --benches` does) it only checks that the load generator
//! works, against the hello server for a fraction of a second.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{HeaderValue, Request, header};
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Set in the environment of the re-executed bench binary that serves the hello endpoint.
const HELLO_ENV: &str = "JETRACK_BENCH_HELLO";

const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
/// Distinct client addresses the load cycles through, far more than any per-visitor limit sees:
/// at 30,000 requests/s each address sends one request every two seconds.
const CLIENT_ADDRESSES: u64 = 60_000;
/// Distinct page paths of the benchmark site (a real site has a bounded set of pages).
const PAGES: u64 = 1_000;
/// Open loop: connections made before the clock starts, and the most it may ever hold at once.
const OPEN_PREWARM: usize = 32;
const OPEN_MAX_CONNECTIONS: usize = 4_096;
/// Open loop: a dispatch later than this behind its timetable counts as falling behind (tokio's
/// timer has a 1 ms resolution, so up to about that is the timer, not the generator).
const OPEN_LAG_LIMIT: Duration = Duration::from_millis(5);
const PAUSE_BETWEEN: Duration = Duration::from_secs(2);

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    if std::env::var_os(HELLO_ENV).is_some() {
        return hello::serve();
    }
    let opts = Options::parse();
    let result = if opts.bench { run(&opts) } else { smoke() };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ingestion benchmark: a closed and an open loop against a hello server and Jetrack.
#[derive(Debug, Parser)]
#[command(name = "cargo bench --bench ingest --")]
struct Options {
    /// Length of each loop, in seconds (a trailing `s` is allowed).
    #[arg(long, default_value = "10", value_parser = seconds)]
    duration: Duration,
    /// Keep-alive connections of the closed loop.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4_096))]
    connections: u16,
    /// Events per second of the open loop.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: u32,
    /// Run one scenario only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// The server executable to measure.
    #[arg(long, default_value = env!("CARGO_BIN_EXE_jetrack"))]
    server_bin: PathBuf,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) this is a brief test run.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Only {
    /// The hello baseline alone (both loops).
    Hello,
    /// The closed loop alone, against both servers.
    Closed,
    /// The open loop alone, against both servers.
    Open,
}

fn seconds(v: &str) -> Res<Duration> {
    let secs: f64 = v
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("not a number of seconds: {v}"))?;
    if !(0.1..=600.0).contains(&secs) {
        return Err("must be between 0.1 and 600 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Options {
    fn closed(&self) -> bool {
        matches!(self.only, None | Some(Only::Hello) | Some(Only::Closed))
    }

    fn open(&self) -> bool {
        matches!(self.only, None | Some(Only::Hello) | Some(Only::Open))
    }
}

/// The load generator's runtime: two workers, as many as the machine has cores, shared with the
/// server under test.
fn load_runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load runtime: {e}"))
}

/// A test run: the generator against the hello server, briefly, with no figures to judge.
fn smoke() -> Res<()> {
    let mut hello = Server::hello()?;
    let rt = load_runtime()?;
    let load = Load::new("00000000-0000-4000-8000-000000000000", "bench.example");
    let result = rt.block_on(closed_loop(
        hello.addr,
        &load,
        4,
        Duration::from_millis(300),
    ))?;
    hello.stop()?;
    if result.tally.accepted == 0 {
        return Err(format!("the hello server accepted nothing: {result:?}"));
    }
    println!(
        "ingest bench smoke test: hello accepted {} requests (run `cargo bench --bench ingest` for figures)",
        result.tally.accepted
    );
    Ok(())
}

fn run(opts: &Options) -> Res<()> {
    let machine = Machine::read();
    println!("Jetrack ingestion benchmark");
    println!(
        "machine: {} CPUs, {}, {} memory; shared machine, figures are noisy",
        machine.cpus, machine.cpu_model, machine.memory
    );
    println!(
        "load: closed loop {} connections x {:.1} s; open loop {} events/s x {:.1} s; \
         generator: tokio 2 workers, hyper http1 keep-alive, on this machine",
        opts.connections,
        opts.duration.as_secs_f64(),
        opts.rate,
        opts.duration.as_secs_f64()
    );
    if opts.only != Some(Only::Hello) {
        let version = Command::new(&opts.server_bin)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("cannot run it: {e}"));
        println!("server: {} ({version})", opts.server_bin.display());
    }
    println!(
        "requests: POST /api/collect text/plain, 90% pageviews over {PAGES} paths, 10% events, \
         X-Forwarded-For over {CLIENT_ADDRESSES} addresses, one desktop Chrome User-Agent"
    );
    println!();

    let rt = load_runtime()?;

    // The baseline first, so that both servers are measured in the same run.
    let mut hello = Server::hello()?;
    let hello_load = Load::new("00000000-0000-4000-8000-000000000000", "bench.example");
    let (mut rows, hello_cpu) = run_loops(&rt, &hello, "hello", &hello_load, &hello_load, opts)?;
    hello.stop()?;

    let mut jetrack_cpu = None;
    let mut stored_check = Vec::new();
    if opts.only != Some(Only::Hello) {
        let setup = JetrackSetup::new(&opts.server_bin)?;
        let mut server = setup.serve()?;
        let closed_load = Load::new(&setup.closed_site, CLOSED_DOMAIN);
        let open_load = Load::new(&setup.open_site, OPEN_DOMAIN);
        std::thread::sleep(PAUSE_BETWEEN);
        let (mut jetrack_rows, cpu) =
            run_loops(&rt, &server, "jetrack", &closed_load, &open_load, opts)?;
        jetrack_cpu = cpu;
        let exit = server.terminate()?;
        eprintln!("jetrack: stopped with SIGTERM ({exit})");
        for row in jetrack_rows.iter_mut() {
            let site = match row.scenario {
                "closed" => &setup.closed_site,
                _ => &setup.open_site,
            };
            match count_stored(&setup.db_path(), site) {
                Ok(n) => {
                    row.stored = Some(n);
                    stored_check.push(format!(
                        "{} {}: stored {} / accepted {}{}",
                        row.server,
                        row.scenario,
                        thousands(n),
                        thousands(row.tally.accepted),
                        if n == row.tally.accepted {
                            " (equal)"
                        } else {
                            " (DIFFERENT)"
                        }
                    ));
                }
                Err(e) => stored_check.push(format!(
                    "{} {}: stored rows not counted: {e}",
                    row.server, row.scenario
                )),
            }
        }
        rows.extend(jetrack_rows);
    }

    print_table(&rows);
    println!();
    print_answers(&rows);
    if !stored_check.is_empty() {
        println!();
        println!("stored rows (pageviews + events) against 202 answers without X-Jetrack-Dropped:");
        for line in &stored_check {
            println!("  {line}");
        }
    }
    print_ratios(&rows);
    print_targets(&rows, opts);
    print_cpu(&rows, hello_cpu.as_ref(), jetrack_cpu.as_ref());
    Ok(())
}

/// The selected loops against one server, a pause between them. Each row's peak RSS is the
/// server's high-water mark at the end of that loop; the CPU shares are the closed loop's.
fn run_loops(
    rt: &tokio::runtime::Runtime,
    server: &Server,
    name: &'static str,
    closed_load: &Load,
    open_load: &Load,
    opts: &Options,
) -> Res<(Vec<Row>, Option<LoopCpu>)> {
    let mut rows = Vec::new();
    let mut cpu = None;
    if opts.closed() {
        eprintln!("{name}: closed loop...");
        let before = ThreadTimes::read(server.pid());
        let own_before = ThreadTimes::read(std::process::id());
        let r = rt.block_on(closed_loop(
            server.addr,
            closed_load,
            usize::from(opts.connections),
            opts.duration,
        ))?;
        cpu = Some(LoopCpu {
            server: ThreadTimes::read(server.pid()).since(&before, r.elapsed),
            generator: ThreadTimes::read(std::process::id()).since(&own_before, r.elapsed),
        });
        let mut row = Row::closed(name, opts, r);
        row.peak_rss_kib = server.peak_rss_kib();
        rows.push(row);
    }
    if opts.open() {
        if opts.closed() {
            std::thread::sleep(PAUSE_BETWEEN);
        }
        eprintln!("{name}: open loop...");
        let r = open_loop(rt, server.addr, open_load, opts.rate, opts.duration)?;
        let mut row = Row::open(name, opts, r);
        row.peak_rss_kib = server.peak_rss_kib();
        rows.push(row);
    }
    Ok((rows, cpu))
}

// ===== Load generation =====

/// What the load posts: each request number n gets its own address, path and kind.
struct Load {
    website_id: String,
    domain: &'static str,
}

impl Load {
    fn new(website_id: &str, domain: &'static str) -> Self {
        Load {
            website_id: website_id.to_string(),
            domain,
        }
    }

    fn request(&self, n: u64) -> Request<OnceBody> {
        let (id, domain) = (&self.website_id, self.domain);
        let body = if n % 10 == 9 {
            format!(
                r#"{{"type":"event","websiteId":"{id}","url":"https://{domain}/pricing","referrer":"https://news.ycombinator.com/","screenWidth":1440,"language":"en-US","name":"Signup","props":{{"plan":"pro"}}}}"#
            )
        } else {
            let page = n % PAGES;
            format!(
                r#"{{"type":"pageview","websiteId":"{id}","url":"https://{domain}/page/{page}","referrer":"https://news.ycombinator.com/","screenWidth":1440,"language":"en-US"}}"#
            )
        };
        let a = n % CLIENT_ADDRESSES;
        let client = format!("10.{}.{}.{}", (a >> 16) & 255, (a >> 8) & 255, a & 255);
        let len = body.len();
        let mut req = Request::new(OnceBody(Some(Bytes::from(body))));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = http::Uri::from_static("/api/collect");
        let h = req.headers_mut();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1"));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain;charset=UTF-8"),
        );
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://bench.example"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        if let Ok(v) = HeaderValue::from_str(&client) {
            h.insert("x-forwarded-for", v);
        }
        req
    }
}

/// A request body sent in one frame.
struct OnceBody(Option<Bytes>);

impl Body for OnceBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}

async fn connect(addr: SocketAddr) -> Res<SendRequest<OnceBody>> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// How one request ended.
enum Outcome {
    Accepted,
    /// 202 with `X-Jetrack-Dropped`, or any other status.
    Other(String),
}

async fn send(sender: &mut SendRequest<OnceBody>, req: Request<OnceBody>) -> Res<Outcome> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let dropped = resp
        .headers()
        .get("x-jetrack-dropped")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let mut body = resp.into_body();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        frame.map_err(|e| e.to_string())?;
    }
    Ok(match (status.as_u16(), dropped) {
        (202, None) => Outcome::Accepted,
        (202, Some(reason)) => Outcome::Other(format!("202 dropped {reason}")),
        (code, _) => Outcome::Other(code.to_string()),
    })
}

/// Answers and latencies of one loop (or one of its tasks).
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    other: BTreeMap<String, u64>,
    /// Latency of every answered request, in microseconds.
    latencies_us: Vec<u32>,
}

impl Tally {
    fn record(&mut self, outcome: Res<Outcome>, latency: Duration) {
        match outcome {
            Ok(Outcome::Accepted) => self.accepted += 1,
            Ok(Outcome::Other(key)) => *self.other.entry(key).or_default() += 1,
            Err(_) => {
                *self.other.entry("connection error".into()).or_default() += 1;
                return;
            }
        }
        self.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
    }

    fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        for (k, v) in other.other {
            *self.other.entry(k).or_default() += v;
        }
        self.latencies_us.extend(other.latencies_us);
    }

    fn answered(&self) -> u64 {
        self.latencies_us.len() as u64
    }
}

#[derive(Debug)]
struct LoopResult {
    tally: Tally,
    elapsed: Duration,
    /// Open loop only.
    open: Option<OpenFacts>,
}

#[derive(Debug)]
struct OpenFacts {
    planned: u64,
    max_lag: Duration,
    /// Dispatches that found every allowed connection busy and had to wait.
    waited_for_connection: u64,
    connections: u64,
}

/// C connections, each sending its next request as soon as the previous one is answered.
async fn closed_loop(
    addr: SocketAddr,
    load: &Load,
    connections: usize,
    duration: Duration,
) -> Res<LoopResult> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr).await?);
    }
    let load = Arc::new(Load::new(&load.website_id, load.domain));
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for sender in senders {
        let (load, counter) = (load.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sender = Some(sender);
            while Instant::now() < deadline {
                let s = match sender.as_mut() {
                    Some(s) => s,
                    None => match connect(addr).await {
                        Ok(s) => sender.insert(s),
                        Err(e) => {
                            tally.record(Err(e), Duration::ZERO);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let req = load.request(counter.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let outcome = send(s, req).await;
                if outcome.is_err() {
                    sender = None;
                }
                tally.record(outcome, sent.elapsed());
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.map_err(|e| format!("load task failed: {e}"))?);
    }
    Ok(LoopResult {
        tally,
        elapsed: start.elapsed(),
        open: None,
    })
}

/// A fixed offered rate: request i is due at start + i/rate whatever happened to the others, and
/// its latency counts from that due time. Idle connections are reused; when none is idle a new
/// one is opened (inside the request's own time), so a slow answer never delays the next send.
/// The timetable is kept by this (non-runtime) thread with `std::thread::sleep`, whose precision
/// is tens of microseconds where tokio's timer rounds up to whole milliseconds.
fn open_loop(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    load: &Load,
    rate: u32,
    duration: Duration,
) -> Res<LoopResult> {
    let pool: Arc<Mutex<Vec<SendRequest<OnceBody>>>> = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..OPEN_PREWARM {
        let sender = rt.block_on(connect(addr))?;
        lock(&pool).push(sender);
    }
    let connections = Arc::new(AtomicU64::new(OPEN_PREWARM as u64));
    let slots = Arc::new(tokio::sync::Semaphore::new(OPEN_MAX_CONNECTIONS));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let last_answer = Arc::new(Mutex::new(None::<Instant>));
    let planned = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let interval_ns = 1e9 / f64::from(rate);
    let start = Instant::now() + Duration::from_millis(20);
    let mut max_lag = Duration::ZERO;
    let mut waited = 0;
    for i in 0..planned {
        let due = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                waited += 1;
                rt.block_on(slots.clone().acquire_owned())
                    .map_err(|e| e.to_string())?
            }
        };
        max_lag = max_lag.max(due.elapsed());
        // The server closes connections idle for long; those are skipped, not failed.
        let idle = {
            let mut pool = lock(&pool);
            std::iter::from_fn(|| pool.pop()).find(|s| !s.is_closed())
        };
        let req = load.request(i);
        let (pool, tally, last, connections) = (
            pool.clone(),
            tally.clone(),
            last_answer.clone(),
            connections.clone(),
        );
        rt.spawn(async move {
            let _slot = slot;
            let mut sender = match idle {
                Some(s) => s,
                None => {
                    connections.fetch_add(1, Ordering::Relaxed);
                    match connect(addr).await {
                        Ok(s) => s,
                        Err(e) => return lock(&tally).record(Err(e), Duration::ZERO),
                    }
                }
            };
            let outcome = send(&mut sender, req).await;
            let latency = due.elapsed();
            let ok = outcome.is_ok();
            lock(&tally).record(outcome, latency);
            *lock(&last) = Some(Instant::now());
            if ok {
                lock(&pool).push(sender);
            }
        });
    }
    // Every slot back means every request has been answered.
    let all = u32::try_from(OPEN_MAX_CONNECTIONS).unwrap_or(u32::MAX);
    let drained = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), slots.acquire_many(all)).await
    });
    if drained.is_err() {
        return Err("open loop: requests still unanswered 60 s after the last send".into());
    }
    let end = lock(&last_answer).unwrap_or_else(Instant::now);
    let tally = std::mem::take(&mut *lock(&tally));
    // Close the idle connections now, not when the next scenario is running.
    lock(&pool).clear();
    Ok(LoopResult {
        tally,
        elapsed: end.saturating_duration_since(start).max(duration),
        open: Some(OpenFacts {
            planned,
            max_lag,
            waited_for_connection: waited,
            connections: connections.load(Ordering::Relaxed),
        }),
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ===== Servers =====

/// A server child process and the address it listens on.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// This binary again, serving the hello endpoint; it exits when its stdin closes.
    fn hello() -> Res<Self> {
        let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(HELLO_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the hello server: {e}"))?;
        let line = first_line_with(&mut child, "", Duration::from_secs(10))?;
        let addr = line
            .trim()
            .parse()
            .map_err(|_| format!("hello server printed {line:?}, not an address"))?;
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmHWM: the most resident memory the process has had, in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn stop(&mut self) -> Res<()> {
        let _ = self.child.kill();
        self.child.wait().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// SIGTERM, then wait for the drain and exit (SIGKILL after 60 s).
    fn terminate(&mut self) -> Res<String> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status.to_string());
            }
            if Instant::now() > until {
                self.stop()?;
                return Ok("did not exit within 60 s of SIGTERM; killed".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads the child's stdout until a line containing `needle`; the rest of its stdout is drained
/// by a thread so that the child never blocks on a full pipe.
fn first_line_with(child: &mut Child, needle: &str, within: Duration) -> Res<String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = needle.to_string();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(format!("exited before saying {wanted:?}: {seen}")));
                    return;
                }
                Ok(_) if line.contains(&wanted) => break,
                Ok(_) => seen.push_str(&line),
            }
        }
        let _ = tx.send(Ok(line.clone()));
        let mut sink = Vec::new();
        let _ = reader.read_to_end(&mut sink);
    });
    rx.recv_timeout(within)
        .map_err(|_| format!("no {needle:?} on stdout within {within:?}"))?
}

const CLOSED_DOMAIN: &str = "bench.example";
const OPEN_DOMAIN: &str = "open.bench.example";

/// A fresh data directory with one account and two websites: one per loop, so that each loop's
/// stored rows can be counted apart.
struct JetrackSetup {
    bin: PathBuf,
    dir: tempfile::TempDir,
    closed_site: String,
    open_site: String,
}

impl JetrackSetup {
    fn new(bin: &Path) -> Res<Self> {
        if !bin.exists() {
            return Err(format!("no server binary at {}", bin.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("jetrack-bench-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let mut setup = JetrackSetup {
            bin: bin.to_path_buf(),
            dir,
            closed_site: String::new(),
            open_site: String::new(),
        };
        setup.cli(&["users", "add", "--email", "bench@example.com"])?;
        setup.cli(&[
            "users",
            "limits",
            "--email",
            "bench@example.com",
            "--pageviews-per-month",
            "none",
            "--websites",
            "none",
        ])?;
        setup.closed_site = setup.add_site("Bench", CLOSED_DOMAIN)?;
        setup.open_site = setup.add_site("Bench open loop", OPEN_DOMAIN)?;
        Ok(setup)
    }

    fn cli(&self, args: &[&str]) -> Res<String> {
        let out = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "jetrack {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Adds a website and returns its id, read from the snippet printed on stdout.
    fn add_site(&self, name: &str, domain: &str) -> Res<String> {
        let snippet = self.cli(&[
            "websites",
            "add",
            "--email",
            "bench@example.com",
            "--name",
            name,
            "--domain",
            domain,
            "--timezone",
            "UTC",
        ])?;
        snippet
            .split("data-website-id=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string)
            .ok_or_else(|| format!("no website id in {snippet:?}"))
    }

    /// `jetrack serve` on an ephemeral port; its log (default level) goes to a file.
    fn serve(&self) -> Res<Server> {
        let log = std::fs::File::create(self.dir.path().join("server.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let line = first_line_with(&mut child, "listening on http://", Duration::from_secs(60));
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("jetrack serve: {e}"));
            }
        };
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no address in {line:?}"))?;
        Ok(Server { child, addr })
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("jetrack.db")
    }
}

/// Rows in `pageviews` and `events` of one website, read after the server has stopped.
fn count_stored(db: &Path, website_id: &str) -> Res<u64> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.query_row(
        "SELECT (SELECT count(*) FROM pageviews WHERE site = s.num)
              + (SELECT count(*) FROM events WHERE site = s.num)
           FROM sites s WHERE s.website_id = ?1",
        [website_id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(|e| e.to_string())
}

mod hello {
    //! The baseline: a bare warp 0.4 endpoint that reads the body and answers 202, on a runtime
    //! built like jetrack's (one worker per core).

    use std::io::{Read, Write};
    use std::process::ExitCode;

    use warp::Filter;

    pub fn serve() -> ExitCode {
        // The parent holds our stdin; when it goes (even by a crash) we go too.
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            std::process::exit(0);
        });
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("hello: runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        rt.block_on(async {
            let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("hello: bind: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let Ok(addr) = listener.local_addr() else {
                return ExitCode::FAILURE;
            };
            let route = warp::post()
                .and(warp::path!("api" / "collect"))
                .and(warp::body::content_length_limit(8 * 1024))
                .and(warp::body::bytes())
                .map(|_body: bytes::Bytes| warp::http::StatusCode::ACCEPTED);
            let mut out = std::io::stdout();
            if writeln!(out, "{addr}").and_then(|()| out.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            warp::serve(route).incoming(listener).run().await;
            ExitCode::SUCCESS
        })
    }
}

// ===== Measurements of the machine and the processes =====

struct Machine {
    cpus: usize,
    cpu_model: String,
    memory: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".into(), |(_, v)| v.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or("unknown".into(), |kib| {
                format!("{:.0} GiB", kib / 1024.0 / 1024.0)
            });
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory,
        }
    }
}

/// CPU time of each thread of a process, from /proc/PID/task/*/stat, in clock ticks.
struct ThreadTimes(BTreeMap<u32, (String, u64)>);

impl ThreadTimes {
    fn read(pid: u32) -> Self {
        let mut map = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return ThreadTimes(map);
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // "tid (comm) state ppid ..."; utime and stime are fields 14 and 15.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat[open + 1..close].to_string();
            let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            if let (Some(u), Some(s)) = (ticks(11), ticks(12)) {
                map.insert(tid, (comm, u + s));
            }
        }
        ThreadTimes(map)
    }

    /// Each thread's share of one core over `wall`, busiest first.
    fn since(&self, before: &ThreadTimes, wall: Duration) -> CpuShares {
        let hz = clock_ticks_per_second();
        let mut shares: Vec<(String, f64)> = self
            .0
            .iter()
            .map(|(tid, (comm, t))| {
                let t0 = before.0.get(tid).map_or(0, |(_, t0)| *t0);
                let secs = t.saturating_sub(t0) as f64 / hz;
                (comm.clone(), secs / wall.as_secs_f64())
            })
            .filter(|(_, share)| *share > 0.0)
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        CpuShares(shares)
    }
}

struct CpuShares(Vec<(String, f64)>);

/// Where the CPU went during a closed loop.
struct LoopCpu {
    server: CpuShares,
    generator: CpuShares,
}

impl CpuShares {
    fn total(&self) -> f64 {
        self.0.iter().map(|(_, s)| s).sum()
    }

    fn describe(&self, top: usize) -> String {
        let total = self.total();
        let busiest: Vec<String> = self
            .0
            .iter()
            .take(top)
            .map(|(name, s)| format!("{name} {:.0}%", s * 100.0))
            .collect();
        format!("total {:.0}%: {}", total * 100.0, busiest.join(", "))
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ===== Report =====

struct Row {
    server: &'static str,
    scenario: &'static str,
    load: String,
    tally: Tally,
    elapsed: Duration,
    open: Option<OpenFacts>,
    /// Rows stored by the loop (jetrack only).
    stored: Option<u64>,
    peak_rss_kib: Option<u64>,
}

impl Row {
    fn closed(server: &'static str, opts: &Options, r: LoopResult) -> Self {
        Row::new(server, "closed", format!("{} conn", opts.connections), r)
    }

    fn open(server: &'static str, opts: &Options, r: LoopResult) -> Self {
        Row::new(server, "open", format!("{}/s", opts.rate), r)
    }

    fn new(server: &'static str, scenario: &'static str, load: String, r: LoopResult) -> Self {
        let mut row = Row {
            server,
            scenario,
            load,
            tally: r.tally,
            elapsed: r.elapsed,
            open: r.open,
            stored: None,
            peak_rss_kib: None,
        };
        row.tally.latencies_us.sort_unstable();
        row
    }

    fn per_second(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }

    fn accepted_per_s(&self) -> f64 {
        self.per_second(self.tally.accepted)
    }

    /// The q-quantile of the answered requests' latencies, in microseconds.
    fn quantile_us(&self, q: f64) -> Option<u32> {
        let v = &self.tally.latencies_us;
        if v.is_empty() {
            return None;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "server",
        "scenario",
        "load",
        "answered/s",
        "accepted/s",
        "stored/s",
        "p50",
        "p99",
        "max",
        "peak RSS",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        lines.push(vec![
            r.server.to_string(),
            r.scenario.to_string(),
            r.load.clone(),
            thousands(r.per_second(r.tally.answered()).round() as u64),
            thousands(r.accepted_per_s().round() as u64),
            r.stored
                .map_or("-".into(), |n| thousands(r.per_second(n).round() as u64)),
            ms(r.quantile_us(0.50)),
            ms(r.quantile_us(0.99)),
            ms(r.quantile_us(1.0)),
            r.peak_rss_kib.map_or("-".into(), mb),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c < 3 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            println!("{}", "-".repeat(total));
        }
    }
}

fn print_answers(rows: &[Row]) {
    println!("answers and loop facts:");
    for r in rows {
        let mut parts = vec![format!(
            "{} in {:.2} s: 202 accepted {}",
            thousands(r.tally.answered()),
            r.elapsed.as_secs_f64(),
            thousands(r.tally.accepted)
        )];
        for (k, v) in &r.tally.other {
            parts.push(format!("{k} {}", thousands(*v)));
        }
        if let Some(o) = &r.open {
            let timetable = if o.waited_for_connection > 0 {
                format!(
                    "FELL BEHIND: all {OPEN_MAX_CONNECTIONS} connections were busy at {} sends \
                     (the lateness is counted in the latencies)",
                    thousands(o.waited_for_connection)
                )
            } else if o.max_lag > OPEN_LAG_LIMIT {
                "some sends were late (the generator's thread waited for a core; the lateness \
                 is counted in the latencies)"
                    .to_string()
            } else {
                "kept to the timetable".to_string()
            };
            parts.push(format!(
                "planned {}, {} connections, max send lag {}, {timetable}",
                thousands(o.planned),
                o.connections,
                ms(u32::try_from(o.max_lag.as_micros()).ok()),
            ));
        }
        println!("  {} {}: {}", r.server, r.scenario, parts.join("; "));
    }
}

fn find<'a>(rows: &'a [Row], server: &str, scenario: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.server == server && r.scenario == scenario)
}

/// The server's high-water mark over the whole run, in KiB.
fn peak_rss(rows: &[Row], server: &str) -> Option<u64> {
    rows.iter()
        .filter(|r| r.server == server)
        .filter_map(|r| r.peak_rss_kib)
        .max()
}

fn print_ratios(rows: &[Row]) {
    let mut lines = Vec::new();
    if let (Some(j), Some(h)) = (
        find(rows, "jetrack", "closed"),
        find(rows, "hello", "closed"),
    ) {
        lines.push(format!(
            "closed loop accepted/s: {:.2} ({} / {})",
            j.accepted_per_s() / h.accepted_per_s(),
            thousands(j.accepted_per_s().round() as u64),
            thousands(h.accepted_per_s().round() as u64)
        ));
    }
    if let (Some(j), Some(h)) = (find(rows, "jetrack", "open"), find(rows, "hello", "open")) {
        for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
            if let (Some(a), Some(b)) = (j.quantile_us(q), h.quantile_us(q)) {
                lines.push(format!(
                    "open loop {name}: {:.2} ({} / {})",
                    f64::from(a) / f64::from(b.max(1)),
                    ms(Some(a)),
                    ms(Some(b))
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (peak_rss(rows, "jetrack"), peak_rss(rows, "hello")) {
        lines.push(format!(
            "peak RSS: {:.1} ({} / {})",
            a as f64 / b.max(1) as f64,
            mb(a),
            mb(b)
        ));
    }
    if !lines.is_empty() {
        println!();
        println!("jetrack / hello:");
        for l in lines {
            println!("  {l}");
        }
    }
}

fn print_cpu(rows: &[Row], hello: Option<&LoopCpu>, jetrack: Option<&LoopCpu>) {
    let mut lines = Vec::new();
    for (name, cpu) in [("hello", hello), ("jetrack", jetrack)] {
        let (Some(cpu), Some(row)) = (cpu, find(rows, name, "closed")) else {
            continue;
        };
        let per_request = |shares: &CpuShares| {
            shares.total() * row.elapsed.as_secs_f64() * 1e6 / row.tally.answered().max(1) as f64
        };
        lines.push(format!(
            "{name:<7} server    {:>4.0} us/request; {}",
            per_request(&cpu.server),
            cpu.server.describe(6)
        ));
        lines.push(format!(
            "{name:<7} generator {:>4.0} us/request; {}",
            per_request(&cpu.generator),
            cpu.generator.describe(3)
        ));
    }
    if !lines.is_empty() {
        println!();
        println!(
            "CPU during the closed loops (per answered request; share of one core by thread):"
        );
        for l in lines {
            println!("  {l}");
        }
    }
}

fn print_targets(rows: &[Row], opts: &Options) {
    let mut lines = Vec::new();
    if let Some(j) = find(rows, "jetrack", "closed")
        && let Some(stored) = j.stored
    {
        let per_s = j.per_second(stored);
        lines.push(format!(
            "closed loop stored/s >= 20,000: {} ({})",
            thousands(per_s.round() as u64),
            verdict(per_s >= 20_000.0)
        ));
    }
    if let Some(j) = find(rows, "jetrack", "open") {
        let p99 = j.quantile_us(0.99);
        let note = if opts.rate == 5_000 {
            String::new()
        } else {
            format!(", at {}/s instead", opts.rate)
        };
        lines.push(format!(
            "open loop p99 <= 20 ms at 5,000/s: {} ({}{note})",
            ms(p99),
            verdict(p99.is_some_and(|p| p <= 20_000))
        ));
    }
    if let Some(rss) = peak_rss(rows, "jetrack") {
        lines.push(format!(
            "peak RSS <= 100 MB: {} ({})",
            mb(rss),
            verdict(rss * 1024 <= 100_000_000)
        ));
    }
    if !lines.is_empty() {
        println!();
        println!("issue 4 acceptance 11 (reported, not asserted):");
        for l in lines {
            println!("  {l}");
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn ms(us: Option<u32>) -> String {
    us.map_or("-".into(), |us| {
        let ms = f64::from(us) / 1000.0;
        if ms < 10.0 {
            format!("{ms:.2} ms")
        } else {
            format!("{ms:.1} ms")
        }
    })
}

/// KiB as decimal megabytes, the unit of the target.
fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
