//! Dashboard sessions: a random token in an HttpOnly cookie, its SHA-256 in the database,
//! 7 days idle and 30 days absolute (SPEC 8.2). The CSRF token is derived from the session
//! token, so it is bound to the session and needs no storage.

use http::HeaderMap;
use rusqlite::{Connection, OptionalExtension, params};

use super::token::{constant_time_eq, random_hex32, sha256};
use crate::accounts::{self, Account};
use crate::error::Result;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
pub const IDLE_TIMEOUT_MS: i64 = 7 * DAY_MS;
pub const ABSOLUTE_TIMEOUT_MS: i64 = 30 * DAY_MS;
/// `last_seen_at` is written at most this often per session.
pub const TOUCH_EVERY_MS: i64 = 60 * 1000;

pub type TokenHash = [u8; 32];

/// A cookie that carries a 64-hex token: its name, scope and lifetime. The session's and the
/// device's (`device.rs`) differ only in these.
#[derive(Clone, Copy, Debug)]
pub struct TokenCookie {
    pub name: &'static str,
    pub path: &'static str,
    pub same_site: &'static str,
    pub max_age_secs: i64,
    pub secure: bool,
}

impl TokenCookie {
    /// The dashboard session's cookie, fixed by the public URL's scheme.
    pub fn session(secure: bool) -> TokenCookie {
        TokenCookie {
            name: if secure {
                "__Host-jetrack_session"
            } else {
                "jetrack_session"
            },
            path: "/",
            same_site: "Lax",
            max_age_secs: ABSOLUTE_TIMEOUT_MS / 1000,
            secure,
        }
    }

    pub fn set(self, token: &str) -> String {
        self.header(token, self.max_age_secs)
    }

    pub fn clear(self) -> String {
        self.header("", 0)
    }

    fn header(self, value: &str, max_age: i64) -> String {
        format!(
            "{}={value}; Path={}; HttpOnly; SameSite={}; Max-Age={max_age}{}",
            self.name,
            self.path,
            self.same_site,
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The token from the request's `Cookie` headers, if well-formed.
    pub fn read(self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers, self.name)
    }
}

/// A token cookie's value (64 hex characters) from the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn token_hash(token: &str) -> TokenHash {
    sha256(token.as_bytes())
}

pub fn csrf_token(session_token: &str) -> String {
    hex::encode(sha256(format!("jetrack-csrf\0{session_token}").as_bytes()))
}

pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
    constant_time_eq(csrf_token(session_token).as_bytes(), presented.as_bytes())
}

/// Starts a session; returns the token for the cookie (the database keeps only its hash).
pub fn create(conn: &Connection, account_id: &str, now: i64) -> Result<String> {
    let token = random_hex32();
    conn.execute(
        "INSERT INTO sessions (token_hash, account_id, created_at, last_seen_at) VALUES (?1, ?2, ?3, ?3)",
        params![token_hash(&token).as_slice(), account_id, now],
    )?;
    Ok(token)
}

pub struct LiveSession {
    pub hash: TokenHash,
    pub account: Account,
    pub last_seen_at: i64,
}

/// The account behind a token, unless the session ended, idled out or grew too old.
pub fn lookup(conn: &Connection, token: &str, now: i64) -> Result<Option<LiveSession>> {
    let hash = token_hash(token);
    let row = conn
        .query_row(
            "SELECT account_id, last_seen_at FROM sessions
             WHERE token_hash = ?1 AND created_at > ?2 AND last_seen_at > ?3",
            params![
                hash.as_slice(),
                now - ABSOLUTE_TIMEOUT_MS,
                now - IDLE_TIMEOUT_MS
            ],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?;
    let Some((account_id, last_seen_at)) = row else {
        return Ok(None);
    };
    Ok(
        accounts::by_id(conn, &account_id)?.map(|account| LiveSession {
            hash,
            account,
            last_seen_at,
        }),
    )
}

pub fn touch(conn: &Connection, hash: &TokenHash, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
        params![hash.as_slice(), now],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, hash: &TokenHash) -> Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [hash.as_slice()],
    )?;
    Ok(())
}

/// Ends every session of an account but `keep` (the one that changed the password).
pub fn delete_for_account(
    conn: &Connection,
    account_id: &str,
    keep: Option<&TokenHash>,
) -> Result<usize> {
    let n = match keep {
        Some(keep) => conn.execute(
            "DELETE FROM sessions WHERE account_id = ?1 AND token_hash <> ?2",
            params![account_id, keep.as_slice()],
        )?,
        None => conn.execute("DELETE FROM sessions WHERE account_id = ?1", [account_id])?,
    };
    Ok(n)
}

/// Removes sessions that can no longer be used.
pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM sessions WHERE created_at <= ?1 OR last_seen_at <= ?2",
        params![now - ABSOLUTE_TIMEOUT_MS, now - IDLE_TIMEOUT_MS],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_attributes_follow_the_scheme() {
        let plain = TokenCookie::session(false).set("abc");
        assert!(plain.starts_with("jetrack_session=abc; Path=/; HttpOnly; SameSite=Lax"));
        assert!(!plain.contains("Secure") && !plain.contains("Domain"));
        let secure = TokenCookie::session(true).set("abc");
        assert!(secure.starts_with("__Host-jetrack_session=abc;"));
        assert!(secure.ends_with("; Secure"));
    }

    #[test]
    fn csrf_is_bound_to_the_session() {
        let a = random_hex32();
        let b = random_hex32();
        assert!(csrf_matches(&a, &csrf_token(&a)));
        assert!(!csrf_matches(&b, &csrf_token(&a)));
    }
}
