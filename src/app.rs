//! `App`: the shared state handed to every handler.

use std::sync::{Arc, Mutex};

use crate::auth::limits::LoginLimits;
use crate::auth::session::SessionCookie;
use crate::config::Config;
use crate::db::Db;

#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub db: Db,
    pub login_limits: Arc<LoginLimits>,
    /// The one-time token of the setup link, while no account exists.
    pub setup_token: Arc<Mutex<Option<String>>>,
}

impl App {
    pub fn new(config: Config, db: Db) -> App {
        let login_limits = Arc::new(LoginLimits::new(config.login_attempts_per_minute));
        App {
            config: Arc::new(config),
            db,
            login_limits,
            setup_token: Arc::new(Mutex::new(None)),
        }
    }

    pub fn cookie(&self) -> SessionCookie {
        SessionCookie {
            secure: self.config.is_https(),
        }
    }
}
