//! The command line (SPEC 6): clap definitions and the dispatch to each command.
//! Results go to stdout, messages to stderr; exit 0 success, 1 failure, 2 usage error.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use ipnet::IpNet;

use crate::accounts::{self, NewAccount};
use crate::app::App;
use crate::audit;
use crate::auth::{password, session};
use crate::config::{self, Config};
use crate::datadir;
use crate::db::{self, Db, Durability, backup, migrations};
use crate::error::{Error, Result};
use crate::ingest::geo::GeoIp;
use crate::ingest::pipeline::{self, Ingest};
use crate::ingest::useragent;
use crate::ingest::visitor::{SystemClock, Visitors};
use crate::keys;
use crate::logging::{self, LogFormat, LogLevel};
use crate::metrics::Metrics;
use crate::net::TrustedProxies;
use crate::time::{iso_ms, now_ms};
use crate::websites;

#[derive(Parser, Debug)]
#[command(
    name = "jetrack",
    version,
    about = "Privacy-friendly, self-hosted web analytics"
)]
pub struct Cli {
    /// Where the database and backups live [default: the platform data directory, e.g. ~/.local/share/jetrack]
    #[arg(long, global = true, env = "JETRACK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log verbosity
    #[arg(
        long,
        global = true,
        env = "JETRACK_LOG_LEVEL",
        value_enum,
        default_value = "info"
    )]
    pub log_level: LogLevel,
    /// Log line format on stderr
    #[arg(
        long,
        global = true,
        env = "JETRACK_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server
    Serve(ServeArgs),
    /// Manage accounts
    #[command(subcommand)]
    Users(UsersCommand),
    /// Write a consistent copy of the live database
    Backup(BackupArgs),
    /// Put a backup in place of the database (the server must be stopped)
    Restore(RestoreArgs),
    /// Check the database's integrity, schema version and the data directory
    Check,
    /// Ask a running server's /healthz; exit 0 on a 200, else 1 (for Docker's HEALTHCHECK)
    Healthcheck(HealthcheckArgs),
    /// Manage API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage websites
    #[command(subcommand)]
    Websites(WebsitesCommand),
    /// Write a website's stored events of a period to stdout (NDJSON or CSV)
    Export {
        #[arg(long, value_name = "ID")]
        website: String,
        /// First day, YYYY-MM-DD, in the website's time zone [default: 29 days before --to]
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Last day, inclusive [default: today]
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        #[arg(long, value_parser = ["ndjson", "csv"], default_value = "ndjson")]
        format: String,
    },
    /// Create or refresh a website "Demo" with 90 days of generated traffic, and say how to see it
    Demo(crate::demo::DemoArgs),
    /// Rebuild every derived table (the statistics' blocks) from the raw events
    RebuildAggregates {
        /// Only this website's
        #[arg(long, value_name = "ID")]
        website: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key and print it (and nothing else) to stdout
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = ["full", "read"], default_value = "full")]
        scope: String,
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=3650))]
        expires_in_days: Option<i64>,
    },
    /// List API keys (never their secrets)
    List {
        #[arg(long)]
        email: Option<String>,
    },
    /// Give a key a new secret and print it; the old one stops working (after --grace)
    Rotate {
        #[arg(long)]
        email: String,
        /// The key's id or prefix; needed when the account has several keys
        #[arg(long, value_name = "ID|PREFIX")]
        key: Option<String>,
        /// Keep the old secret working this long, e.g. 30s, 15m, 1h
        #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
        grace: Option<std::time::Duration>,
    },
    /// Revoke a key (irreversible)
    Revoke {
        #[arg(long, value_name = "ID|PREFIX")]
        key: String,
    },
}

fn parse_grace(s: &str) -> std::result::Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (for example 30s, 15m, 1h)"))?;
    if d > std::time::Duration::from_secs(30 * 24 * 3600) {
        return Err("must be at most 30 days".into());
    }
    Ok(d)
}

#[derive(Subcommand, Debug)]
pub enum WebsitesCommand {
    /// Add a website and print its tracking snippet
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        domain: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// The server's public URL, for the snippet
        #[arg(
            long,
            env = "JETRACK_PUBLIC_URL",
            value_name = "URL",
            default_value = "http://127.0.0.1:8420"
        )]
        public_url: String,
    },
    /// List websites
    List {
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "JETRACK_LISTEN", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
    /// The URL people use to reach this server [default: http:// + the listen address]
    #[arg(long, env = "JETRACK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Proxies whose X-Forwarded-For / X-Real-IP are believed (CIDR, repeatable or comma-separated) [default: loopback]
    #[arg(long, env = "JETRACK_TRUSTED_PROXY", value_name = "CIDR", value_delimiter = ',', num_args = 1..)]
    pub trusted_proxy: Vec<IpNet>,
    /// Writes that may wait for the database writer before new ones are refused with 503
    #[arg(long, env = "JETRACK_QUEUE_CAPACITY", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub queue_capacity: u32,
    /// API requests per minute per key
    #[arg(long, env = "JETRACK_API_RATE_LIMIT", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_limit: u32,
    /// Requests a key may make at once before the per-minute rate applies
    #[arg(long, env = "JETRACK_API_RATE_BURST", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_rate_burst: u32,
    /// Failed authentications per minute from one client address before it gets 429
    #[arg(long, env = "JETRACK_AUTH_FAIL_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_fail_limit: u32,
    /// Tracked events per second from one client address and User-Agent before 429
    #[arg(long, env = "JETRACK_INGEST_RATE_LIMIT", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub ingest_rate_limit: u32,
    /// A MaxMind-format country database to use instead of the embedded one
    #[arg(long, env = "JETRACK_GEOIP_DB", value_name = "PATH.mmdb")]
    pub geoip_db: Option<PathBuf>,
    /// Strict-Transport-Security max-age in seconds, sent when the public URL is https (0 = none)
    #[arg(long, env = "JETRACK_HSTS_MAX_AGE", value_name = "SECONDS", default_value_t = crate::config::DEFAULT_HSTS_MAX_AGE)]
    pub hsts_max_age: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics (a separate, private address)
    #[arg(long, env = "JETRACK_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create an account (prints a random password unless --password-stdin)
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts
    List,
    /// Set a new password and end the account's sessions
    Passwd {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account and everything it owns
    Remove {
        #[arg(long)]
        email: String,
    },
    /// Show or set an account's limits ("none" = unlimited)
    Limits {
        #[arg(long)]
        email: String,
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        pageviews_per_month: Option<Limit>,
        #[arg(long, value_name = "N|none", value_parser = parse_limit)]
        websites: Option<Limit>,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct Limit(Option<i64>);

fn parse_limit(s: &str) -> std::result::Result<Limit, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    match s.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(Limit(Some(n))),
        _ => Err("must be an integer ≥ 1 or \"none\"".into()),
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy [default: DATA_DIR/backups/jetrack-<UTC timestamp>.db]; never overwritten
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Then delete all but the newest N backups in DATA_DIR/backups
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup to restore
    pub file: PathBuf,
    /// Replace the files kept aside by an earlier restore
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The address to ask [default: http://<listen address>/healthz]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The server's listen address, for the default URL (0.0.0.0 and :: are asked on loopback)
    #[arg(long, env = "JETRACK_LISTEN", default_value = "127.0.0.1:8420")]
    pub listen: SocketAddr,
}

/// `println!` that reports a closed or failing stdout as an error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err(|e| {
            Error::Internal(format!("cannot write to stdout: {}", datadir::plain(&e)))
        })?
    }};
}

/// Parses the command line, runs the command and turns its outcome into an exit code.
/// Async workers: one per core but one, which the database writer thread needs to itself
/// under load (measured with `benches/ingest.rs`: on 2 cores, 1 worker stores ~17% more events
/// per second than 2). `TOKIO_WORKER_THREADS` overrides it.
fn worker_threads() -> usize {
    if let Some(n) = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cores.saturating_sub(1).max(1)
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error: {info}");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let data_dir = datadir::resolve(cli.data_dir);
    match runtime.block_on(run(cli.command, data_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn run(command: Command, data_dir: PathBuf) -> Result<()> {
    match command {
        Command::Serve(args) => serve(args, data_dir).await,
        Command::Users(cmd) => users(cmd, &data_dir).await,
        Command::Backup(args) => backup_cmd(args, &data_dir),
        Command::Restore(args) => restore_cmd(args, &data_dir),
        Command::Check => check(&data_dir),
        Command::Demo(args) => crate::demo::run(args, &data_dir).await,
        Command::Healthcheck(args) => healthcheck(args),
        Command::Keys(cmd) => {
            existing_db(&data_dir)?;
            with_db(&data_dir, |db| keys_cmd(cmd, db)).await
        }
        Command::Websites(cmd) => {
            existing_db(&data_dir)?;
            with_db(&data_dir, |db| websites_cmd(cmd, db)).await
        }
        Command::Export {
            website,
            from,
            to,
            format,
        } => {
            let path = existing_db(&data_dir)?;
            let query = [("from", from), ("to", to), ("format", Some(format))]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect();
            tokio::task::spawn_blocking(move || crate::export::to_stdout(&path, &website, query))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
                .map_err(invalid_line)
        }
        Command::RebuildAggregates { website } => {
            existing_db(&data_dir)?;
            with_db(&data_dir, |db| rebuild_aggregates(db, website)).await
        }
    }
}

/// Marks every bucket for rebuilding, then rewrites them in short transactions, so that a
/// running server's writes go on in between.
async fn rebuild_aggregates(db: Db, website: Option<String>) -> Result<()> {
    let site = match website {
        None => None,
        Some(id) => {
            let lookup = id.clone();
            let num = db
                .read(move |c| match crate::websites::WebsiteId::parse(&lookup) {
                    Some(id) => crate::websites::site_number(c, id),
                    None => Ok(None),
                })
                .await?
                .ok_or_else(|| Error::NotFound(format!("no website with id {id}")))?
                .0;
            Some(num)
        }
    };
    db.write(Durability::Normal, move |c| {
        crate::stats::blocks::mark_all(c, site).map(|_| ())
    })
    .await?;
    let mut total = 0;
    loop {
        let done = db
            .write(Durability::Normal, move |c| {
                crate::stats::blocks::refresh(c, site, i64::MAX, 500)
            })
            .await?;
        if done == 0 {
            break;
        }
        total += done;
    }
    outln!("rebuilt {total} blocks");
    Ok(())
}

/// Opens the database, runs `f`, and lets the writer commit before returning.
async fn with_db<F, Fut>(data_dir: &Path, f: F) -> Result<()>
where
    F: FnOnce(Db) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let db = open_db(data_dir)?;
    let outcome = f(db.clone()).await;
    db.shutdown().await;
    outcome
}

fn open_db(data_dir: &Path) -> Result<Db> {
    datadir::ensure(data_dir)?;
    Db::open(data_dir, 1024).map_err(|e| match e {
        Error::SchemaTooNew { .. } => e,
        other => Error::Internal(format!(
            "cannot open the database in {}: {other}",
            data_dir.display()
        )),
    })
}

async fn serve(args: ServeArgs, data_dir: PathBuf) -> Result<()> {
    datadir::ensure(&data_dir)?;
    let _lock = datadir::lock(&data_dir)?;
    let public_url = args
        .public_url
        .as_deref()
        .map(config::parse_public_url)
        .transpose()
        .map_err(Error::Internal)?;
    let mut config = Config::new(data_dir.clone(), args.listen);
    if let Some(url) = &public_url {
        config.public_url = url.clone();
    }
    if !args.trusted_proxy.is_empty() {
        config.trusted_proxies = TrustedProxies::new(args.trusted_proxy);
    }
    config.queue_capacity = args.queue_capacity as usize;
    config.api_rate_limit = args.api_rate_limit;
    config.api_rate_burst = args.api_rate_burst;
    config.auth_fail_limit = args.auth_fail_limit;
    config.ingest_rate_limit = args.ingest_rate_limit;
    config.hsts_max_age = args.hsts_max_age;

    let geo = match &args.geoip_db {
        Some(path) => GeoIp::open(path)
            .map_err(|e| Error::Internal(format!("--geoip-db {}: {e}", path.display())))?,
        None => GeoIp::embedded(),
    };
    // Compiling the User-Agent rules takes a moment: not on the first tracked request.
    let warm_up = tokio::task::spawn_blocking(useragent::warm_up);
    let db = Db::open(&data_dir, config.queue_capacity)?;
    let listener = crate::server::bind(config.listen).await?;
    let metrics_listener = match args.metrics_listen {
        Some(addr) => Some(crate::server::bind(addr).await?),
        None => None,
    };
    let config = config.bound_to(listener.local_addr()?, public_url.is_some());
    for warning in config.login_warnings() {
        tracing::warn!("{warning}");
    }
    let visitors = db
        .read(|c| Visitors::load(c, Arc::new(SystemClock)))
        .await?;
    let metrics = Arc::new(Metrics::new());
    {
        let metrics = Arc::clone(&metrics);
        db.observe_commits(Arc::new(move |d| metrics.observe_commit(d)));
    }
    tracing::info!(geoip = %geo.describe(), "country database");
    let ingest = Arc::new(Ingest::new(
        geo,
        visitors,
        metrics,
        config.ingest_rate_limit,
    ));
    let app = App::new(config, db.clone(), ingest);
    let _ = warm_up.await;

    if db.read(accounts::count).await? == 0 {
        let token = crate::auth::token::random_hex32();
        *app.setup_token.lock().expect("not poisoned") = Some(token.clone());
        // Printed once, to stdout and not through the logger: the one place a secret is shown.
        outln!(
            "No account exists yet. Create the first one here:\n  {}/setup?token={token}",
            app.config.public_url
        );
    }
    // The result of `serve`, after the setup link, so whoever reads stdout knows both.
    outln!(
        "Jetrack is listening on http://{} (dashboard: {}/)",
        app.config.listen,
        app.config.public_url
    );
    tracing::info!(
        data_dir = %data_dir.display(),
        sqlite = db::sqlite_version(),
        "listening on http://{}",
        app.config.listen
    );

    let metrics_server = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr()?;
            outln!("Prometheus metrics on http://{addr}/metrics");
            let routes = crate::server::metrics_routes(app.clone());
            Some(tokio::spawn(crate::server::serve_filter(
                routes,
                crate::server::Extra::default(),
                listener,
                std::future::pending(),
            )))
        }
        None => None,
    };
    let sweeper = spawn_sweeper(app.clone());
    let refresher = spawn_block_refresher(app.clone());
    let retention = crate::retention::spawn_daily(db.clone());
    let shutdown = crate::server::api::live::close_streams_after(app.clone(), shutdown_signal());
    crate::server::serve(app, listener, shutdown).await;
    sweeper.abort();
    refresher.abort();
    retention.abort();
    if let Some(task) = metrics_server {
        task.abort();
    }
    tracing::info!("draining the write queue");
    db.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every ten minutes: clears expired sessions, stale rate-limit state, salts past their time
/// (SPEC 3.4) and idempotency answers older than a day.
fn spawn_sweeper(app: App) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            app.sweep_limits();
            let now = now_ms();
            if let Err(e) = app
                .db
                .write(Durability::Normal, move |c| {
                    session::purge_expired(c, now)?;
                    crate::auth::device::purge_expired(c, now)?;
                    pipeline::purge_idempotency(c, now)?;
                    Ok(())
                })
                .await
            {
                tracing::warn!(error = %e, "could not purge expired sessions");
            }
            if let Err(e) = app.ingest.visitors.purge_via(&app.db).await {
                tracing::warn!(error = %e, "could not purge old salts");
            }
        }
    })
}

/// Every two seconds: rewrites the statistics blocks that activity changed, except those of
/// the last half hour, which are still being written and which queries build themselves.
fn spawn_block_refresher(app: App) -> tokio::task::JoinHandle<()> {
    use crate::stats::blocks;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            every.tick().await;
            let before = blocks::bucket_of(now_ms()) - 1;
            let outcome = app
                .db
                .write(Durability::Normal, move |c| {
                    blocks::refresh(c, None, before, 200)
                })
                .await;
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "could not refresh statistics blocks");
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// The password for `users add` / `users passwd`: from stdin, or generated and printed once.
fn password_from(stdin: bool) -> Result<(String, bool)> {
    if !stdin {
        let generated = crate::auth::token::random_hex32()[..24].to_string();
        return Ok((generated, true));
    }
    let input = std::io::stdin();
    if input.is_terminal() {
        eprintln!(
            "Password (one line, at least {} characters):",
            accounts::MIN_PASSWORD_LEN
        );
    }
    let mut line = String::new();
    input.lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    accounts::validate_password("password", &password).map_err(Error::invalid)?;
    Ok((password, false))
}

fn invalid_line(e: Error) -> Error {
    match e {
        Error::Invalid { errors, .. } => Error::Internal(errors.join("; ")),
        other => other,
    }
}

/// The id of the account `--email` names, or none when no `--email` was given (all accounts).
async fn owner_id(db: &Db, email: Option<&str>) -> Result<Option<String>> {
    Ok(match email {
        Some(e) => Some(account_by_email(db, e).await?.id),
        None => None,
    })
}

async fn account_by_email(db: &Db, email: &str) -> Result<accounts::Account> {
    let email = email.to_string();
    let lookup = email.clone();
    db.read(move |c| accounts::by_email(c, &lookup))
        .await?
        .ok_or_else(|| Error::NotFound(format!("no account with the email {email}")))
}

async fn users(cmd: UsersCommand, data_dir: &Path) -> Result<()> {
    // Validate what the command line gave before touching the database.
    let email = match &cmd {
        UsersCommand::Add { email, .. } => {
            Some(accounts::validate_email(email).map_err(Error::Internal)?)
        }
        UsersCommand::Passwd { email, .. }
        | UsersCommand::Remove { email }
        | UsersCommand::Limits { email, .. } => Some(email.trim().to_string()),
        UsersCommand::List => None,
    };
    if !matches!(cmd, UsersCommand::Add { .. } | UsersCommand::List) {
        existing_db(data_dir)?;
    }
    let db = open_db(data_dir)?;
    let outcome = users_with(cmd, &db, email.unwrap_or_default()).await;
    db.shutdown().await;
    outcome
}

async fn users_with(cmd: UsersCommand, db: &Db, email: String) -> Result<()> {
    match cmd {
        UsersCommand::Add {
            first_name,
            last_name,
            password_stdin,
            ..
        } => {
            let first = first_name
                .map(|v| accounts::validate_name("--first-name", &v))
                .transpose()
                .map_err(Error::Internal)?
                .flatten();
            let last = last_name
                .map(|v| accounts::validate_name("--last-name", &v))
                .transpose()
                .map_err(Error::Internal)?
                .flatten();
            let (pass, generated) = password_from(password_stdin).map_err(invalid_line)?;
            let hash = password::hash_async(pass.clone()).await?;
            let now = now_ms();
            let new = NewAccount {
                email,
                first_name: first,
                last_name: last,
            };
            let account = db
                .write(Durability::Full, move |c| {
                    accounts::insert(c, new, hash, now)
                })
                .await?;
            outln!("Created account {} ({})", account.email, account.id);
            if generated {
                outln!("Password: {pass}");
                eprintln!("This password is shown once; change it after the first login.");
            }
        }
        UsersCommand::List => {
            let list = db.read(accounts::list).await?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    let name = [a.first_name.as_deref(), a.last_name.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        a.id.clone(),
                        a.email.clone(),
                        if name.is_empty() { "-".into() } else { name },
                        iso_ms(a.created_at),
                        limit_text(a.limit_pageviews_per_month),
                        limit_text(a.limit_websites),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "EMAIL",
                    "NAME",
                    "CREATED",
                    "PAGEVIEWS/MONTH",
                    "WEBSITES",
                ],
                &rows,
            )?;
        }
        UsersCommand::Passwd { password_stdin, .. } => {
            let account = account_by_email(db, &email).await?;
            let (pass, generated) = password_from(password_stdin).map_err(invalid_line)?;
            let hash = password::hash_async(pass.clone()).await?;
            let id = account.id.clone();
            let ended = db
                .write(Durability::Full, move |c| {
                    accounts::set_password_hash(c, &id, &hash)?;
                    let now = now_ms();
                    audit::record(
                        c,
                        &id,
                        audit::Action::PasswordChanged,
                        None,
                        Some("jetrack users passwd"),
                        now,
                    )?;
                    session::delete_for_account(c, &id, None)
                })
                .await?;
            outln!(
                "Password changed for {}; {ended} session(s) ended",
                account.email
            );
            if generated {
                outln!("Password: {pass}");
            }
        }
        UsersCommand::Remove { .. } => {
            let account = account_by_email(db, &email).await?;
            let id = account.id.clone();
            db.write(Durability::Full, move |c| accounts::remove(c, &id))
                .await?;
            outln!("Removed account {} ({})", account.email, account.id);
        }
        UsersCommand::Limits {
            pageviews_per_month,
            websites,
            ..
        } => {
            let account = account_by_email(db, &email).await?;
            let id = account.id.clone();
            let account = db
                .write(Durability::Full, move |c| {
                    accounts::set_limits(
                        c,
                        &id,
                        pageviews_per_month.map(|l| l.0),
                        websites.map(|l| l.0),
                    )
                })
                .await?;
            outln!(
                "{}: pageviews per month {}, websites {}",
                account.email,
                limit_text(account.limit_pageviews_per_month),
                limit_text(account.limit_websites)
            );
        }
    }
    Ok(())
}

fn limit_text(limit: Option<i64>) -> String {
    limit.map_or_else(|| "unlimited".into(), |n| n.to_string())
}

/// A plain aligned table for the terminal.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> Result<()> {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", parts.join("  ").trim_end());
        Ok(())
    };
    line(headers.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    Ok(())
}

fn existing_db(data_dir: &Path) -> Result<PathBuf> {
    let path = data_dir.join(db::DB_FILE);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::NotFound(format!(
            "no database at {}",
            path.display()
        )))
    }
}

fn backup_cmd(args: BackupArgs, data_dir: &Path) -> Result<()> {
    let source = existing_db(data_dir)?;
    let dest = match &args.output {
        Some(out) => {
            let folder = out
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !folder.is_dir() {
                return Err(Error::NotFound(format!(
                    "the folder {} does not exist",
                    folder.display()
                )));
            }
            if out.exists() {
                return Err(Error::Conflict(format!(
                    "{} already exists; a backup never overwrites a file",
                    out.display()
                )));
            }
            out.clone()
        }
        None => backup::default_backup_path(data_dir),
    };
    let conn = db::open_connection(&source, migrations::MIGRATIONS)?;
    backup::vacuum_into(&conn, &dest).map_err(|e| match e {
        Error::Io(io) => Error::Internal(format!(
            "cannot write {}: {}",
            dest.display(),
            datadir::plain(&io)
        )),
        other => other,
    })?;
    outln!("{}", dest.display());
    if let Some(keep) = args.keep {
        for gone in backup::prune(data_dir, keep as usize)? {
            eprintln!("deleted old backup {}", gone.display());
        }
    }
    Ok(())
}

fn restore_cmd(args: RestoreArgs, data_dir: &Path) -> Result<()> {
    if !args.file.is_file() {
        return Err(Error::NotFound(format!(
            "no backup file at {}",
            args.file.display()
        )));
    }
    datadir::ensure(data_dir)?;
    let _lock = datadir::lock(data_dir).map_err(|e| match e {
        Error::Conflict(_) => Error::Conflict(format!(
            "a jetrack server is using {}; stop it before restoring",
            data_dir.display()
        )),
        other => other,
    })?;
    let target = data_dir.join(db::DB_FILE);
    backup::restore(&args.file, &target, args.force).map_err(|e| match e {
        Error::SchemaTooNew { .. } | Error::Conflict(_) => e,
        other => Error::Internal(format!(
            "{} is not a usable jetrack database: {other}",
            args.file.display()
        )),
    })?;
    outln!("{}", target.display());
    if target.with_extension("db.before-restore").exists() || backup::aside_path(&target).exists() {
        eprintln!(
            "the previous database was kept as {}",
            backup::aside_path(&target).display()
        );
    }
    Ok(())
}

fn check(data_dir: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let mut report = |ok: bool, line: String| {
        // A closed stdout must not hide the verdict, which also goes to stderr on failure.
        let _ = writeln!(
            std::io::stdout(),
            "{} {line}",
            if ok { "ok  " } else { "FAIL" }
        );
        if !ok {
            problems.push(line);
        }
    };
    let version = db::sqlite_version();
    report(
        sqlite_at_least(version, (3, 51, 3)),
        format!("SQLite {version} (bundled; needs ≥ 3.51.3)"),
    );
    // `check` changes nothing: a missing data dir is a problem, not something to create.
    if data_dir.is_dir() {
        match datadir::ensure(data_dir) {
            Ok(()) => report(
                true,
                format!("data directory {} is writable", data_dir.display()),
            ),
            Err(e) => report(false, e.to_string()),
        }
    } else {
        report(
            false,
            format!("no data directory at {}", data_dir.display()),
        );
    }
    let path = data_dir.join(db::DB_FILE);
    if !path.exists() {
        report(false, format!("no database at {}", path.display()));
    } else {
        match db::open_read_only(&path) {
            Err(e) => report(false, format!("cannot open {}: {e}", path.display())),
            Ok(conn) => {
                match backup::integrity_problems(&conn) {
                    Ok(p) if p.is_empty() => report(true, "integrity check passed".into()),
                    Ok(p) => report(false, format!("integrity check failed: {}", p.join("; "))),
                    Err(e) => report(false, format!("integrity check failed: {e}")),
                }
                let latest = migrations::latest_version(migrations::MIGRATIONS);
                match migrations::schema_version(&conn) {
                    Ok(v) if v == latest => report(true, format!("schema version {v} (current)")),
                    Ok(v) if v < latest => report(
                        true,
                        format!("schema version {v}; `jetrack serve` will migrate it to {latest}"),
                    ),
                    Ok(v) => report(
                        false,
                        format!(
                            "schema version {v} is newer than this jetrack supports ({latest})"
                        ),
                    ),
                    Err(e) => report(false, format!("cannot read the schema version: {e}")),
                }
                let orphans: rusqlite::Result<i64> =
                    conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    });
                match orphans {
                    Ok(0) => report(true, "foreign keys consistent".into()),
                    Ok(n) => report(false, format!("{n} rows break foreign keys")),
                    Err(e) => report(false, format!("foreign key check failed: {e}")),
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "check found {} problem(s): {}",
            problems.len(),
            problems.join("; ")
        )))
    }
}

/// `GET /healthz` of a running server with a plain blocking socket: the Docker image has no
/// shell or curl, and a server listening on 0.0.0.0 is asked on loopback.
fn healthcheck(args: HealthcheckArgs) -> Result<()> {
    let url = args.url.unwrap_or_else(|| {
        let mut addr = args.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}/healthz")
    });
    match http_get_status(&url, std::time::Duration::from_secs(5)) {
        Ok(200) => {
            outln!("{url}: 200");
            Ok(())
        }
        Ok(status) => Err(Error::Internal(format!("{url} answered {status}"))),
        Err(e) => Err(Error::Internal(format!("{url}: {e}"))),
    }
}

/// The status code of an HTTP/1.1 GET, each step bounded by `timeout` (also used by the
/// cold-start benchmark).
pub fn http_get_status(
    raw: &str,
    timeout: std::time::Duration,
) -> std::result::Result<u16, String> {
    use std::io::Read as _;
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err("only http:// is supported; ask the server itself, not a TLS proxy".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    let addrs = url
        .socket_addrs(|| Some(80))
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    let addr = addrs.first().ok_or("no address to connect to")?;
    let mut stream = std::net::TcpStream::connect_timeout(addr, timeout)
        .map_err(|e| format!("cannot connect: {}", datadir::plain(&e)))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| e.to_string())?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: jetrack-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {}", datadir::plain(&e)))?;
    // The status line is all that is needed: "HTTP/1.1 200 OK".
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while head.len() < 256 && !head.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(format!("no answer within {} s", timeout.as_secs()));
            }
            Err(e) => return Err(format!("no answer: {}", datadir::plain(&e))),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    match parts.next().and_then(|s| s.parse::<u16>().ok()) {
        Some(status) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!("not an HTTP answer: {:?}", line.trim_end())),
    }
}

/// Compares a dotted SQLite version with a minimum.
pub fn sqlite_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v >= min
}

async fn keys_cmd(cmd: KeysCommand, db: Db) -> Result<()> {
    let now = now_ms();
    match cmd {
        KeysCommand::Create {
            email,
            name,
            scope,
            expires_in_days,
        } => {
            let account = account_by_email(&db, &email).await?;
            let name = name
                .map(|n| keys::validate_name(&n))
                .transpose()
                .map_err(|e| Error::Internal(e.replacen("name", "--name", 1)))?
                .flatten();
            let new = keys::NewKey {
                name,
                scope: keys::Scope::parse(&scope).unwrap_or(keys::Scope::Full),
                expires_in_days,
            };
            let id = account.id.clone();
            let (key, secret) = db
                .write(Durability::Full, move |c| {
                    keys::issue(c, &id, new, None, now)
                })
                .await?;
            outln!("{secret}");
            eprintln!(
                "Created API key {} ({}) for {}; it is shown only this once.",
                key.prefix, key.id, account.email
            );
        }
        KeysCommand::List { email } => {
            let owner_id = owner_id(&db, email.as_deref()).await?;
            let (list, accounts) = db
                .read(move |c| Ok((keys::list(c, owner_id.as_deref())?, accounts::list(c)?)))
                .await?;
            let email_of = |id: &str| {
                accounts
                    .iter()
                    .find(|a| a.id == id)
                    .map_or("-".to_string(), |a| a.email.clone())
            };
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        email_of(&k.account_id),
                        k.name.clone().unwrap_or_else(|| "-".into()),
                        k.prefix.clone(),
                        k.scope.as_str().to_string(),
                        iso_ms(k.created_at),
                        k.last_used_at.map_or("never".into(), iso_ms),
                        k.expires_at.map_or("never".into(), iso_ms),
                    ]
                })
                .collect();
            print_table(
                &[
                    "ID",
                    "ACCOUNT",
                    "NAME",
                    "PREFIX",
                    "SCOPE",
                    "CREATED",
                    "LAST USED",
                    "EXPIRES",
                ],
                &rows,
            )?;
        }
        KeysCommand::Rotate { email, key, grace } => {
            let account = account_by_email(&db, &email).await?;
            let id = account.id.clone();
            let grace_ms = grace.map(|d| d.as_millis() as i64);
            let (key, secret) = db
                .write(Durability::Full, move |c| {
                    let mine = keys::list(c, Some(&id))?;
                    let target = match &key {
                        Some(wanted) => {
                            let found: Vec<_> = keys::find(c, wanted)?
                                .into_iter()
                                .filter(|k| k.account_id == id)
                                .collect();
                            one_key(found, wanted)?
                        }
                        None => match mine.len() {
                            0 => return Err(Error::NotFound("the account has no API key".into())),
                            1 => mine.into_iter().next().expect("one"),
                            n => {
                                return Err(Error::Conflict(format!(
                                    "the account has {n} keys; choose one with --key ID|PREFIX ({})",
                                    mine.iter().map(|k| k.prefix.as_str()).collect::<Vec<_>>().join(", ")
                                )));
                            }
                        },
                    };
                    keys::rotate(c, &target, grace_ms, None, now)
                })
                .await?;
            outln!("{secret}");
            match grace {
                Some(d) if !d.is_zero() => eprintln!(
                    "Rotated {}; the old secret keeps working for {}.",
                    key.prefix,
                    humantime::format_duration(d)
                ),
                _ => eprintln!("Rotated {}; the old secret no longer works.", key.prefix),
            }
        }
        KeysCommand::Revoke { key } => {
            let (revoked, email) = db
                .write(Durability::Full, move |c| {
                    let target = one_key(keys::find(c, &key)?, &key)?;
                    keys::revoke_recorded(c, &target, None, now)?;
                    let email = accounts::by_id(c, &target.account_id)?
                        .map(|a| a.email)
                        .unwrap_or_default();
                    Ok((target, email))
                })
                .await?;
            outln!("Revoked {} ({}) of {email}", revoked.prefix, revoked.id);
        }
    }
    Ok(())
}

/// Exactly one key for an id or prefix; several is an error that lists them.
fn one_key(mut found: Vec<keys::ApiKey>, wanted: &str) -> Result<keys::ApiKey> {
    match found.len() {
        0 => Err(Error::NotFound(format!(
            "no API key has the id or prefix {wanted}"
        ))),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Conflict(format!(
            "{wanted} matches {} keys, nothing was changed: {}",
            found.len(),
            found
                .iter()
                .map(|k| format!("{} ({})", k.prefix, k.id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn websites_cmd(cmd: WebsitesCommand, db: Db) -> Result<()> {
    match cmd {
        WebsitesCommand::Add {
            email,
            name,
            domain,
            timezone,
            public_url,
        } => {
            let public_url = config::parse_public_url(&public_url).map_err(Error::Internal)?;
            let mut problems = Vec::new();
            let name = websites::validate_name(&name)
                .map_err(|e| problems.push(e))
                .ok();
            let domain = websites::normalize_domain(&domain)
                .map_err(|e| problems.push(e))
                .ok();
            let timezone = websites::validate_timezone(&timezone)
                .map_err(|e| problems.push(e))
                .ok();
            let (Some(name), Some(domain), Some(timezone)) = (name, domain, timezone) else {
                return Err(Error::Internal(
                    problems
                        .join("; ")
                        .replace("name:", "--name:")
                        .replace("domain:", "--domain:")
                        .replace("timezone:", "--timezone:"),
                ));
            };
            let account = account_by_email(&db, &email).await?;
            let now = now_ms();
            let new = websites::NewWebsite {
                name,
                domain,
                timezone,
                cookie_mode: false,
                retention_days: None,
            };
            let site = db
                .write(Durability::Full, move |c| {
                    websites::add(c, &account, new, None, now)
                })
                .await?;
            outln!("{}", site.snippet(&public_url));
            eprintln!(
                "Added {} ({}) with id {}; paste the snippet above into its pages.",
                site.name, site.domain, site.id
            );
        }
        WebsitesCommand::List { email } => {
            let owner_id = owner_id(&db, email.as_deref()).await?;
            let (list, accounts) = db
                .read(move |c| Ok((websites::list(c, owner_id.as_deref())?, accounts::list(c)?)))
                .await?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|w| {
                    vec![
                        w.id.to_string(),
                        accounts
                            .iter()
                            .find(|a| a.id == w.account_id)
                            .map_or("-".into(), |a| a.email.clone()),
                        w.name.clone(),
                        w.domain.clone(),
                        w.timezone.clone(),
                        iso_ms(w.created_at),
                    ]
                })
                .collect();
            print_table(
                &["ID", "ACCOUNT", "NAME", "DOMAIN", "TIMEZONE", "CREATED"],
                &rows,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_sqlite_is_recent_enough() {
        assert!(
            sqlite_at_least(db::sqlite_version(), (3, 51, 3)),
            "{}",
            db::sqlite_version()
        );
        assert!(!sqlite_at_least("3.51.2", (3, 51, 3)));
        assert!(sqlite_at_least("3.52.0", (3, 51, 3)));
    }

    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
