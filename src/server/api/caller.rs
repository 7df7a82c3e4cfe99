//! Who is calling the API: an API key (`X-API-Key` or `Authorization: Bearer`) or the
//! dashboard's session cookie (SPEC 2.1), and the rate-limit budget they spend (SPEC 2.2).

use std::net::IpAddr;
use std::time::Instant;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use crate::accounts::{self, Account};
use crate::app::App;
use crate::auth::ratelimit::Budget;
use crate::auth::session::{self, LiveSession};
use crate::error::{Error, Result};
use crate::keys::{self, ApiKey, Scope};
use crate::time::now_ms;

/// `lastUsedAt` is written at most this often per key.
const LAST_USED_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub enum Caller {
    Session { token: String, session: LiveSession },
    Key { key: ApiKey, account: Account },
}

impl Caller {
    pub fn account(&self) -> &Account {
        match self {
            Caller::Session { session, .. } => &session.account,
            Caller::Key { account, .. } => account,
        }
    }

    pub fn scope(&self) -> Scope {
        match self {
            Caller::Session { .. } => Scope::Full,
            Caller::Key { key, .. } => key.scope,
        }
    }

    pub fn is_session(&self) -> bool {
        matches!(self, Caller::Session { .. })
    }
}

/// The API key a request presents, if any. A header given twice, or both headers with
/// different values → 400: which key counts must never depend on a header's position.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<String>> {
    for name in ["x-api-key", "authorization"] {
        if headers.get_all(name).iter().nth(1).is_some() {
            let shown = if name == "x-api-key" {
                "X-API-Key"
            } else {
                "Authorization"
            };
            return Err(Error::invalid(format!(
                "{shown}: given more than once; send one key"
            )));
        }
    }
    let header_key = headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("").trim().to_string());
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("").trim().to_string());
    let bearer = authorization
        .as_deref()
        .and_then(|v| match v.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                Some(rest.trim().to_string())
            }
            _ => None,
        });
    match (header_key, bearer) {
        (Some(a), Some(b)) if a != b => Err(Error::invalid(
            "X-API-Key: differs from the key in Authorization; send one of them",
        )),
        (Some(a), _) => Ok(Some(a)),
        (None, Some(b)) => Ok(Some(b)),
        // Another scheme alone (Basic, …) is a credential that cannot be right: a bad key.
        // Beside X-API-Key it is left alone, as a proxy in front may add one.
        (None, None) => Ok(authorization.map(|_| String::new())),
    }
}

/// Authenticates a request: an API key when one is presented, else the session cookie.
/// Every failure is the same 401; addresses with too many bad credentials get 429 without a
/// lookup.
pub async fn authenticate(app: &App, headers: &HeaderMap, ip: IpAddr) -> Result<Caller> {
    if let Some(key) = presented_key(headers)? {
        if let Some(wait) = app.auth_failures.blocked(ip) {
            return Err(too_many_failures(wait));
        }
        return match authenticate_key(app, key).await? {
            Some(caller) => Ok(caller),
            None => {
                app.auth_failures.failed(ip);
                Err(Error::Unauthorized)
            }
        };
    }
    let Some(token) = app.cookie().read(headers) else {
        return Err(Error::Unauthorized);
    };
    if let Some(wait) = app.auth_failures.blocked(ip) {
        return Err(too_many_failures(wait));
    }
    let now = now_ms();
    let lookup = token.clone();
    let Some(live) = app
        .db
        .read(move |c| session::lookup(c, &lookup, now))
        .await?
    else {
        app.auth_failures.failed(ip);
        return Err(Error::Unauthorized);
    };
    if now - live.last_seen_at >= session::TOUCH_EVERY_MS {
        let hash = live.hash;
        app.db
            .write_detached(move |c| session::touch(c, &hash, now));
    }
    Ok(Caller::Session {
        token,
        session: live,
    })
}

fn too_many_failures(wait: u64) -> Error {
    Error::TooManyRequests {
        message: "Too many failed authentications from this address; try again later".into(),
        retry_after: wait,
    }
}

/// Looks the key up on every request: no cache, so a regenerated or revoked key (also by
/// another process) fails on the very next request.
async fn authenticate_key(app: &App, key: String) -> Result<Option<Caller>> {
    if !keys::well_formed(&key) {
        return Ok(None);
    }
    let now = now_ms();
    let found = app
        .db
        .read(move |c| {
            let Some(key) = keys::authenticate(c, &key, now)? else {
                return Ok(None);
            };
            Ok(accounts::by_id(c, &key.account_id)?.map(|account| (key, account)))
        })
        .await?;
    let Some((key, account)) = found else {
        return Ok(None);
    };
    record_use(app, &key.id, now);
    Ok(Some(Caller::Key { key, account }))
}

/// Writes `lastUsedAt` off the request path, at most once a minute per key.
fn record_use(app: &App, key_id: &str, now: i64) {
    {
        let mut last = app.key_last_written.lock().expect("not poisoned");
        if last
            .get(key_id)
            .is_some_and(|at| at.elapsed() < LAST_USED_EVERY)
        {
            return;
        }
        if last.len() > 10_000 {
            last.retain(|_, at| at.elapsed() < LAST_USED_EVERY);
        }
        last.insert(key_id.to_string(), Instant::now());
    }
    let id = key_id.to_string();
    tracing::debug!(key = %id, "recording lastUsedAt");
    app.db.write_detached(move |c| keys::touch(c, &id, now));
}

/// Spends one request of the caller's budget: per key, or per account for sessions.
pub fn spend(app: &App, caller: &Caller) -> std::result::Result<Budget, (Budget, u64)> {
    match caller {
        Caller::Key { key, .. } => app.key_throttle.check(&key.id),
        Caller::Session { session, .. } => app.session_throttle.check(&session.account.id),
    }
}
