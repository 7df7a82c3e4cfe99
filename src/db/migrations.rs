//! Numbered schema migrations, applied in order at start, each in one transaction.
//! The schema version lives in SQLite's `user_version`.

use std::path::Path;

use rusqlite::Connection;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The project's migrations. Never edit one that has shipped: add the next number.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "accounts",
        sql: include_str!("../../migrations/0001_accounts.sql"),
    },
    Migration {
        version: 2,
        name: "websites_api_keys",
        sql: include_str!("../../migrations/0002_websites_api_keys.sql"),
    },
    Migration {
        version: 3,
        name: "salts",
        sql: include_str!("../../migrations/0003_salts.sql"),
    },
    Migration {
        version: 4,
        name: "events",
        sql: include_str!("../../migrations/0004_events.sql"),
    },
    Migration {
        version: 5,
        name: "stats",
        sql: include_str!("../../migrations/0005_stats.sql"),
    },
    Migration {
        version: 6,
        name: "login_devices",
        sql: include_str!("../../migrations/0006_login_devices.sql"),
    },
];

pub fn latest_version(migrations: &[Migration]) -> i64 {
    migrations.last().map_or(0, |m| m.version)
}

pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Refuses a database written by a newer jetrack before anything touches it.
pub fn ensure_not_newer(conn: &Connection, migrations: &[Migration]) -> Result<i64> {
    let found = schema_version(conn)?;
    let supported = latest_version(migrations);
    if found > supported {
        return Err(Error::SchemaTooNew { found, supported });
    }
    Ok(found)
}

/// Applies every migration newer than the database. Before the first migration of an existing
/// database, a copy is written to `backup_dir`. A failing migration is rolled back whole.
pub fn migrate(conn: &Connection, migrations: &[Migration], backup_dir: &Path) -> Result<()> {
    let current = ensure_not_newer(conn, migrations)?;
    let pending: Vec<&Migration> = migrations.iter().filter(|m| m.version > current).collect();
    if pending.is_empty() {
        return Ok(());
    }
    if current > 0 {
        let path = super::backup::pre_migration_path(backup_dir, current);
        super::backup::vacuum_into(conn, &path)?;
        tracing::info!(path = %path.display(), from = current, "backed up the database before migrating");
    }
    for m in pending {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        // Another process (a command started beside `serve`) may have migrated meanwhile.
        if schema_version(conn)? >= m.version {
            conn.execute_batch("COMMIT")?;
            continue;
        }
        let applied = conn
            .execute_batch(m.sql)
            .and_then(|()| conn.pragma_update(None, "user_version", m.version));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::Internal(format!(
                    "migration {:04}_{} failed: {e}",
                    m.version, m.name
                )));
            }
        }
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    Ok(())
}
