//! The security audit log: who did what to an account, never with a secret.

use std::net::IpAddr;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::error::Result;
use crate::time::iso_ms;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Login,
    LoginFailed,
    Logout,
    PasswordChanged,
    KeyCreated,
    KeyRegenerated,
    KeyRevoked,
    WebsiteCreated,
    WebsiteDeleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::LoginFailed => "login_failed",
            Action::Logout => "logout",
            Action::PasswordChanged => "password_changed",
            Action::KeyCreated => "key_created",
            Action::KeyRegenerated => "key_regenerated",
            Action::KeyRevoked => "key_revoked",
            Action::WebsiteCreated => "website_created",
            Action::WebsiteDeleted => "website_deleted",
        }
    }
}

/// An address cut to its network (IPv4 /24, IPv6 /48), so the log never holds a person's IP.
pub fn truncate_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        },
    }
}

pub fn record(
    conn: &Connection,
    account_id: &str,
    action: Action,
    ip: Option<IpAddr>,
    detail: Option<&str>,
    at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_log (account_id, at, action, ip, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![account_id, at, action.as_str(), ip.map(truncate_ip), detail],
    )?;
    Ok(())
}

#[derive(Serialize)]
pub struct Entry {
    pub at: String,
    pub action: String,
    pub ip: Option<String>,
    pub detail: Option<String>,
}

/// One page of an account's log, newest first, and whether more follow.
pub fn page(
    conn: &Connection,
    account_id: &str,
    limit: i64,
    page: i64,
) -> Result<(Vec<Entry>, bool)> {
    let mut stmt = conn.prepare(
        "SELECT at, action, ip, detail FROM audit_log WHERE account_id = ?1
         ORDER BY at DESC, id DESC LIMIT ?2 OFFSET ?3",
    )?;
    let mut entries = stmt
        .query_map(params![account_id, limit + 1, (page - 1) * limit], |r| {
            Ok(Entry {
                at: iso_ms(r.get(0)?),
                action: r.get(1)?,
                ip: r.get(2)?,
                detail: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    Ok((entries, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_their_network() {
        assert_eq!(
            truncate_ip("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncate_ip("2001:db8:abcd:12::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            truncate_ip("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.0/24"
        );
    }
}
