//! Black-box tests of `jetrack backup`, `restore` and `check` (SPEC 6, 7.1): consistent copies
//! while another process writes, the round trip through `restore`, the files kept aside,
//! refusals, corruption, and a database from a newer version.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli::{
    Out, assert_failure, assert_success, assert_usage, finish, run, run_with_closed_stdout,
};
use common::{Sandbox, Server};
use rusqlite::{Connection, OpenFlags};
use serde_json::json;
use sha2::{Digest, Sha256};

fn run_path(sb: &Sandbox, args: &[&str], path: &Path) -> Out {
    let mut cmd = sb.cmd();
    cmd.args(args).arg(path);
    finish(cmd, None)
}

fn add_user(sb: &Sandbox, email: &str) {
    let mut cmd = sb.cmd();
    cmd.args(["users", "add", "--email", email, "--password-stdin"]);
    let out = finish(cmd, Some("a long enough password\n"));
    assert_success(&out);
}

/// A data dir with a database and the given accounts, no server running.
fn data_dir_with(sb: &Sandbox, emails: &[&str]) {
    let out = run(sb, &["users", "list"]);
    assert_success(&out);
    for email in emails {
        add_user(sb, email);
    }
}

/// `backup --output <path>`, expected to succeed; returns the printed path.
fn backup_to(sb: &Sandbox, path: &Path) -> PathBuf {
    let out = run_path(sb, &["backup", "--output"], path);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("{}\n", path.display()),
        "prints the path: {out:#?}"
    );
    PathBuf::from(out.stdout.trim_end())
}

fn open_ro(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open read-only")
}

fn integrity(path: &Path) -> String {
    let conn = open_ro(path);
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.join("; ")
}

fn emails_in(path: &Path) -> Vec<String> {
    let conn = open_ro(path);
    conn.prepare("SELECT email FROM accounts ORDER BY email")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// For each table: its row count and the SHA-256 of all its rows in primary-key order.
fn table_checksums(path: &Path) -> BTreeMap<String, (i64, String)> {
    use rusqlite::types::ValueRef;
    let conn = open_ro(path);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        tables.iter().any(|t| t == "accounts"),
        "a jetrack database: {tables:?}"
    );
    let mut sums = BTreeMap::new();
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {quoted}"), [], |r| r.get(0))
            .unwrap();
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {quoted} ORDER BY 1"))
            .unwrap();
        let columns = stmt.column_count();
        let mut hasher = Sha256::new();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for i in 0..columns {
                match row.get_ref(i).unwrap() {
                    ValueRef::Null => hasher.update(b"N"),
                    ValueRef::Integer(n) => hasher.update(format!("I{n}")),
                    ValueRef::Real(x) => hasher.update(format!("R{x:e}")),
                    ValueRef::Text(t) => {
                        hasher.update(format!("T{}:", t.len()));
                        hasher.update(t);
                    }
                    ValueRef::Blob(b) => {
                        hasher.update(format!("B{}:", b.len()));
                        hasher.update(b);
                    }
                }
                hasher.update(b"|");
            }
            hasher.update(b"\n");
        }
        sums.insert(table, (count, hex::encode(hasher.finalize())));
    }
    sums
}

fn file_sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

fn aside(sb: &Sandbox, name: &str) -> PathBuf {
    sb.data_dir().join(format!("{name}.before-restore"))
}

/// Files in the data dir whose name contains `part` (leftovers of a staged restore, say).
fn files_containing(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(part))
        .collect()
}

fn utc_stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// Sleeps until the UTC second changes, so the next default backup gets a name of its own.
fn wait_for_next_second() {
    let start = jiff::Timestamp::now().as_second();
    while jiff::Timestamp::now().as_second() == start {
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// backup under load

/// A running server whose account changes its first name continuously over HTTP, while
/// another process adds accounts with `users add`, and a `backup --output` taken meanwhile.
struct LoadedBackup {
    server: Server,
    backup: PathBuf,
    /// Accounts whose creation was confirmed before the backup started.
    committed_before: Vec<String>,
    /// The last firstName sequence number confirmed before the backup started.
    name_seq_before: u64,
    /// Writes confirmed while the backup ran or after it (the load really was concurrent).
    writes_after_start: u64,
}

const OWNER: &str = "owner@example.com";

fn backup_under_load(sb: &Sandbox) -> LoadedBackup {
    let server = Server::start(sb, &[]);
    let session = server.setup(OWNER);
    add_user(sb, "early1@example.com");
    add_user(sb, "early2@example.com");

    let stop = Arc::new(AtomicBool::new(false));
    let confirmed_seq = Arc::new(AtomicU64::new(0));
    let confirmed_writes = Arc::new(AtomicU64::new(0));
    let added: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));

    let http_writer = {
        let (stop, seq, writes) = (
            stop.clone(),
            confirmed_seq.clone(),
            confirmed_writes.clone(),
        );
        let client = session.client.clone();
        let csrf = session.csrf.clone();
        let url = server.api("/account");
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let resp = client
                    .patch(&url)
                    .header("X-CSRF-Token", &csrf)
                    .json(&json!({"firstName": format!("n{i}")}))
                    .send();
                if resp.is_ok_and(|r| r.status() == 200) {
                    seq.store(i, Ordering::SeqCst);
                    writes.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let cli_writer = {
        let (stop, writes, added) = (stop.clone(), confirmed_writes.clone(), added.clone());
        let data_dir = sb.data_dir();
        std::thread::spawn(move || {
            let mut j = 0;
            while !stop.load(Ordering::SeqCst) {
                j += 1;
                let email = format!("load{j}@example.com");
                let mut cmd = common::jetrack(&data_dir);
                cmd.args(["users", "add", "--email", &email, "--password-stdin"]);
                let out = finish(cmd, Some("a long enough password\n"));
                assert_eq!(out.code, 0, "users add under load: {out:#?}");
                added.lock().unwrap().push(email);
                writes.fetch_add(1, Ordering::SeqCst);
            }
        })
    };

    // Let both writers get going before the backup starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while confirmed_seq.load(Ordering::SeqCst) < 5 || added.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the writers did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let name_seq_before = confirmed_seq.load(Ordering::SeqCst);
    let mut committed_before: Vec<String> = added.lock().unwrap().clone();
    let writes_at_start = confirmed_writes.load(Ordering::SeqCst);

    let backup = sb.dir.path().join("copies").join("under-load.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let out = run_path(sb, &["backup", "--output"], &backup);

    // Keep writing a little after the backup, then stop.
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    http_writer.join().expect("http writer");
    cli_writer.join().expect("cli writer");

    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("{}\n", backup.display()),
        "prints the path: {out:#?}"
    );
    committed_before.extend([
        OWNER.to_string(),
        "early1@example.com".into(),
        "early2@example.com".into(),
    ]);
    LoadedBackup {
        server,
        backup,
        committed_before,
        name_seq_before,
        writes_after_start: confirmed_writes.load(Ordering::SeqCst) - writes_at_start,
    }
}

#[test]
fn backup_while_another_process_writes_is_consistent_complete_and_never_overwritten() {
    let sb = Sandbox::new();
    let loaded = backup_under_load(&sb);
    assert!(
        loaded.writes_after_start > 0,
        "the writers kept writing during the backup"
    );

    let meta = std::fs::metadata(&loaded.backup).expect("the backup exists");
    assert!(meta.is_file() && meta.len() > 0);
    assert_eq!(integrity(&loaded.backup), "ok");

    let emails = emails_in(&loaded.backup);
    for email in &loaded.committed_before {
        assert!(
            emails.contains(email),
            "{email} committed before the backup is in it: {emails:?}"
        );
    }
    let first_name: String = open_ro(&loaded.backup)
        .query_row(
            "SELECT first_name FROM accounts WHERE email = ?1",
            [OWNER],
            |r| r.get(0),
        )
        .unwrap();
    let seq: u64 = first_name
        .trim_start_matches('n')
        .parse()
        .expect("a written name");
    assert!(
        seq >= loaded.name_seq_before,
        "the copy holds the name committed before it started (n{}), has {first_name}",
        loaded.name_seq_before
    );
    let partials = files_containing(loaded.backup.parent().unwrap(), "partial");
    assert!(partials.is_empty(), "no temporary file left: {partials:?}");

    // The same --output again: refused, the existing copy unchanged.
    let before = file_sha(&loaded.backup);
    let out = run_path(&sb, &["backup", "--output"], &loaded.backup);
    assert_failure(&out, "already exists");
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert_eq!(
        file_sha(&loaded.backup),
        before,
        "the existing file is byte-identical"
    );
}

// ---------------------------------------------------------------------------------------------
// backup

#[test]
fn backup_without_output_writes_a_timestamped_copy_under_data_dir_backups() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let before = utc_stamp();
    let out = run(&sb, &["backup"]);
    let after = utc_stamp();
    assert_success(&out);
    let printed = PathBuf::from(out.stdout.trim_end());
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the path on stdout: {out:#?}"
    );
    assert_eq!(
        printed.parent(),
        Some(sb.data_dir().join("backups").as_path()),
        "{out:#?}"
    );
    let name = printed.file_name().unwrap().to_str().unwrap();
    let stamp = name
        .strip_prefix("jetrack-")
        .and_then(|n| n.strip_suffix(".db"))
        .unwrap_or_else(|| panic!("named jetrack-<stamp>.db: {name}"));
    assert_eq!(stamp.len(), "20250115T103000Z".len(), "{name}");
    let shape_ok = stamp.char_indices().all(|(i, c)| match i {
        8 => c == 'T',
        15 => c == 'Z',
        _ => c.is_ascii_digit(),
    });
    assert!(shape_ok, "a UTC timestamp YYYYMMDDTHHMMSSZ: {name}");
    assert!(
        before.as_str() <= stamp && stamp <= after.as_str(),
        "{before} ≤ {stamp} ≤ {after}"
    );
    assert_eq!(integrity(&printed), "ok");
    assert_eq!(emails_in(&printed), vec!["a@example.com".to_string()]);
}

#[test]
fn backup_keep_2_after_4_backups_leaves_the_newest_2() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let mut made = Vec::new();
    for i in 0..4 {
        if i > 0 {
            wait_for_next_second();
        }
        let args: &[&str] = if i == 3 {
            &["backup", "--keep", "2"]
        } else {
            &["backup"]
        };
        let out = run(&sb, args);
        assert_success(&out);
        made.push(out.stdout.trim_end().to_string());
        if i == 3 {
            for gone in &made[..2] {
                assert!(
                    out.stderr.contains(gone.as_str()),
                    "reports deleting {gone}: {out:#?}"
                );
            }
        }
    }
    let mut left: Vec<String> = std::fs::read_dir(sb.data_dir().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    left.sort();
    assert_eq!(left, made[2..].to_vec(), "the newest two remain");
}

#[test]
fn backup_keep_leaves_the_newest_when_backups_share_a_second() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    // Start right after a second begins so that the backups share their timestamp.
    wait_for_next_second();
    let mut made = Vec::new();
    for i in 0..4 {
        let args: &[&str] = if i == 3 {
            &["backup", "--keep", "2"]
        } else {
            &["backup"]
        };
        let out = run(&sb, args);
        assert_success(&out);
        made.push(out.stdout.trim_end().to_string());
    }
    let mut left: Vec<String> = std::fs::read_dir(sb.data_dir().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    left.sort();
    let mut newest = made[2..].to_vec();
    newest.sort();
    assert_eq!(
        left, newest,
        "the two made last remain (made in order: {made:?})"
    );
}

#[test]
fn backup_keep_with_output_works_before_any_default_backup_exists() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let dest = sb.dir.path().join("copy.db");
    let mut cmd = sb.cmd();
    cmd.args(["backup", "--keep", "2", "--output"]).arg(&dest);
    let out = finish(cmd, None);
    assert_success(&out);
    assert_eq!(out.stdout, format!("{}\n", dest.display()));
    assert!(dest.exists());
}

#[test]
fn backup_with_a_closed_stdout_fails_with_one_line_and_no_panic() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let out = run_with_closed_stdout(&sb, &["backup"]);
    assert_failure(&out, "");
}

#[test]
fn backup_output_in_a_missing_folder_fails_naming_the_folder() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let folder = sb.dir.path().join("no-such-folder");
    let out = run_path(&sb, &["backup", "--output"], &folder.join("x.db"));
    assert_failure(
        &out,
        &format!("the folder {} does not exist", folder.display()),
    );
    assert!(out.stdout.is_empty());
    assert!(!folder.exists(), "the folder is not created");
}

#[test]
fn backup_never_overwrites_an_existing_file() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let precious = sb.dir.path().join("precious.db");
    std::fs::write(&precious, b"not a backup, but mine").unwrap();
    let out = run_path(&sb, &["backup", "--output"], &precious);
    assert_failure(&out, "already exists");
    assert_eq!(std::fs::read(&precious).unwrap(), b"not a backup, but mine");
}

#[test]
fn backup_without_a_database_fails() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.data_dir()).unwrap();
    let out = run(&sb, &["backup"]);
    assert_failure(&out, "no database at");
    assert!(!sb.db_path().exists(), "no database is created");
}

#[test]
fn backup_keep_0_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["backup", "--keep", "0"]), "--keep");
    assert!(!sb.data_dir().exists(), "a usage error touches nothing");
}

#[test]
fn backup_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["backup", "--out", "x.db"]), "--out");
}

#[test]
fn backup_of_a_corrupted_database_fails_and_leaves_no_file() {
    let sb = Sandbox::new();
    corrupted_data_dir(&sb);
    let dest = sb.dir.path().join("from-corrupt.db");
    let out = run_path(&sb, &["backup", "--output"], &dest);
    assert_failure(&out, "malformed");
    assert!(!dest.exists(), "no copy of a corrupted database");
    let partials = files_containing(sb.dir.path(), "partial");
    assert!(partials.is_empty(), "no temporary file left: {partials:?}");
}

// ---------------------------------------------------------------------------------------------
// restore

#[test]
fn restore_round_trips_a_backup_taken_under_load() {
    let sb = Sandbox::new();
    let loaded = backup_under_load(&sb);
    let status = loaded.server.stop();
    assert!(status.success(), "the server stops cleanly: {status}");
    add_user(&sb, "after-backup@example.com");
    assert!(emails_in(&sb.db_path()).contains(&"after-backup@example.com".to_string()));
    let old_db = file_sha(&sb.db_path());
    let backup_sha = file_sha(&loaded.backup);
    let expected = table_checksums(&loaded.backup);

    let out = run_path(&sb, &["restore"], &loaded.backup);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("{}\n", sb.db_path().display()),
        "{out:#?}"
    );
    assert!(
        out.stderr.contains("before-restore"),
        "says where the old database went: {out:#?}"
    );

    assert_eq!(
        table_checksums(&sb.db_path()),
        expected,
        "every table, row for row"
    );
    let emails = emails_in(&sb.db_path());
    assert!(
        !emails.contains(&"after-backup@example.com".to_string()),
        "{emails:?}"
    );
    for email in &loaded.committed_before {
        assert!(emails.contains(email), "{email} restored");
    }
    assert_eq!(
        file_sha(&loaded.backup),
        backup_sha,
        "the backup itself is not changed"
    );
    assert_eq!(
        file_sha(&aside(&sb, "jetrack.db")),
        old_db,
        "the previous database kept as is"
    );
    assert!(
        !sb.data_dir().join("jetrack.db-wal").exists(),
        "no stale WAL next to the new database"
    );
    let staged = files_containing(&sb.data_dir(), "restoring");
    assert!(staged.is_empty(), "no staging file left: {staged:?}");

    // The restored data dir is healthy and usable.
    let out = run(&sb, &["check"]);
    assert_success(&out);
    let out = run(&sb, &["users", "list"]);
    assert_success(&out);
    assert!(
        out.stdout.contains(OWNER) && !out.stdout.contains("after-backup@"),
        "{out:#?}"
    );
}

#[test]
fn restore_keeps_the_previous_database_wal_and_shm_aside() {
    let sb = Sandbox::new();
    let mut server = Server::start(&sb, &[]);
    server.setup(OWNER);
    let backup = backup_to(&sb, &sb.dir.path().join("early.db"));
    add_user(&sb, "late@example.com");
    // A crash leaves the WAL and shared-memory files behind, holding the latest commits.
    server.child.kill().expect("kill -9");
    server.wait();
    for f in ["jetrack.db", "jetrack.db-wal", "jetrack.db-shm"] {
        assert!(
            sb.data_dir().join(f).exists(),
            "{f} exists before the restore"
        );
    }

    let out = run_path(&sb, &["restore"], &backup);
    assert_success(&out);
    for f in ["jetrack.db", "jetrack.db-wal", "jetrack.db-shm"] {
        assert!(aside(&sb, f).exists(), "{f} kept as {f}.before-restore");
    }
    assert!(!sb.data_dir().join("jetrack.db-wal").exists());
    assert!(!sb.data_dir().join("jetrack.db-shm").exists());
    assert_eq!(emails_in(&sb.db_path()), vec![OWNER.to_string()]);

    // The files kept aside, put together again, hold everything the old database had.
    let rescue = sb.dir.path().join("rescue");
    std::fs::create_dir(&rescue).unwrap();
    std::fs::copy(aside(&sb, "jetrack.db"), rescue.join("old.db")).unwrap();
    std::fs::copy(aside(&sb, "jetrack.db-wal"), rescue.join("old.db-wal")).unwrap();
    let emails = emails_in(&rescue.join("old.db"));
    assert!(
        emails.contains(&"late@example.com".to_string()),
        "{emails:?}"
    );
}

#[test]
fn restore_refuses_while_a_server_uses_the_data_dir() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup(OWNER);
    let backup = backup_to(&sb, &sb.dir.path().join("copy.db"));
    let out = run_path(&sb, &["restore"], &backup);
    assert_failure(&out, "a jetrack server is using");
    assert!(
        out.stderr.contains(&sb.data_dir().display().to_string()),
        "{out:#?}"
    );
    assert!(!aside(&sb, "jetrack.db").exists(), "nothing moved aside");
    let status = session
        .client
        .get(server.api("/auth/session"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200, "the server goes on undisturbed");
}

#[test]
fn restore_of_a_non_database_file_fails_and_leaves_the_database_untouched() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let junk = sb.dir.path().join("junk.db");
    std::fs::write(&junk, "this is not a database\n".repeat(500)).unwrap();
    let before = file_sha(&sb.db_path());
    let out = run_path(&sb, &["restore"], &junk);
    assert_failure(&out, "is not a usable jetrack database");
    assert!(out.stdout.is_empty());
    assert_eq!(
        file_sha(&sb.db_path()),
        before,
        "the current database is untouched"
    );
    assert!(!aside(&sb, "jetrack.db").exists(), "nothing moved aside");
    let staged = files_containing(&sb.data_dir(), "restoring");
    assert!(staged.is_empty(), "no staging file left: {staged:?}");
}

#[test]
fn restore_of_an_empty_file_is_refused() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let empty = sb.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let before = file_sha(&sb.db_path());
    let out = run_path(&sb, &["restore"], &empty);
    assert_failure(&out, "is not a usable jetrack database");
    assert_eq!(
        file_sha(&sb.db_path()),
        before,
        "the current database is untouched"
    );
    assert!(!aside(&sb, "jetrack.db").exists(), "nothing moved aside");
}

#[test]
fn restore_of_a_foreign_sqlite_database_is_refused() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let foreign = sb.dir.path().join("foreign.db");
    {
        let conn = Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE recipes (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO recipes (name) VALUES ('soup');")
            .unwrap();
    }
    let before = file_sha(&sb.db_path());
    let out = run_path(&sb, &["restore"], &foreign);
    assert_failure(&out, "is not a usable jetrack database");
    assert_eq!(
        file_sha(&sb.db_path()),
        before,
        "the current database is untouched"
    );
}

#[test]
fn restore_of_a_wal_mode_file_leaves_no_stray_files() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let source_dir = sb.dir.path().join("copies");
    std::fs::create_dir(&source_dir).unwrap();
    let source = source_dir.join("live-copy.db");
    std::fs::copy(sb.db_path(), &source).unwrap();
    let header = std::fs::read(&source).unwrap();
    assert_eq!(&header[18..20], &[2, 2], "a WAL-mode database file");

    let out = run_path(&sb, &["restore"], &source);
    assert_success(&out);
    let staged = files_containing(&sb.data_dir(), "restoring");
    let beside = files_containing(&source_dir, "live-copy.db-");
    assert_eq!(emails_in(&sb.db_path()), vec!["a@example.com".to_string()]);
    assert!(
        staged.is_empty(),
        "no staging file left in the data dir: {staged:?}"
    );
    assert!(
        beside.is_empty(),
        "nothing created beside the backup: {beside:?}"
    );
}

#[test]
fn restore_a_second_time_needs_force() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["first@example.com"]);
    let backup = backup_to(&sb, &sb.dir.path().join("copy.db"));
    add_user(&sb, "second@example.com");
    let out = run_path(&sb, &["restore"], &backup);
    assert_success(&out);
    let kept_first = file_sha(&aside(&sb, "jetrack.db"));

    add_user(&sb, "third@example.com");
    let current = file_sha(&sb.db_path());
    let out = run_path(&sb, &["restore"], &backup);
    assert_failure(&out, "--force");
    assert!(out.stderr.contains("before-restore"), "{out:#?}");
    assert_eq!(
        file_sha(&sb.db_path()),
        current,
        "the database is untouched"
    );
    assert_eq!(
        file_sha(&aside(&sb, "jetrack.db")),
        kept_first,
        "the kept copy is untouched"
    );

    let mut cmd = sb.cmd();
    cmd.args(["restore", "--force"]).arg(&backup);
    let out = finish(cmd, None);
    assert_success(&out);
    assert_eq!(
        emails_in(&sb.db_path()),
        vec!["first@example.com".to_string()]
    );
    assert_eq!(
        file_sha(&aside(&sb, "jetrack.db")),
        current,
        "now the database it replaced is kept"
    );
}

#[test]
fn restore_of_a_missing_file_fails() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &[]);
    let missing = sb.dir.path().join("missing.db");
    let out = run_path(&sb, &["restore"], &missing);
    assert_failure(&out, &format!("no backup file at {}", missing.display()));
}

#[test]
fn restore_without_a_file_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["restore"]), "<FILE>");
    assert!(!sb.data_dir().exists(), "a usage error touches nothing");
}

#[test]
fn restore_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["restore", "x.db", "--yes"]), "--yes");
}

#[test]
fn restore_of_a_newer_schema_is_refused() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let backup = backup_to(&sb, &sb.dir.path().join("copy.db"));
    set_user_version(&backup, 99);
    let before = file_sha(&sb.db_path());
    let out = run_path(&sb, &["restore"], &backup);
    assert_failure(&out, "newer");
    assert_eq!(file_sha(&sb.db_path()), before);
    assert!(!aside(&sb, "jetrack.db").exists());
}

// ---------------------------------------------------------------------------------------------
// check

#[test]
fn check_passes_on_a_healthy_data_dir() {
    let sb = Sandbox::new();
    data_dir_with(&sb, &["a@example.com"]);
    let out = run(&sb, &["check"]);
    assert_success(&out);
    assert!(out.stdout.contains("integrity check passed"), "{out:#?}");
    assert!(
        out.stdout.contains("(current)"),
        "reports the schema version: {out:#?}"
    );
    assert!(!out.stdout.contains("FAIL"), "{out:#?}");
    assert!(out.stderr.is_empty(), "{out:#?}");
}

#[test]
fn check_fails_on_a_data_dir_without_database() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.data_dir()).unwrap();
    let out = run(&sb, &["check"]);
    assert_failure(&out, "error: check found 1 problem(s): no database at");
    assert!(out.stdout.contains("FAIL"), "{out:#?}");
    assert!(!sb.db_path().exists(), "check creates no database");
}

/// A data dir whose database has enough pages, with page 3 overwritten by 0xFF bytes.
fn corrupted_data_dir(sb: &Sandbox) {
    data_dir_with(sb, &[]);
    {
        let mut conn = Connection::open(sb.db_path()).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..200 {
            tx.execute(
                "INSERT INTO accounts (id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    format!("00000000-0000-4000-8000-{i:012}"),
                    format!("user{i}@example.com"),
                    format!("$argon2id$v=19$m=19456,t=2,p=1${}", "x".repeat(80)),
                    i
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    assert!(
        !sb.data_dir().join("jetrack.db-wal").exists(),
        "checkpointed on close"
    );
    let len = std::fs::metadata(sb.db_path()).unwrap().len();
    assert!(
        len >= 4096 * 6,
        "enough pages to corrupt one in the middle: {len}"
    );
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(sb.db_path())
        .unwrap();
    f.seek(SeekFrom::Start(4096 * 2)).unwrap();
    f.write_all(&[0xFF; 4096]).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn check_fails_with_a_clear_message_on_a_corrupted_database() {
    let sb = Sandbox::new();
    corrupted_data_dir(&sb);
    let out = run(&sb, &["check"]);
    assert_failure(&out, "error: check found");
    assert!(out.stderr.contains("integrity check failed"), "{out:#?}");
    assert!(
        out.stdout.contains("FAIL integrity check failed"),
        "{out:#?}"
    );
}

#[test]
fn check_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["check", "--repair"]), "--repair");
}

// ---------------------------------------------------------------------------------------------
// a database from a newer version

fn set_user_version(path: &Path, version: i64) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
}

fn newer_data_dir(sb: &Sandbox) -> String {
    data_dir_with(sb, &["a@example.com"]);
    set_user_version(&sb.db_path(), 99);
    assert!(
        !sb.data_dir().join("jetrack.db-wal").exists(),
        "checkpointed on close"
    );
    file_sha(&sb.db_path())
}

#[test]
fn users_list_refuses_a_newer_schema_and_leaves_the_file_untouched() {
    let sb = Sandbox::new();
    let before = newer_data_dir(&sb);
    let out = run(&sb, &["users", "list"]);
    assert_failure(&out, "newer");
    assert!(
        out.stderr.contains("99"),
        "names the version found: {out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");
    assert_eq!(file_sha(&sb.db_path()), before, "byte-identical");
}

#[test]
fn backup_refuses_a_newer_schema_and_leaves_the_file_untouched() {
    let sb = Sandbox::new();
    let before = newer_data_dir(&sb);
    let dest = sb.dir.path().join("copy.db");
    let out = run_path(&sb, &["backup", "--output"], &dest);
    assert_failure(&out, "newer");
    assert!(!dest.exists());
    assert_eq!(file_sha(&sb.db_path()), before, "byte-identical");
}

#[test]
fn check_reports_a_newer_schema() {
    let sb = Sandbox::new();
    let before = newer_data_dir(&sb);
    let out = run(&sb, &["check"]);
    assert_failure(&out, "error: check found");
    assert!(out.stderr.contains("newer"), "{out:#?}");
    assert_eq!(file_sha(&sb.db_path()), before, "byte-identical");
}

/// A backup holds every account and event: readable by its owner only (0600), in the default
/// folder, under `--output` anywhere else, and in a data dir the operator made 0755 before,
/// whatever the umask; the `backups` folder it makes is 0700.
#[test]
fn backups_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.data_dir()).unwrap();
    std::fs::set_permissions(sb.data_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    data_dir_with(&sb, &["a@example.com"]);
    let out = run(&sb, &["backup"]);
    assert_success(&out);
    let default = PathBuf::from(out.stdout.trim_end());
    assert_eq!(mode(&default), 0o600, "{}", default.display());
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = backup_to(&sb, &elsewhere.path().join("copy.db"));
    assert_eq!(mode(&copy), 0o600);
    assert_eq!(mode(&sb.data_dir().join("backups")), 0o700);
    assert_eq!(emails_in(&copy), vec!["a@example.com".to_string()]);
}
