//! Cold-start benchmark (issue 6, acceptance 3). It prints numbers and asserts none.
//!
//! `cargo bench --bench coldstart -- [--starts N] [--server-bin PATH]`
//!
//! Makes a database once (`jetrack demo`: an account and a website with 90 days of generated
//! traffic), then starts `jetrack serve` on it N times (20 by default) and measures the time
//! from spawning the process to the first 200 from `/healthz`, polled every millisecond; each
//! server is stopped with SIGTERM before the next start. Prints every start, the median
//! (target: under 200 ms) and the time each stop took.
//!
//! `scripts/release.sh` runs it against the stripped release binary. Run without `--bench`
//! (as `cargo test --benches` does) it makes 2 starts, to check that it works.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

const TARGET_MS: f64 = 200.0;

/// Cold-start benchmark: the time from spawning `serve` to the first 200 from `/healthz`.
#[derive(Debug, Parser)]
#[command(name = "cargo bench --bench coldstart --")]
struct Options {
    /// Starts to measure (default 20, or 2 in a test run).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    starts: Option<u32>,
    /// The server executable to measure.
    #[arg(long, default_value = env!("CARGO_BIN_EXE_jetrack"))]
    server_bin: PathBuf,
    /// Passed by `cargo bench`; without it (`cargo test --benches`) this is a test run.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> ExitCode {
    let opts = Options::parse();
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(opts: &Options) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");
    let started = Instant::now();
    let made = make_database(&opts.server_bin, &data, dir.path())?;
    let db_bytes: u64 = std::fs::read_dir(&data)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "database: {made} in {:.1} s, {:.1} MB in the data dir",
        started.elapsed().as_secs_f64(),
        db_bytes as f64 / 1e6
    );
    println!("binary: {}", opts.server_bin.display());

    let starts = opts.starts.unwrap_or(if opts.bench { 20 } else { 2 });
    let mut to_healthy = Vec::new();
    let mut to_stop = Vec::new();
    for i in 1..=starts {
        let (ready, stopped) = one_start(opts, &data, dir.path())?;
        println!(
            "start {i:>2}: first 200 from /healthz after {ready:>6.1} ms, stopped in {stopped:>5.1} ms"
        );
        to_healthy.push(ready);
        to_stop.push(stopped);
    }
    let healthy = median(&mut to_healthy);
    println!(
        "cold start to the first 200 from /healthz, median of {starts}: {healthy:.1} ms (min {:.1}, max {:.1}; target < {TARGET_MS} ms: {})",
        to_healthy[0],
        to_healthy[to_healthy.len() - 1],
        if healthy < TARGET_MS { "met" } else { "missed" }
    );
    println!("stop on SIGTERM, median: {:.1} ms", median(&mut to_stop));
    Ok(())
}

/// `jetrack demo` (90 days of generated traffic); when that fails, an account alone, so that
/// the benchmark still measures a start on an existing database. Says which it made.
fn make_database(bin: &Path, data: &Path, home: &Path) -> Result<&'static str, String> {
    let run = |args: &[&str]| {
        jetrack(bin, data, home)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))
    };
    let demo = run(&["demo"])?;
    if demo.status.success() {
        return Ok("jetrack demo");
    }
    eprintln!(
        "warning: jetrack demo failed ({}); measuring on a database with one account",
        String::from_utf8_lossy(&demo.stderr).trim()
    );
    let _ = std::fs::remove_dir_all(data);
    let user = run(&["users", "add", "--email", "bench@example.com"])?;
    if !user.status.success() {
        return Err(format!(
            "jetrack users add failed: {}",
            String::from_utf8_lossy(&user.stderr)
        ));
    }
    Ok("one account")
}

/// Starts the server on a free port, waits for a 200 from /healthz, stops it with SIGTERM.
/// Returns both times in milliseconds.
fn one_start(opts: &Options, data: &Path, home: &Path) -> Result<(f64, f64), String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let spawned = Instant::now();
    let mut child = jetrack(&opts.server_bin, data, home)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let ready = loop {
        if let Ok(200) = jetrack::cli::http_get_status(&url, Duration::from_secs(5)) {
            break spawned.elapsed();
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("jetrack serve exited early: {status}"));
        }
        if spawned.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err("no 200 from /healthz within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let stopped = stop(&mut child)?;
    Ok((ms(ready), ms(stopped)))
}

fn stop(child: &mut Child) -> Result<Duration, String> {
    let asked = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .map_err(|e| format!("kill: {e}"))?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("jetrack serve ended with {status} after SIGTERM"));
    }
    Ok(asked.elapsed())
}

/// The executable with a clean environment: no JETRACK_* from the machine, its own HOME.
fn jetrack(bin: &Path, data: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("JETRACK_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("JETRACK_LOG_LEVEL", "warn")
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null());
    cmd
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sorts the samples and returns their median.
fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}
