//! API keys (SPEC 1): `bj_live_` + 64 hex characters from the OS CSPRNG. Only the SHA-256 of a
//! key is stored; the key itself is shown once. The only place their table is read or written.

use std::net::IpAddr;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::audit::{self, Action};
use crate::auth::token::{random_hex32, sha256};
use crate::error::{Error, Result};
use crate::time::iso_ms;

pub const KEY_PREFIX: &str = "bj_live_";
pub const KEY_LEN: usize = 72;
pub const PREFIX_LEN: usize = 12;
pub const MAX_KEYS_PER_ACCOUNT: i64 = 20;
pub const MAX_EXPIRES_IN_DAYS: i64 = 3650;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Full,
    Read,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "full" => Some(Scope::Full),
            "read" => Some(Scope::Read),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Full => "full",
            Scope::Read => "read",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: String,
    pub account_id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub scope: Scope,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A key as the API lists it: never the secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: String,
    pub name: Option<String>,
    pub prefix: String,
    pub scope: Scope,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// The answer that creates or regenerates a key: the one time the secret is shown.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewKeyView {
    pub key: String,
    #[serde(flatten)]
    pub view: ApiKeyView,
}

impl ApiKey {
    pub fn view(&self) -> ApiKeyView {
        ApiKeyView {
            id: self.id.clone(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scope: self.scope,
            created_at: iso_ms(self.created_at),
            last_used_at: self.last_used_at.map(iso_ms),
            expires_at: self.expires_at.map(iso_ms),
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
        let scope: String = r.get("scope")?;
        Ok(ApiKey {
            id: r.get("id")?,
            account_id: r.get("account_id")?,
            name: r.get("name")?,
            prefix: r.get("prefix")?,
            scope: Scope::parse(&scope).unwrap_or(Scope::Read),
            created_at: r.get("created_at")?,
            last_used_at: r.get("last_used_at")?,
            expires_at: r.get("expires_at")?,
        })
    }
}

const COLUMNS: &str = "id, account_id, name, prefix, scope, created_at, last_used_at, expires_at";

/// A fresh secret: `bj_live_` and 32 random bytes in hex.
pub fn generate() -> String {
    format!("{KEY_PREFIX}{}", random_hex32())
}

/// Whether a presented string has the shape of a key at all.
pub fn well_formed(key: &str) -> bool {
    key.len() == KEY_LEN
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn hash(key: &str) -> [u8; 32] {
    sha256(key.as_bytes())
}

/// A key's optional name: the same rules as a person's name (trimmed, at most 100
/// characters, no control characters; empty means none).
pub fn validate_name(raw: &str) -> std::result::Result<Option<String>, String> {
    crate::accounts::validate_name("name", raw)
}

pub fn validate_expires_in_days(days: i64) -> std::result::Result<i64, String> {
    if (1..=MAX_EXPIRES_IN_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(format!(
            "expiresInDays: must be between 1 and {MAX_EXPIRES_IN_DAYS}"
        ))
    }
}

pub struct NewKey {
    pub name: Option<String>,
    pub scope: Scope,
    pub expires_in_days: Option<i64>,
}

/// Creates a key; returns it with its secret. An account holds at most 20 keys.
pub fn create(
    conn: &Connection,
    account_id: &str,
    new: NewKey,
    now: i64,
) -> Result<(ApiKey, String)> {
    let held: i64 = conn.query_row(
        "SELECT count(*) FROM api_keys WHERE account_id = ?1",
        [account_id],
        |r| r.get(0),
    )?;
    if held >= MAX_KEYS_PER_ACCOUNT {
        return Err(Error::Conflict(format!(
            "An account can hold at most {MAX_KEYS_PER_ACCOUNT} API keys; revoke one first"
        )));
    }
    let secret = generate();
    let id = uuid::Uuid::new_v4().to_string();
    let expires_at = new.expires_in_days.map(|d| now + d * DAY_MS);
    conn.execute(
        "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scope, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            account_id,
            new.name,
            &secret[..PREFIX_LEN],
            hash(&secret).as_slice(),
            new.scope.as_str(),
            now,
            expires_at
        ],
    )?;
    let key =
        by_id(conn, &id)?.ok_or_else(|| Error::Internal("key vanished after insert".into()))?;
    Ok((key, secret))
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<ApiKey>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
            [id],
            ApiKey::from_row,
        )
        .optional()?)
}

/// A key of the account, or 404 (another account's key is not revealed).
pub fn owned(conn: &Connection, account_id: &str, id: &str) -> Result<ApiKey> {
    by_id(conn, id)?
        .filter(|k| k.account_id == account_id)
        .ok_or_else(|| Error::NotFound("API key not found".into()))
}

pub fn list(conn: &Connection, account_id: Option<&str>) -> Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE ?1 IS NULL OR account_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([account_id], ApiKey::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Keys whose id or prefix is `id_or_prefix`.
pub fn find(conn: &Connection, id_or_prefix: &str) -> Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM api_keys
         WHERE id = ?1 OR (length(?1) >= 8 AND substr(prefix, 1, length(?1)) = ?1)
         ORDER BY created_at"
    ))?;
    let rows = stmt.query_map([id_or_prefix], ApiKey::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Gives a key a new secret; the old one stops working at once, or after `grace_ms`.
pub fn regenerate(
    conn: &Connection,
    id: &str,
    grace_ms: Option<i64>,
    now: i64,
) -> Result<(ApiKey, String)> {
    let secret = generate();
    let (previous_hash, valid_until): (Option<Vec<u8>>, Option<i64>) = match grace_ms {
        Some(ms) if ms > 0 => {
            let old: Vec<u8> =
                conn.query_row("SELECT key_hash FROM api_keys WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            (Some(old), Some(now + ms))
        }
        _ => (None, None),
    };
    let n = conn.execute(
        "UPDATE api_keys SET key_hash = ?2, prefix = ?3, previous_hash = ?4, previous_valid_until = ?5
         WHERE id = ?1",
        params![id, hash(&secret).as_slice(), &secret[..PREFIX_LEN], previous_hash, valid_until],
    )?;
    if n == 0 {
        return Err(Error::NotFound("API key not found".into()));
    }
    let key = by_id(conn, id)?.ok_or_else(|| Error::NotFound("API key not found".into()))?;
    Ok((key, secret))
}

pub fn revoke(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM api_keys WHERE id = ?1", [id])?;
    Ok(())
}

/// The live key a secret belongs to: not expired, and either the current secret or a
/// previous one still inside its grace window.
pub fn authenticate(conn: &Connection, secret: &str, now: i64) -> Result<Option<ApiKey>> {
    let h = hash(secret);
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM api_keys
                 WHERE (key_hash = ?1 OR (previous_hash = ?1 AND previous_valid_until > ?2))
                   AND (expires_at IS NULL OR expires_at > ?2)"
            ),
            params![h.as_slice(), now],
            ApiKey::from_row,
        )
        .optional()?)
}

/// What the audit log says of a key: its prefix and name, never the secret.
pub fn audit_detail(key: &ApiKey) -> String {
    match &key.name {
        Some(name) => format!("{} ({name})", key.prefix),
        None => key.prefix.clone(),
    }
}

/// Creates a key and records it in the account's audit log (from the dashboard with the
/// client's address, from the shell without).
pub fn issue(
    conn: &Connection,
    account_id: &str,
    new: NewKey,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<(ApiKey, String)> {
    let (key, secret) = create(conn, account_id, new, now)?;
    audit::record(
        conn,
        account_id,
        Action::KeyCreated,
        ip,
        Some(&audit_detail(&key)),
        now,
    )?;
    Ok((key, secret))
}

/// Regenerates a key (the old secret dies at once, or after `grace_ms`) and records it.
pub fn rotate(
    conn: &Connection,
    old: &ApiKey,
    grace_ms: Option<i64>,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<(ApiKey, String)> {
    let (key, secret) = regenerate(conn, &old.id, grace_ms, now)?;
    let detail = format!("{} → {}", old.prefix, key.prefix);
    audit::record(
        conn,
        &old.account_id,
        Action::KeyRegenerated,
        ip,
        Some(&detail),
        now,
    )?;
    Ok((key, secret))
}

/// Revokes a key and records it.
pub fn revoke_recorded(
    conn: &Connection,
    key: &ApiKey,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<()> {
    revoke(conn, &key.id)?;
    audit::record(
        conn,
        &key.account_id,
        Action::KeyRevoked,
        ip,
        Some(&audit_detail(key)),
        now,
    )
}

pub fn touch(conn: &Connection, id: &str, at: i64) -> Result<()> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, 0), ?2) WHERE id = ?1",
        params![id, at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape() {
        let k = generate();
        assert_eq!(k.len(), KEY_LEN);
        assert!(k.starts_with("bj_live_"));
        assert!(well_formed(&k));
        assert!(!well_formed(&k.to_uppercase()));
        assert!(!well_formed(&k[..71]));
        assert!(!well_formed(&format!("bj_test_{}", &k[8..])));
        assert_ne!(generate(), k);
    }
}
