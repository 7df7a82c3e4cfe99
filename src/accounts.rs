//! Accounts: the people who log in. The only place their table is read or written.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::time::iso_ms;

pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 1024;
const MAX_NAME_LEN: usize = 100;
const MAX_EMAIL_LEN: usize = 254;
const MAX_PICTURE_LEN: usize = 2000;

#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub picture: Option<String>,
    pub password_hash: String,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    pub limit_pageviews_per_month: Option<i64>,
    pub limit_websites: Option<i64>,
}

/// The account as the API shows it (SPEC 2.4).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub picture: Option<String>,
    pub email_verified_at: Option<String>,
    pub created_at: String,
}

impl Account {
    pub fn view(&self) -> AccountView {
        AccountView {
            id: self.id.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            picture: self.picture.clone(),
            email_verified_at: self.email_verified_at.map(iso_ms),
            created_at: iso_ms(self.created_at),
        }
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
        Ok(Account {
            id: r.get("id")?,
            email: r.get("email")?,
            first_name: r.get("first_name")?,
            last_name: r.get("last_name")?,
            picture: r.get("picture")?,
            password_hash: r.get("password_hash")?,
            email_verified_at: r.get("email_verified_at")?,
            created_at: r.get("created_at")?,
            limit_pageviews_per_month: r.get("limit_pageviews_per_month")?,
            limit_websites: r.get("limit_websites")?,
        })
    }
}

const COLUMNS: &str = "id, email, first_name, last_name, picture, password_hash, \
     email_verified_at, created_at, limit_pageviews_per_month, limit_websites";

/// A new account, validated.
pub struct NewAccount {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// Checks an email address the way a person would: one `@`, something on each side, a dot or
/// `localhost` in the domain, no spaces. Returns it trimmed.
pub fn validate_email(raw: &str) -> std::result::Result<String, String> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("email: must not be empty".into());
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(format!("email: must be at most {MAX_EMAIL_LEN} characters"));
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && (domain.contains('.') || domain == "localhost")
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(email.to_string())
    } else {
        Err("email: must be a valid email address".into())
    }
}

pub fn validate_password(field: &str, password: &str) -> std::result::Result<(), String> {
    if password.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "{field}: must be at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if chars > MAX_PASSWORD_LEN {
        return Err(format!(
            "{field}: must be at most {MAX_PASSWORD_LEN} characters"
        ));
    }
    Ok(())
}

/// A name part: trimmed, at most 100 characters; empty means none.
pub fn validate_name(field: &str, raw: &str) -> std::result::Result<Option<String>, String> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "{field}: must be at most {MAX_NAME_LEN} characters"
        ));
    }
    // Checked before trimming, as the OpenAPI document says: "\n" around a name is refused too.
    if raw.chars().any(char::is_control) {
        return Err(format!("{field}: must not contain control characters"));
    }
    Ok((!name.is_empty()).then(|| name.to_string()))
}

/// A picture is an absolute http(s) URL.
pub fn validate_picture(raw: &str) -> std::result::Result<Option<String>, String> {
    let url = raw.trim();
    if url.is_empty() {
        return Ok(None);
    }
    if url.len() > MAX_PICTURE_LEN {
        return Err(format!(
            "picture: must be at most {MAX_PICTURE_LEN} characters"
        ));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(Some(url.to_string()))
        }
        _ => Err("picture: must be an http(s) URL".into()),
    }
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?)
}

pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"),
            [id],
            Account::from_row,
        )
        .optional()?)
}

pub fn by_email(conn: &Connection, email: &str) -> Result<Option<Account>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM accounts WHERE email = ?1"),
            [email.trim()],
            Account::from_row,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Account>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY created_at, email"
    ))?;
    let rows = stmt.query_map([], Account::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Inserts an account; the operator vouches for its email, so it is verified at once.
pub fn insert(
    conn: &Connection,
    new: NewAccount,
    password_hash: String,
    now: i64,
) -> Result<Account> {
    if by_email(conn, &new.email)?.is_some() {
        return Err(Error::Conflict(format!(
            "An account with the email {} already exists",
            new.email
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO accounts (id, email, first_name, last_name, password_hash, email_verified_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![id, new.email, new.first_name, new.last_name, password_hash, now],
    )?;
    by_id(conn, &id)?.ok_or_else(|| Error::Internal("account vanished after insert".into()))
}

/// The profile fields a PATCH may change; `None` leaves a field as it is.
#[derive(Default)]
pub struct ProfileChange {
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub picture: Option<Option<String>>,
}

pub fn update_profile(conn: &Connection, id: &str, change: ProfileChange) -> Result<Account> {
    let mut account =
        by_id(conn, id)?.ok_or_else(|| Error::NotFound("Account not found".into()))?;
    if let Some(v) = change.first_name {
        account.first_name = v;
    }
    if let Some(v) = change.last_name {
        account.last_name = v;
    }
    if let Some(v) = change.picture {
        account.picture = v;
    }
    conn.execute(
        "UPDATE accounts SET first_name = ?2, last_name = ?3, picture = ?4 WHERE id = ?1",
        params![id, account.first_name, account.last_name, account.picture],
    )?;
    Ok(account)
}

pub fn set_password_hash(conn: &Connection, id: &str, hash: &str) -> Result<()> {
    let n = conn.execute(
        "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )?;
    if n == 0 {
        return Err(Error::NotFound("Account not found".into()));
    }
    Ok(())
}

/// The account's monthly pageview limit (`None`: unlimited, or no such account).
pub fn pageview_limit(conn: &Connection, account_id: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT limit_pageviews_per_month FROM accounts WHERE id = ?1")?
        .query_row([account_id], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .flatten())
}

/// Pageviews of the account's websites whose own timestamp is in `[start, end)`: one range
/// of the `(site, at)` key per website.
pub fn pageviews_between(conn: &Connection, account_id: &str, start: i64, end: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum((SELECT count(*) FROM pageviews p
                                  WHERE p.site = s.num AND p.at >= ?2 AND p.at < ?3)), 0)
             FROM websites w JOIN sites s ON s.website_id = w.id WHERE w.account_id = ?1",
        )?
        .query_row(rusqlite::params![account_id, start, end], |r| r.get(0))?)
}

pub fn remove(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
    Ok(())
}

/// Operator limits; `None` leaves a limit as it is, `Some(None)` makes it unlimited.
pub fn set_limits(
    conn: &Connection,
    id: &str,
    pageviews_per_month: Option<Option<i64>>,
    websites: Option<Option<i64>>,
) -> Result<Account> {
    if let Some(v) = pageviews_per_month {
        conn.execute(
            "UPDATE accounts SET limit_pageviews_per_month = ?2 WHERE id = ?1",
            params![id, v],
        )?;
    }
    if let Some(v) = websites {
        conn.execute(
            "UPDATE accounts SET limit_websites = ?2 WHERE id = ?1",
            params![id, v],
        )?;
    }
    by_id(conn, id)?.ok_or_else(|| Error::NotFound("Account not found".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        assert_eq!(validate_email(" a@b.co ").unwrap(), "a@b.co");
        assert!(validate_email("admin@localhost").is_ok());
        for bad in [
            "", "plain", "@b.co", "a@", "a@b", "a b@c.de", "a@@b.co", "a@.b.co",
        ] {
            assert!(validate_email(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn password_rules() {
        assert_eq!(
            validate_password("password", "").unwrap_err(),
            "password: must not be empty"
        );
        assert_eq!(
            validate_password("newPassword", "short").unwrap_err(),
            "newPassword: must be at least 10 characters"
        );
        assert!(validate_password("password", "long enough!").is_ok());
    }

    #[test]
    fn picture_must_be_http() {
        assert!(validate_picture("javascript:alert(1)").is_err());
        assert_eq!(validate_picture("").unwrap(), None);
        assert!(
            validate_picture("https://example.com/me.png")
                .unwrap()
                .is_some()
        );
    }
}
