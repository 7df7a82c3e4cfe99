//! Statistics query benchmark (issue 5). It prints numbers and asserts none.
//!
//! `cargo bench --bench stats -- [--pageviews N] [--days D] [--iterations K] [--db DIR]
//! [--server-bin PATH]`
//!
//! 1. A data directory with an account, a website (`example.com`, UTC) and a read API key,
//!    made with the CLI of the server binary. `--db DIR`: that directory, kept afterwards; when
//!    it already holds a generated database (`bench-stats.json` beside it) everything up to the
//!    queries is skipped and `--pageviews`/`--days` are ignored. Without it, a temporary one.
//! 2. `jetrack::generate` writes the trace (default: 10,000,000 pageviews over 365 days, about
//!    two heartbeats per pageview) for that website straight into the database file.
//! 3. `jetrack rebuild-aggregates` writes the statistics' blocks.
//! 4. `jetrack serve`; for each endpoint, over the whole period and over its last 30 days, one
//!    warm-up and K timed GETs (default 20) with the key: p50 and p95 in milliseconds. An
//!    endpoint that does not answer 200 shows its status instead of failing the run.
//!
//! Run without `--bench` (as `cargo test --benches` does) it goes through every step with a
//! tiny trace and one request per endpoint, and prints no figures worth reading.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use jetrack::generate::{self, Summary};
use serde_json::{Value, json};

type Res<T> = Result<T, String>;

/// Beside the database in a `--db` directory: what was generated there, for a later run.
const INFO_FILE: &str = "bench-stats.json";
const EMAIL: &str = "bench@example.com";
const DOMAIN: &str = "example.com";
/// The recent range measured besides the whole period.
const RECENT_DAYS: i64 = 30;

fn main() -> ExitCode {
    let mut opts = Options::parse();
    if !opts.bench {
        opts.pageviews = opts.pageviews.min(2_000);
        opts.days = opts.days.min(3);
        opts.iterations = 1;
    }
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Statistics query benchmark: generates a trace, then times every endpoint.
#[derive(Debug, Parser)]
#[command(name = "cargo bench --bench stats --")]
struct Options {
    /// Pageviews to generate.
    #[arg(long, default_value_t = generate::Options::default().pageviews,
          value_parser = clap::value_parser!(u64).range(1..))]
    pageviews: u64,
    /// Days the trace spans, ending now.
    #[arg(long, default_value_t = generate::Options::default().days,
          value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Timed requests per endpoint and range, after one warm-up.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// Keep the data directory here, and reuse what an earlier run generated in it.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The server executable to measure.
    #[arg(long, default_value = env!("CARGO_BIN_EXE_jetrack"))]
    server_bin: PathBuf,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) this is a test run of
    /// every step with a tiny trace and one request per endpoint.
    #[arg(long, hide = true)]
    bench: bool,
}

fn run(opts: &Options) -> Res<()> {
    if !opts.server_bin.exists() {
        return Err(format!("no server binary at {}", opts.server_bin.display()));
    }
    println!("Jetrack statistics benchmark");
    println!("server: {}", opts.server_bin.display());
    if !opts.bench {
        println!("test run (no --bench): a tiny trace and one request per endpoint; no figures");
    }
    let temp;
    let dir = match &opts.db {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("jetrack-stats-bench-")
                .tempdir()
                .map_err(|e| format!("temp dir: {e}"))?;
            temp.path().to_path_buf()
        }
    };
    let jetrack = Jetrack {
        bin: opts.server_bin.clone(),
        dir,
    };
    let info = match Info::read(&jetrack.dir)? {
        Some(info) => {
            println!(
                "data: reusing {} (generated earlier; --pageviews and --days ignored)",
                jetrack.dir.display()
            );
            print_summary(&info.summary, None);
            info
        }
        None => prepare(&jetrack, opts)?,
    };
    println!("the database queried:");
    print_sizes(&jetrack.db_path(), info.summary.pageviews)?;

    let server = jetrack.serve()?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let base = format!(
        "http://{}/api/v1/websites/{}/stats",
        server.addr, info.website
    );
    let (first, last) = (date(info.summary.start_ms), date(info.summary.end_ms - 1));
    let recent = first.max(
        last.checked_sub(jiff::Span::new().days(RECENT_DAYS - 1))
            .map_err(|e| e.to_string())?,
    );
    let mut ranges = vec![(format!("{} days", (last - first).get_days() + 1), first)];
    if recent > first {
        ranges.push((format!("{RECENT_DAYS} days"), recent));
    }
    println!();
    println!(
        "{} timed GETs per row after one warm-up, one at a time, key in the Authorization header",
        opts.iterations
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}  answer",
        "endpoint", "range", "p50 ms", "p95 ms"
    );
    for (label, from) in &ranges {
        for query in queries() {
            let sep = if query.contains('?') { '&' } else { '?' };
            let url = format!("{base}/{query}{sep}from={from}&to={last}");
            let row = measure(&client, &url, &info.key, opts.iterations as usize);
            println!(
                "{:<44} {:>9} {:>9} {:>9}  {}",
                query,
                label,
                ms(row.p50),
                ms(row.p95),
                row.answer
            );
        }
    }
    drop(server);
    Ok(())
}

/// Makes the account, website and key, generates the trace and builds the blocks.
fn prepare(jetrack: &Jetrack, opts: &Options) -> Res<Info> {
    std::fs::create_dir_all(&jetrack.dir).map_err(|e| format!("data dir: {e}"))?;
    println!("data: {}", jetrack.dir.display());
    jetrack.cli(&["users", "add", "--email", EMAIL])?;
    let snippet = jetrack.cli(&[
        "websites",
        "add",
        "--email",
        EMAIL,
        "--name",
        "Stats bench",
        "--domain",
        DOMAIN,
        "--timezone",
        "UTC",
    ])?;
    let website = snippet
        .split("data-website-id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| format!("no website id in {snippet:?}"))?
        .to_string();
    let key = jetrack
        .cli(&[
            "keys",
            "create",
            "--email",
            EMAIL,
            "--name",
            "stats bench",
            "--scope",
            "read",
        ])?
        .trim()
        .to_string();

    let conn =
        jetrack::db::open_connection(&jetrack.db_path(), jetrack::db::migrations::MIGRATIONS)
            .map_err(|e| format!("open the database: {e}"))?;
    let site: i64 = conn
        .query_row(
            "SELECT num FROM sites WHERE website_id = ?1",
            [&website],
            |r| r.get(0),
        )
        .map_err(|e| format!("the website's number: {e}"))?;
    let gen_opts = generate::Options {
        pageviews: opts.pageviews,
        days: opts.days,
        domain: DOMAIN.into(),
        ..generate::Options::default()
    };
    println!(
        "generating {} pageviews over {} days...",
        thousands(opts.pageviews),
        opts.days
    );
    let started = Instant::now();
    let summary = generate::generate(&conn, site, &gen_opts).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    print_summary(&summary, Some(took));
    println!("raw tables, before the statistics' blocks:");
    print_sizes(&jetrack.db_path(), summary.pageviews)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(|e| format!("checkpoint: {e}"))?;
    drop(conn);

    let started = Instant::now();
    match jetrack.cli(&["rebuild-aggregates", "--website", &website]) {
        Ok(out) => println!(
            "rebuild-aggregates: {} in {:.1} s",
            out.trim(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) if e.contains("unrecognized subcommand") => {
            println!("rebuild-aggregates: not in this binary, skipped")
        }
        Err(e) => return Err(e),
    }
    let info = Info {
        website,
        key,
        summary,
    };
    info.write(&jetrack.dir)?;
    Ok(info)
}

fn print_summary(s: &Summary, took: Option<Duration>) {
    let per_s = took.map_or(String::new(), |t| {
        format!(
            " in {:.1} s ({} pageviews/s)",
            t.as_secs_f64(),
            thousands((s.pageviews as f64 / t.as_secs_f64()) as u64)
        )
    });
    println!(
        "trace: {} pageviews, {} visits ({:.0}% bounces), {} events, {} heartbeats implied \
         ({:.2} per pageview), {} visitor ids, {} to {}{per_s}",
        thousands(s.pageviews),
        thousands(s.visits),
        100.0 * s.bounces as f64 / s.visits.max(1) as f64,
        thousands(s.events),
        thousands(s.heartbeats),
        s.heartbeats as f64 / s.pageviews.max(1) as f64,
        thousands(s.visitors),
        date(s.start_ms),
        date(s.end_ms - 1),
    );
}

/// The database's files (the WAL as large as it grew), its pages in use (the same before and
/// after a checkpoint), and per table and index where SQLite can tell.
fn print_sizes(db: &Path, pageviews: u64) -> Res<()> {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = db.with_extension("db-wal");
    println!("  files: {} + WAL {}", mib(len(db)), mib(len(&wal)));
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    let used: u64 = conn
        .query_row(
            "SELECT (page_count - freelist_count) * page_size
             FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| e.to_string())? as u64;
    println!(
        "  pages in use: {} = {:.1} bytes per pageview",
        mib(used),
        used as f64 / pageviews.max(1) as f64
    );
    let tables = conn
        .prepare(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name
             HAVING sum(pgsize) > 1048576 ORDER BY 2 DESC",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
    if let Ok(tables) = tables.as_ref()
        && !tables.is_empty()
    {
        let list: Vec<String> = tables
            .iter()
            .map(|(name, bytes)| {
                format!(
                    "{name} {} ({:.1} B/pv)",
                    mib(*bytes as u64),
                    *bytes as f64 / pageviews.max(1) as f64
                )
            })
            .collect();
        println!("  by table: {}", list.join(", "));
    }
    Ok(())
}

/// The endpoints measured, relative to `stats/`.
fn queries() -> Vec<String> {
    let mut out = vec!["main".to_string(), "timeseries?interval=day".to_string()];
    for report in jetrack::stats::dimension::Report::ALL {
        let name = report.path();
        out.push(match name {
            "event-props" => format!("{name}?limit=10&event=Signup&prop=plan"),
            _ => format!("{name}?limit=10"),
        });
    }
    // Common values of the generated trace.
    for filter in [
        "country=US",
        "path=%2Fpricing",
        "referrer=google.com",
        "browser=Chrome",
        "event=Signup",
    ] {
        out.push(format!("main?{filter}"));
        out.push(format!("pages?limit=10&{filter}"));
    }
    out
}

struct Measured {
    p50: Option<Duration>,
    p95: Option<Duration>,
    /// `200`, or the first failure's status and message.
    answer: String,
}

fn measure(
    client: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    iterations: usize,
) -> Measured {
    let get = || -> Res<Duration> {
        let started = Instant::now();
        let response = client
            .get(url)
            .bearer_auth(key)
            .send()
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let body = response.bytes().map_err(|e| format!("body: {e}"))?;
        let took = started.elapsed();
        if status != reqwest::StatusCode::OK {
            let envelope = serde_json::from_slice::<Value>(&body).unwrap_or_default();
            let meta = &envelope["meta"];
            let mut message = meta["message"].as_str().unwrap_or_default().to_string();
            if let Some(errors) = meta["errors"].as_array().filter(|e| !e.is_empty()) {
                message = format!("{message} {}", Value::from(errors.clone()));
            }
            return Err(format!("{} {message}", status.as_u16()));
        }
        Ok(took)
    };
    let mut times = Vec::with_capacity(iterations);
    // The first request warms up and is not timed.
    for i in 0..=iterations {
        match get() {
            Ok(took) if i > 0 => times.push(took),
            Ok(_) => {}
            Err(answer) => {
                return Measured {
                    p50: None,
                    p95: None,
                    answer,
                };
            }
        }
    }
    times.sort_unstable();
    Measured {
        p50: Some(percentile(&times, 0.50)),
        p95: Some(percentile(&times, 0.95)),
        answer: "200".into(),
    }
}

/// Nearest rank of sorted, non-empty `times`.
fn percentile(times: &[Duration], p: f64) -> Duration {
    let rank = (p * times.len() as f64).ceil() as usize;
    times[rank.clamp(1, times.len()) - 1]
}

/// What a `--db` directory holds, for a later run.
struct Info {
    website: String,
    key: String,
    summary: Summary,
}

impl Info {
    fn read(dir: &Path) -> Res<Option<Info>> {
        let path = dir.join(INFO_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = |name: &str| v[name].as_str().unwrap_or_default().to_string();
        let n = |name: &str| v["summary"][name].as_i64().unwrap_or_default();
        Ok(Some(Info {
            website: text("website"),
            key: text("key"),
            summary: Summary {
                pageviews: n("pageviews") as u64,
                visits: n("visits") as u64,
                bounces: n("bounces") as u64,
                events: n("events") as u64,
                heartbeats: n("heartbeats") as u64,
                visitors: n("visitors") as u64,
                direct: n("direct") as u64,
                start_ms: n("start_ms"),
                end_ms: n("end_ms"),
            },
        }))
    }

    fn write(&self, dir: &Path) -> Res<()> {
        let s = &self.summary;
        let v = json!({
            "website": self.website,
            "key": self.key,
            "summary": {
                "pageviews": s.pageviews, "visits": s.visits, "bounces": s.bounces,
                "events": s.events, "heartbeats": s.heartbeats, "visitors": s.visitors,
                "direct": s.direct, "start_ms": s.start_ms, "end_ms": s.end_ms,
            },
        });
        std::fs::write(dir.join(INFO_FILE), v.to_string()).map_err(|e| format!("{INFO_FILE}: {e}"))
    }
}

/// The server binary run on one data directory.
struct Jetrack {
    bin: PathBuf,
    dir: PathBuf,
}

impl Jetrack {
    fn db_path(&self) -> PathBuf {
        self.dir.join(jetrack::db::DB_FILE)
    }

    fn cli(&self, args: &[&str]) -> Res<String> {
        let out = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.dir)
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

    /// `jetrack serve` on an ephemeral port with API rate limits out of the way; its log goes
    /// to `server.log` in the data directory.
    fn serve(&self) -> Res<Server> {
        let log = std::fs::File::create(self.dir.join("server.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut child = Command::new(&self.bin)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Stopped by `Drop` if it never says where it listens.
        let mut server = Server {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
        };
        server.addr = listen_address(stdout, Duration::from_secs(60))?;
        Ok(server)
    }
}

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the server's stdout up to its "listening on http://ADDR" line; a thread drains the
/// rest so that the server never blocks on a full pipe.
fn listen_address(stdout: impl Read + Send + 'static, within: Duration) -> Res<SocketAddr> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err("the server exited before listening".to_string()));
                    return;
                }
                Ok(_) => {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
                        let _ = tx.send(addr.ok_or(format!("no address in {line:?}")));
                        break;
                    }
                }
            }
        }
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    rx.recv_timeout(within)
        .map_err(|_| format!("the server did not listen within {within:?}"))?
}

/// The UTC date of a time.
fn date(ms: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
        .unwrap_or_default()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
