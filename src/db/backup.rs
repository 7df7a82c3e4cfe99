//! Consistent copies of the live database, and putting one back.

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::time::{file_stamp, now_ms};

pub const BACKUP_DIR: &str = "backups";
const BACKUP_PREFIX: &str = "jetrack-";
const RESTORE_SUFFIX: &str = ".before-restore";

pub fn default_backup_path(data_dir: &Path) -> PathBuf {
    let dir = data_dir.join(BACKUP_DIR);
    let stamp = file_stamp(now_ms());
    unique_path(&dir, &format!("{BACKUP_PREFIX}{stamp}"))
}

pub fn pre_migration_path(backup_dir: &Path, from_version: i64) -> PathBuf {
    let stamp = file_stamp(now_ms());
    unique_path(
        backup_dir,
        &format!("{BACKUP_PREFIX}{stamp}-before-migration-from-v{from_version}"),
    )
}

/// `stem.db`, or `stem-2.db`, `stem-3.db`… when taken: a backup never overwrites.
fn unique_path(dir: &Path, stem: &str) -> PathBuf {
    let first = dir.join(format!("{stem}.db"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{stem}-{n}.db")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
}

/// Writes a consistent copy of `conn`'s database to `dest` (which must not exist), checks it
/// and fsyncs it and its folder.
pub fn vacuum_into(conn: &Connection, dest: &Path) -> Result<()> {
    let folder = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !folder.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)?;
    }
    // Write under a temporary name, then link it into place: linking fails when the final name
    // exists, so a backup can never replace a file, even one created meanwhile.
    let tmp = folder.join(format!(
        ".{}.partial-{}",
        dest.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("backup"),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    // A copy of every account and event: readable by its owner only, from its first byte,
    // wherever it is written and whatever the umask (VACUUM INTO fills an empty file).
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| Error::Internal("backup path is not valid UTF-8".into()))?;
    let copied = conn
        .execute("VACUUM INTO ?1", [tmp_str])
        .map_err(Error::from)
        .and_then(|_| verify(&tmp))
        .and_then(|()| File::open(&tmp)?.sync_all().map_err(Error::from));
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let linked = fs::hard_link(&tmp, dest);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_dir(folder),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Conflict(format!(
            "{} already exists; a backup never overwrites a file",
            dest.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Makes the staged copy one self-contained file (its WAL folded in) and checks that it is a
/// sound jetrack database this version can open.
fn settle(path: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(super::BUSY_TIMEOUT)?;
    let version = super::migrations::ensure_not_newer(&conn, super::migrations::MIGRATIONS)?;
    let is_jetrack: bool = conn.query_row(
        "SELECT count(*) = 1 FROM sqlite_master WHERE type = 'table' AND name = 'accounts'",
        [],
        |r| r.get(0),
    )?;
    if version < 1 || !is_jetrack {
        return Err(Error::Internal("the file is not a jetrack database".into()));
    }
    let _: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    let problems = integrity_problems(&conn)?;
    if !problems.is_empty() {
        return Err(Error::Internal(format!(
            "integrity check failed: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// `PRAGMA integrity_check` on a database file, opened read-only.
pub fn verify(path: &Path) -> Result<()> {
    let conn = super::open_read_only(path)?;
    let problems = integrity_problems(&conn)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "integrity check failed: {}",
            problems.join("; ")
        )))
    }
}

pub fn integrity_problems(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut problems = Vec::new();
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(problems)
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Deletes all but the newest `keep` backups in the default folder; returns the deleted paths.
pub fn prune(data_dir: &Path, keep: usize) -> Result<Vec<PathBuf>> {
    let dir = data_dir.join(BACKUP_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut backups: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(BACKUP_PREFIX) && n.ends_with(".db"))
        })
        .collect();
    backups.sort_by_key(|p| age_key(p));
    let excess = backups.len().saturating_sub(keep);
    let doomed: Vec<PathBuf> = backups.into_iter().take(excess).collect();
    for p in &doomed {
        fs::remove_file(p)?;
    }
    if !doomed.is_empty() {
        sync_dir(&dir)?;
    }
    Ok(doomed)
}

/// Orders backups oldest first: by the UTC stamp in the name, then by the `-N` that
/// `unique_path` adds when several share a second (plain name first).
fn age_key(path: &Path) -> (String, u64, String) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let rest = name
        .strip_prefix(BACKUP_PREFIX)
        .and_then(|r| r.strip_suffix(".db"))
        .unwrap_or("");
    let cut = rest.char_indices().nth(16).map_or(rest.len(), |(i, _)| i);
    let (stamp, tail) = rest.split_at(cut);
    let counter = match tail.strip_prefix('-').map(str::parse::<u64>) {
        None => 1,
        Some(Ok(n)) => n,
        Some(Err(_)) => 0,
    };
    (stamp.to_string(), counter, name.to_string())
}

/// The paths a restore moves aside: the database, its WAL and its shared-memory file.
fn live_files(db_path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db_path.display())))
        .collect()
}

pub fn aside_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}{RESTORE_SUFFIX}", path.display()))
}

/// Puts `source` in place of the database at `db_path`, keeping the current files aside as
/// `*.before-restore`. The caller holds the data-dir lock, so no server is using them.
pub fn restore(source: &Path, db_path: &Path, force: bool) -> Result<()> {
    let folder = db_path.parent().unwrap_or(Path::new("."));
    let staged = folder.join(".jetrack.db.restoring");
    let staged_files = live_files(&staged);
    let discard = || {
        for p in &staged_files {
            let _ = fs::remove_file(p);
        }
    };
    discard();
    fs::copy(source, &staged)?;
    // A copy of a live database may have its last commits in a WAL beside it.
    let source_wal = PathBuf::from(format!("{}-wal", source.display()));
    if source_wal.exists() {
        fs::copy(&source_wal, &staged_files[1])?;
    }
    if let Err(e) = settle(&staged) {
        discard();
        return Err(e);
    }
    File::open(&staged)?.sync_all()?;
    let current = live_files(db_path);
    if let Some(taken) = current.iter().map(|p| aside_path(p)).find(|p| p.exists()) {
        if !force {
            let _ = fs::remove_file(&staged);
            return Err(Error::Conflict(format!(
                "{} exists from an earlier restore; move it away or pass --force to replace it",
                taken.display()
            )));
        }
        // A stale WAL must never be paired with the database set aside now.
        for p in current.iter().map(|p| aside_path(p)).filter(|p| p.exists()) {
            fs::remove_file(p)?;
        }
    }
    // The database is linked aside, not moved, and the backup then renamed over it in one
    // step: at no moment is there no database (a crash here must not leave an empty data dir
    // for the next start to fill). Its WAL and shared memory must go first, so that they are
    // never applied to the restored file.
    let [db, wal_and_shm @ ..] = current.as_slice() else {
        unreachable!("three live files");
    };
    if db.exists() {
        fs::hard_link(db, aside_path(db))?;
    }
    for p in wal_and_shm.iter().filter(|p| p.exists()) {
        fs::rename(p, aside_path(p))?;
    }
    fs::rename(&staged, db_path)?;
    sync_dir(folder)
}
