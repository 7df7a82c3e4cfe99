//! Black-box tests of `jetrack users …` (SPEC 6): success, usage errors (exit 2) and failures
//! (exit 1, one `error:` line on stderr), bad input, an unwritable data dir, and the effect of
//! the commands on a running server.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{
    Out, assert_failure, assert_success, assert_usage, finish, run, run_stdin,
    run_with_closed_stdout,
};
use common::{PASSWORD, Sandbox, Server};
use serde_json::json;

const NEW_PASSWORD: &str = "a brand new password";

/// Creates the data dir and database (so later failures print nothing but their own line).
fn init(sb: &Sandbox) {
    let out = run(sb, &["users", "list"]);
    assert_success(&out);
    assert!(sb.db_path().exists());
}

fn add_user(sb: &Sandbox, email: &str, password: &str) -> Out {
    let out = run_stdin(
        sb,
        &["users", "add", "--email", email, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert_success(&out);
    out
}

fn list(sb: &Sandbox) -> String {
    let out = run(sb, &["users", "list"]);
    assert_success(&out);
    out.stdout
}

/// The row of `users list` for `email` (matched as a whole column).
fn row_for<'a>(listing: &'a str, email: &str) -> Option<&'a str> {
    listing
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().any(|w| w == email))
}

/// The last two columns of an account's row: pageviews per month, websites.
fn limits_in_list(sb: &Sandbox, email: &str) -> (String, String) {
    let listing = list(sb);
    let row = row_for(&listing, email).unwrap_or_else(|| panic!("{email} not listed: {listing}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    let n = cells.len();
    (cells[n - 2].to_string(), cells[n - 1].to_string())
}

/// `Password: <generated>` from a command's stdout.
fn printed_password(out: &Out) -> String {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Password: "))
        .collect();
    assert_eq!(lines.len(), 1, "one generated password expected: {out:#?}");
    let pass = lines[0].trim().to_string();
    assert!(pass.chars().count() >= 10, "a usable password: {pass:?}");
    pass
}

fn login_status(server: &Server, email: &str, password: &str) -> u16 {
    common::client()
        .post(server.api("/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .expect("login request")
        .status()
        .as_u16()
}

fn session_status(server: &Server, session: &common::Session) -> u16 {
    session
        .client
        .get(server.api("/auth/session"))
        .send()
        .expect("session request")
        .status()
        .as_u16()
}

// ---------------------------------------------------------------------------------------------
// users add

#[test]
fn users_add_with_password_stdin_creates_an_account_that_users_list_shows() {
    let sb = Sandbox::new();
    let out = add_user(&sb, "alice@example.com", "alice's long password");
    assert!(
        out.stdout
            .starts_with("Created account alice@example.com ("),
        "{out:#?}"
    );
    assert!(
        !out.stdout.contains("Password:"),
        "no generated password with --password-stdin: {out:#?}"
    );
    assert!(
        !out.stderr.contains("alice's long password"),
        "the password is never echoed"
    );

    let listing = list(&sb);
    let header = listing.lines().next().unwrap_or_default();
    for column in [
        "ID",
        "EMAIL",
        "NAME",
        "CREATED",
        "PAGEVIEWS/MONTH",
        "WEBSITES",
    ] {
        assert!(header.contains(column), "column {column} in {listing}");
    }
    assert!(
        row_for(&listing, "alice@example.com").is_some(),
        "alice is listed: {listing}"
    );
    assert_eq!(
        limits_in_list(&sb, "alice@example.com"),
        ("unlimited".into(), "unlimited".into()),
        "no limits by default"
    );
    assert_eq!(
        listing.lines().count(),
        2,
        "header and one account: {listing}"
    );
}

#[test]
fn users_add_with_names_lists_them() {
    let sb = Sandbox::new();
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "grace@example.com",
            "--first-name",
            "Grace",
            "--last-name",
            "Hopper",
            "--password-stdin",
        ],
        "grace's long password\n",
    );
    assert_success(&out);
    let listing = list(&sb);
    let row = row_for(&listing, "grace@example.com").expect("listed");
    assert!(row.contains("Grace Hopper"), "{row}");
}

#[test]
fn users_add_without_password_stdin_prints_a_password_that_logs_in() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    // Created from the shell while the server runs: usable at the next request.
    let out = run(&sb, &["users", "add", "--email", "gen@example.com"]);
    assert_success(&out);
    assert!(
        out.stdout.starts_with("Created account gen@example.com ("),
        "{out:#?}"
    );
    let password = printed_password(&out);
    assert!(
        !out.stderr.contains(&password),
        "the password goes to stdout only: {out:#?}"
    );

    let session = server.login("gen@example.com", &password);
    assert_eq!(session_status(&server, &session), 200);
    assert_eq!(
        login_status(&server, "gen@example.com", "not the password"),
        401
    );
}

#[test]
fn users_add_duplicate_email_fails_case_insensitively() {
    let sb = Sandbox::new();
    add_user(&sb, "dup@example.com", "first long password");
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "DUP@Example.com",
            "--password-stdin",
        ],
        "second long password\n",
    );
    assert_failure(&out, "already exists");
    assert!(out.stdout.is_empty(), "{out:#?}");
    let listing = list(&sb);
    assert_eq!(listing.lines().count(), 2, "still one account: {listing}");
}

#[test]
fn users_add_malformed_email_is_refused_with_a_clear_message() {
    let sb = Sandbox::new();
    init(&sb);
    let out = run_stdin(
        &sb,
        &["users", "add", "--email", "nope", "--password-stdin"],
        "a long enough password\n",
    );
    assert_failure(&out, "email: must be a valid email address");
    assert_eq!(list(&sb).lines().count(), 1, "no account created");
}

#[test]
fn users_add_empty_password_on_stdin_is_refused() {
    let sb = Sandbox::new();
    init(&sb);
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "e@example.com",
            "--password-stdin",
        ],
        "\n",
    );
    assert_failure(&out, "password: must not be empty");
    // End of input without any line is the same empty password.
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "e@example.com",
            "--password-stdin",
        ],
        "",
    );
    assert_failure(&out, "password: must not be empty");
    assert!(row_for(&list(&sb), "e@example.com").is_none());
}

#[test]
fn users_add_too_short_password_is_refused() {
    let sb = Sandbox::new();
    init(&sb);
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "s@example.com",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_failure(&out, "password: must be at least 10 characters");
    assert!(row_for(&list(&sb), "s@example.com").is_none());
}

#[test]
fn users_add_without_email_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = run(&sb, &["users", "add"]);
    assert_usage(&out, "--email");
    assert!(!sb.data_dir().exists(), "a usage error touches nothing");
}

#[test]
fn users_add_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = run(
        &sb,
        &["users", "add", "--email", "u@example.com", "--admin"],
    );
    assert_usage(&out, "--admin");
    assert!(!sb.data_dir().exists(), "a usage error touches nothing");
}

// ---------------------------------------------------------------------------------------------
// users list

#[test]
fn users_list_on_an_empty_database_prints_only_the_header() {
    let sb = Sandbox::new();
    let listing = list(&sb);
    assert_eq!(listing.lines().count(), 1, "{listing}");
    assert!(listing.starts_with("ID"), "{listing}");
}

#[test]
fn users_list_with_a_closed_stdout_fails_with_one_line_and_no_panic() {
    let sb = Sandbox::new();
    add_user(&sb, "pipe@example.com", "pipe long password");
    let out = run_with_closed_stdout(&sb, &["users", "list"]);
    assert_failure(&out, "");
}

#[test]
fn users_list_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["users", "list", "--bogus"]), "--bogus");
}

#[test]
fn users_list_in_a_data_dir_it_cannot_write_fails_with_one_clear_line() {
    let sb = Sandbox::new();
    let data = sb.data_dir();
    std::fs::create_dir(&data).unwrap();
    let out = unprivileged(&sb, &data, &["users", "list"], None);
    assert_failure(&out, "is not writable");
    assert!(
        out.stderr.contains(&data.display().to_string()),
        "names the dir: {out:#?}"
    );
    assert!(!sb.db_path().exists(), "nothing created");
}

// ---------------------------------------------------------------------------------------------
// users passwd

#[test]
fn users_passwd_with_password_stdin_changes_the_password() {
    let sb = Sandbox::new();
    add_user(&sb, "pw@example.com", "the old long password");
    let out = run_stdin(
        &sb,
        &[
            "users",
            "passwd",
            "--email",
            "pw@example.com",
            "--password-stdin",
        ],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_success(&out);
    assert_eq!(
        out.stdout.trim_end(),
        "Password changed for pw@example.com; 0 session(s) ended",
        "{out:#?}"
    );
    let server = Server::start(&sb, &[]);
    assert_eq!(
        login_status(&server, "pw@example.com", "the old long password"),
        401
    );
    server.login("pw@example.com", NEW_PASSWORD);
}

#[test]
fn users_passwd_ends_the_sessions_of_a_running_server() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("owner@example.com");
    assert_eq!(session_status(&server, &session), 200);

    let out = run_stdin(
        &sb,
        &[
            "users",
            "passwd",
            "--email",
            "owner@example.com",
            "--password-stdin",
        ],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_success(&out);
    assert!(out.stdout.contains("1 session(s) ended"), "{out:#?}");

    assert_eq!(
        session_status(&server, &session),
        401,
        "the old session is over"
    );
    assert_eq!(
        login_status(&server, "owner@example.com", PASSWORD),
        401,
        "old password refused"
    );
    let fresh = server.login("owner@example.com", NEW_PASSWORD);
    assert_eq!(session_status(&server, &fresh), 200);
}

#[test]
fn users_passwd_without_password_stdin_prints_a_new_password_that_logs_in() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("gen2@example.com");
    let out = run(&sb, &["users", "passwd", "--email", "gen2@example.com"]);
    assert_success(&out);
    let password = printed_password(&out);
    server.login("gen2@example.com", &password);
    assert_eq!(login_status(&server, "gen2@example.com", PASSWORD), 401);
}

#[test]
fn users_passwd_unknown_email_fails() {
    let sb = Sandbox::new();
    init(&sb);
    let out = run_stdin(
        &sb,
        &[
            "users",
            "passwd",
            "--email",
            "ghost@example.com",
            "--password-stdin",
        ],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_failure(&out, "no account with the email ghost@example.com");
    assert!(out.stdout.is_empty());
}

#[test]
fn users_passwd_too_short_password_fails_and_keeps_the_old_one() {
    let sb = Sandbox::new();
    add_user(&sb, "keep@example.com", "the old long password");
    let out = run_stdin(
        &sb,
        &[
            "users",
            "passwd",
            "--email",
            "keep@example.com",
            "--password-stdin",
        ],
        "tiny\n",
    );
    assert_failure(&out, "password: must be at least 10 characters");
    let server = Server::start(&sb, &[]);
    server.login("keep@example.com", "the old long password");
}

#[test]
fn users_passwd_without_email_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(
        &run(&sb, &["users", "passwd", "--password-stdin"]),
        "--email",
    );
}

#[test]
fn users_passwd_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(
        &run(
            &sb,
            &[
                "users",
                "passwd",
                "--email",
                "a@example.com",
                "--pasword-stdin",
            ],
        ),
        "--pasword-stdin",
    );
}

// ---------------------------------------------------------------------------------------------
// users remove

#[test]
fn users_remove_deletes_the_account_and_its_sessions() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("gone@example.com");
    add_user(&sb, "stays@example.com", "stays long password");

    let out = run(&sb, &["users", "remove", "--email", "gone@example.com"]);
    assert_success(&out);
    assert!(
        out.stdout.starts_with("Removed account gone@example.com ("),
        "{out:#?}"
    );

    let listing = list(&sb);
    assert!(row_for(&listing, "gone@example.com").is_none(), "{listing}");
    assert!(
        row_for(&listing, "stays@example.com").is_some(),
        "{listing}"
    );
    assert_eq!(
        session_status(&server, &session),
        401,
        "its session ended with it"
    );
    assert_eq!(login_status(&server, "gone@example.com", PASSWORD), 401);
}

#[test]
fn users_remove_unknown_email_fails() {
    let sb = Sandbox::new();
    add_user(&sb, "here@example.com", "here long password");
    let out = run(&sb, &["users", "remove", "--email", "ghost@example.com"]);
    assert_failure(&out, "no account with the email ghost@example.com");
    assert!(row_for(&list(&sb), "here@example.com").is_some());
}

#[test]
fn users_remove_on_a_fresh_data_dir_fails_with_one_line() {
    let sb = Sandbox::new();
    let out = run(&sb, &["users", "remove", "--email", "ghost@example.com"]);
    assert_failure(&out, "no database at");
    assert!(
        !sb.db_path().exists(),
        "a mistyped data dir gets no new database"
    );
}

#[test]
fn users_remove_without_email_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(&run(&sb, &["users", "remove"]), "--email");
}

#[test]
fn users_remove_unknown_flag_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(
        &run(
            &sb,
            &["users", "remove", "--email", "a@example.com", "--yes"],
        ),
        "--yes",
    );
}

// ---------------------------------------------------------------------------------------------
// users limits

#[test]
fn users_limits_sets_prints_and_lists_the_limits() {
    let sb = Sandbox::new();
    add_user(&sb, "lim@example.com", "limited long password");
    let out = run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            "lim@example.com",
            "--pageviews-per-month",
            "1000",
            "--websites",
            "none",
        ],
    );
    assert_success(&out);
    assert_eq!(
        out.stdout.trim_end(),
        "lim@example.com: pageviews per month 1000, websites unlimited",
        "{out:#?}"
    );
    assert_eq!(
        limits_in_list(&sb, "lim@example.com"),
        ("1000".into(), "unlimited".into())
    );

    // Without a flag: shows the limits and changes nothing.
    let out = run(&sb, &["users", "limits", "--email", "lim@example.com"]);
    assert_success(&out);
    assert_eq!(
        out.stdout.trim_end(),
        "lim@example.com: pageviews per month 1000, websites unlimited"
    );

    // One flag changes only its own limit; `none` lifts it.
    let out = run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            "lim@example.com",
            "--websites",
            "3",
        ],
    );
    assert_success(&out);
    assert_eq!(
        limits_in_list(&sb, "lim@example.com"),
        ("1000".into(), "3".into())
    );
    let out = run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            "lim@example.com",
            "--pageviews-per-month",
            "none",
        ],
    );
    assert_success(&out);
    assert_eq!(
        out.stdout.trim_end(),
        "lim@example.com: pageviews per month unlimited, websites 3"
    );
    assert_eq!(
        limits_in_list(&sb, "lim@example.com"),
        ("unlimited".into(), "3".into())
    );
}

#[test]
fn users_limits_websites_0_is_a_usage_error() {
    let sb = Sandbox::new();
    add_user(&sb, "zero@example.com", "zero long password");
    let out = run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            "zero@example.com",
            "--websites",
            "0",
        ],
    );
    assert_usage(&out, "--websites");
    for bad in ["-5", "0", "many", "1.5"] {
        let flag = format!("--pageviews-per-month={bad}");
        let out = run(
            &sb,
            &["users", "limits", "--email", "zero@example.com", &flag],
        );
        assert_usage(&out, "--pageviews-per-month");
    }
    assert_eq!(
        limits_in_list(&sb, "zero@example.com"),
        ("unlimited".into(), "unlimited".into())
    );
}

#[test]
fn users_limits_without_email_is_a_usage_error() {
    let sb = Sandbox::new();
    assert_usage(
        &run(&sb, &["users", "limits", "--websites", "2"]),
        "--email",
    );
}

#[test]
fn users_limits_unknown_email_fails() {
    let sb = Sandbox::new();
    init(&sb);
    let out = run(
        &sb,
        &[
            "users",
            "limits",
            "--email",
            "ghost@example.com",
            "--websites",
            "2",
        ],
    );
    assert_failure(&out, "no account with the email ghost@example.com");
}

// ---------------------------------------------------------------------------------------------
// a data dir the process may not write (run as nobody)

#[test]
fn users_add_in_a_root_owned_data_dir_fails_as_an_unprivileged_user() {
    let sb = Sandbox::new();
    let data = sb.data_dir();
    std::fs::create_dir(&data).unwrap();
    let out = unprivileged(
        &sb,
        &data,
        &[
            "users",
            "add",
            "--email",
            "n@example.com",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert_failure(&out, "is not writable");
    assert!(
        out.stderr.contains(&data.display().to_string()),
        "names the dir: {out:#?}"
    );
    assert!(!sb.db_path().exists(), "nothing created");
}

#[test]
fn users_add_under_a_folder_it_cannot_enter_fails_as_an_unprivileged_user() {
    let sb = Sandbox::new();
    let locked = sb.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !is_root() {
        // The owner could enter its own 0700 folder: close it for everyone.
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let data = locked.join("data");
    let out = unprivileged(
        &sb,
        &data,
        &[
            "users",
            "add",
            "--email",
            "n@example.com",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_failure(&out, "cannot create data directory");
    assert!(
        out.stderr.contains(&data.display().to_string()),
        "names the dir: {out:#?}"
    );
    assert!(
        out.stderr.contains("ermission denied"),
        "says why: {out:#?}"
    );
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs the executable as `nobody` (via setpriv) when the tests run as root, which is how CI
/// runs them; `data` is a folder owned by root that nobody may not write. Not as root, the
/// folder is made read-only for its owner instead.
fn unprivileged(sb: &Sandbox, data: &Path, args: &[&str], stdin: Option<&str>) -> Out {
    // The sandbox itself must be enterable by nobody.
    std::fs::set_permissions(sb.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = if is_root() {
        if data.exists() {
            std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(world_runnable_bin(sb));
        cmd
    } else {
        if data.exists() {
            std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        Command::new(common::bin())
    };
    common::isolate(&mut cmd, data);
    cmd.arg("--data-dir").arg(data).args(args);
    finish(cmd, stdin)
}

/// The executable, or a world-runnable copy of it in the sandbox when some folder on its
/// path is closed to other users.
fn world_runnable_bin(sb: &Sandbox) -> PathBuf {
    let bin = PathBuf::from(common::bin());
    let open = |p: &Path, bits: u32| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & bits == bits)
            .unwrap_or(false)
    };
    if open(&bin, 0o005) && bin.ancestors().skip(1).all(|d| open(d, 0o001)) {
        return bin;
    }
    let dir = sb.dir.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.join("jetrack");
    std::fs::copy(&bin, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}
