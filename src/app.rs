//! `App`: the shared state handed to every handler.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::auth::limits::LoginLimits;
use crate::auth::ratelimit::{AuthFailures, Throttle};
use crate::auth::session::TokenCookie;
use crate::config::Config;
use crate::db::Db;
use crate::ingest::pipeline::Ingest;
use crate::server::api::live::OpenStreams;
use crate::stats::realtime::Recent;
use tokio::sync::watch;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub login_limits: Arc<LoginLimits>,
    /// Budgets per API key id, and per account for dashboard sessions.
    pub key_throttle: Arc<Throttle<String>>,
    pub session_throttle: Arc<Throttle<String>>,
    pub auth_failures: Arc<AuthFailures>,
    /// When each key's `lastUsedAt` was last written by this process.
    pub key_last_written: Arc<Mutex<HashMap<String, Instant>>>,
    /// The one-time token of the setup link, while no account exists.
    pub setup_token: Arc<Mutex<Option<String>>>,
    /// Tracking: collect, import, and their metrics.
    pub ingest: Arc<Ingest>,
    /// The live streams open per dashboard session.
    pub live_streams: Arc<OpenStreams>,
    /// Who was active in the last minute, for `realtime` (the writer tells it of each
    /// activity it stores).
    pub recent: Arc<Recent>,
    /// Set when the server begins to shut down: every live stream then ends.
    pub closing: Arc<watch::Sender<bool>>,
}

impl App {
    pub fn new(config: Config, db: Db, ingest: Arc<Ingest>) -> App {
        App {
            login_limits: Arc::new(LoginLimits::new(config.login_attempts_per_minute)),
            key_throttle: Arc::new(Throttle::new(config.api_rate_limit, config.api_rate_burst)),
            session_throttle: Arc::new(Throttle::new(
                config.session_rate_limit,
                config.session_rate_limit,
            )),
            auth_failures: Arc::new(AuthFailures::new(config.auth_fail_limit)),
            key_last_written: Arc::new(Mutex::new(HashMap::new())),
            setup_token: Arc::new(Mutex::new(None)),
            recent: Arc::clone(&ingest.store.recent),
            ingest,
            live_streams: Arc::default(),
            closing: Arc::new(watch::channel(false).0),
            config: Arc::new(config),
            db,
        }
    }

    pub fn cookie(&self) -> TokenCookie {
        TokenCookie::session(self.config.is_https())
    }

    pub fn device_cookie(&self) -> TokenCookie {
        crate::auth::device::cookie(self.config.is_https())
    }

    /// Drops rate-limit state that no longer limits anyone.
    pub fn sweep_limits(&self) {
        self.login_limits.sweep();
        self.key_throttle.sweep();
        self.session_throttle.sweep();
        self.auth_failures.sweep();
        self.ingest.sweep();
    }
}
