//! scripts/check-secrets.sh, run by the test script, finds a string shaped like a live API key
//! (or another secret) in a file or anywhere in the history, and lets listed fixtures pass.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

fn scan(dir: &Path) -> (bool, String) {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-secrets.sh"))
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_planted_key_is_found_in_files_and_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    std::fs::write(repo.join("a.txt"), "nothing here\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "clean"]);
    assert!(scan(repo).0);

    // Built at run time so that this file holds no such string itself.
    let key = format!("bj_live_{}", "0123456789abcdef".repeat(4));
    std::fs::write(repo.join("config.env"), format!("KEY={key}\n")).unwrap();
    git(repo, &["add", "."]);
    let (ok, err) = scan(repo);
    assert!(!ok, "a tracked file with a key");
    assert!(err.contains("config.env"), "{err}");
    assert!(
        !err.contains(&key),
        "the report never prints the whole key: {err}"
    );

    // Removed in a later commit: still in the history.
    git(repo, &["commit", "-qm", "oops"]);
    std::fs::remove_file(repo.join("config.env")).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "remove"]);
    let (ok, err) = scan(repo);
    assert!(!ok);
    assert!(err.contains("history"), "{err}");

    // Listed as a fixture: allowed.
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    std::fs::write(
        repo.join("scripts/secret-fixtures.txt"),
        format!("# a fixture\n{key}\n"),
    )
    .unwrap();
    assert!(scan(repo).0, "{}", scan(repo).1);

    let pem = ["-----BEGIN ", "PRIVATE KEY-----"].concat();
    std::fs::write(repo.join("key.pem"), format!("{pem}\nabc\n")).unwrap();
    git(repo, &["add", "."]);
    assert!(!scan(repo).0, "a private key");
}
