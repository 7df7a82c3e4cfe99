//! The database layer (SPEC 7.1): bundled SQLite, pragmas on every connection, migrations.

use std::path::Path;

use jetrack::db::migrations::{MIGRATIONS, Migration, latest_version};
use jetrack::db::{Db, Durability};
use jetrack::error::Error;
use rusqlite::Connection;
use sha2::{Digest, Sha256};

fn file_hash(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn pragma_i64(c: &Connection, name: &str) -> i64 {
    c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn bundled_sqlite_is_at_least_3_51_3() {
    let v: Vec<u32> = jetrack::db::sqlite_version()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(v >= vec![3, 51, 3], "bundled SQLite {v:?}");
    // The bundled library, not the system's: the version compiled in is the one running.
    assert_eq!(rusqlite::version(), jetrack::db::sqlite_version());
}

#[tokio::test]
async fn every_connection_has_wal_busy_timeout_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), 16).unwrap();
    let check = |c: &Connection| {
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert!(pragma_i64(c, "busy_timeout") >= 5000);
        assert_eq!(pragma_i64(c, "foreign_keys"), 1);
        assert_eq!(pragma_i64(c, "temp_store"), 2, "temp_store = MEMORY");
    };
    // The writer's connection.
    db.write(Durability::Normal, move |c| {
        check(c);
        Ok(())
    })
    .await
    .unwrap();
    // Several pooled readers at once, so more than one connection is looked at.
    let mut handles = Vec::new();
    for _ in 0..4 {
        let db = db.clone();
        handles.push(tokio::spawn(async move {
            db.read(move |c| {
                check(c);
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(())
            })
            .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    db.shutdown().await;
}

#[tokio::test]
async fn a_fresh_database_reaches_the_newest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), 16).unwrap();
    let (version, tables) = db
        .read(|c| {
            let v = pragma_i64(c, "user_version");
            let mut stmt =
                c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((v, names))
        })
        .await
        .unwrap();
    assert_eq!(version, latest_version(MIGRATIONS));
    for t in ["accounts", "audit_log", "sessions"] {
        assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
    }
    // A fresh database needs no backup.
    assert!(!dir.path().join("backups").exists());
    db.shutdown().await;
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jetrack.db");
    {
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .unwrap();
    }
    let before = file_hash(&path);
    let err = Db::open(dir.path(), 16).err().expect("refused");
    assert!(
        matches!(err, Error::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("newer than this jetrack supports"),
        "{err}"
    );
    assert_eq!(file_hash(&path), before);
    assert!(!path.with_extension("db-wal").exists());
}

/// The project's migrations plus one more, numbered after the newest.
fn with_next(name: &'static str, sql: &'static str) -> Vec<Migration> {
    let mut list = MIGRATIONS.to_vec();
    list.push(Migration {
        version: latest_version(MIGRATIONS) + 1,
        name,
        sql,
    });
    list
}

#[tokio::test]
async fn a_migration_that_fails_midway_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    Db::open(dir.path(), 16).unwrap().shutdown().await;
    let broken = with_next(
        "broken",
        "CREATE TABLE half_done (x INTEGER); INSERT INTO nowhere VALUES (1);",
    );
    let err = Db::open_with(dir.path(), 16, &broken).err().expect("fails");
    let expected = format!(
        "migration {:04}_broken failed",
        latest_version(MIGRATIONS) + 1
    );
    assert!(err.to_string().contains(&expected), "{err}");
    let c = Connection::open(dir.path().join("jetrack.db")).unwrap();
    assert_eq!(pragma_i64(&c, "user_version"), latest_version(MIGRATIONS));
    let half: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        half, 0,
        "the failed migration's first statement was rolled back"
    );
}

#[tokio::test]
async fn an_existing_database_is_backed_up_before_migrating() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), 16).unwrap();
    db.write(Durability::Full, |c| {
        c.execute(
            "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ('a', 'a@b.co', 'x', 1)",
            [],
        )?;
        Ok(())
    })
    .await
    .unwrap();
    db.shutdown().await;
    drop(db);

    let next = with_next("next", "CREATE TABLE next_thing (x INTEGER);");
    let db = Db::open_with(dir.path(), 16, &next).unwrap();
    db.shutdown().await;
    let backups: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let name = backups[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let latest = latest_version(MIGRATIONS);
    let suffix = format!("-before-migration-from-v{latest}.db");
    assert!(
        name.starts_with("jetrack-") && name.ends_with(&suffix),
        "{name}"
    );
    let copy = Connection::open(&backups[0]).unwrap();
    assert_eq!(pragma_i64(&copy, "user_version"), latest);
    let n: i64 = copy
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    let live = Connection::open(dir.path().join("jetrack.db")).unwrap();
    assert_eq!(pragma_i64(&live, "user_version"), latest + 1);
}
