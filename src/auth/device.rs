//! Device cookies: a browser that logged in to an account before carries a random token that
//! names that account. Failed logins make an email wait (`limits.rs`); a browser with a valid
//! device token for that email's account is not held back by that wait, so someone guessing
//! the email from many addresses cannot lock its owner out, while guesses without the token
//! stay as slow as before. The token is sent to the login route only (its cookie path), and the
//! database keeps its SHA-256 (docs/architecture.md, "Sessions and security").

use rusqlite::{Connection, OptionalExtension, params};

use super::session::TokenCookie;
use super::token::{random_hex32, sha256};
use crate::error::Result;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// A device is forgotten this long after the login that made it.
pub const LIFETIME_MS: i64 = 180 * DAY_MS;
/// Devices kept per account: older ones are forgotten first.
const PER_ACCOUNT: i64 = 20;

/// The device cookie, fixed by the public URL's scheme: sent to the login route only.
pub fn cookie(secure: bool) -> TokenCookie {
    TokenCookie {
        name: if secure {
            "__Secure-jetrack_device"
        } else {
            "jetrack_device"
        },
        path: "/api/v1/auth/login",
        same_site: "Strict",
        max_age_secs: LIFETIME_MS / 1000,
        secure,
    }
}

/// Remembers this browser for `account_id`; returns the token for the cookie.
pub fn create(conn: &Connection, account_id: &str, now: i64) -> Result<String> {
    let token = random_hex32();
    conn.execute(
        "INSERT INTO login_devices (token_hash, account_id, created_at) VALUES (?1, ?2, ?3)",
        params![sha256(token.as_bytes()).as_slice(), account_id, now],
    )?;
    conn.execute(
        "DELETE FROM login_devices WHERE account_id = ?1 AND token_hash NOT IN (
             SELECT token_hash FROM login_devices WHERE account_id = ?1
             ORDER BY created_at DESC LIMIT ?2)",
        params![account_id, PER_ACCOUNT],
    )?;
    Ok(token)
}

/// Whether `token` is a live device of `account_id`.
pub fn belongs_to(conn: &Connection, token: &str, account_id: &str, now: i64) -> Result<bool> {
    let found: Option<String> = conn
        .query_row(
            "SELECT account_id FROM login_devices WHERE token_hash = ?1 AND created_at > ?2",
            params![sha256(token.as_bytes()).as_slice(), now - LIFETIME_MS],
            |r| r.get(0),
        )
        .optional()?;
    Ok(found.as_deref() == Some(account_id))
}

/// Forgets one device (after too many wrong passwords from it).
pub fn forget(conn: &Connection, token: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM login_devices WHERE token_hash = ?1",
        params![sha256(token.as_bytes()).as_slice()],
    )?;
    Ok(())
}

pub fn purge_expired(conn: &Connection, now: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM login_devices WHERE created_at <= ?1",
        params![now - LIFETIME_MS],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_goes_to_the_login_route_only() {
        let plain = cookie(false).set("abc");
        assert!(
            plain.starts_with(
                "jetrack_device=abc; Path=/api/v1/auth/login; HttpOnly; SameSite=Strict"
            )
        );
        assert!(!plain.contains("Secure"));
        let secure = cookie(true).set("abc");
        assert!(secure.starts_with("__Secure-jetrack_device=abc;"));
        assert!(secure.ends_with("; Secure"));
    }
}
