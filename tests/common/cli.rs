//! Running the executable as a command-line user would, and checking how it ended.

use std::io::Write;
use std::process::{Command, Stdio};

use super::Sandbox;

/// What a finished command left behind.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to the end, writing `stdin` to it when given (else stdin is closed).
pub fn finish(mut cmd: Command, stdin: Option<&str>) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("start jetrack");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        // The command may exit before reading (a usage error): ignore a broken pipe.
        let _ = pipe.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().expect("wait for jetrack");
    Out {
        code: output
            .status
            .code()
            .expect("exited, not killed by a signal"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `jetrack --data-dir <sandbox data> args…` with stdin closed.
pub fn run(sb: &Sandbox, args: &[&str]) -> Out {
    let mut cmd = sb.cmd();
    cmd.args(args);
    finish(cmd, None)
}

/// The same, with `stdin` written to the command's standard input.
pub fn run_stdin(sb: &Sandbox, args: &[&str], stdin: &str) -> Out {
    let mut cmd = sb.cmd();
    cmd.args(args);
    finish(cmd, Some(stdin))
}

/// `jetrack --data-dir <sandbox data> args…` whose stdout is a pipe nobody reads any more.
pub fn run_with_closed_stdout(sb: &Sandbox, args: &[&str]) -> Out {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = sb
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run jetrack");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
pub fn assert_no_panic(out: &Out) {
    for text in [&out.stdout, &out.stderr] {
        let lower = text.to_lowercase();
        assert!(!lower.contains("panicked"), "a panic: {out:#?}");
        assert!(!lower.contains("backtrace"), "a backtrace: {out:#?}");
    }
}

#[track_caller]
pub fn assert_success(out: &Out) {
    assert_eq!(out.code, 0, "expected success: {out:#?}");
    assert_no_panic(out);
}

/// Exit 1 and exactly one line on stderr, `error: …`, containing `needle`.
#[track_caller]
pub fn assert_failure(out: &Out, needle: &str) {
    assert_eq!(out.code, 1, "expected exit 1: {out:#?}");
    assert_no_panic(out);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr: {out:#?}");
    assert!(
        lines[0].starts_with("error: "),
        "stderr must start with `error: `: {out:#?}"
    );
    assert!(
        lines[0].contains(needle),
        "stderr should mention {needle:?}: {out:#?}"
    );
}

/// Exit 2 (clap's usage error), with `needle` in the message and nothing on stdout.
#[track_caller]
pub fn assert_usage(out: &Out, needle: &str) {
    assert_eq!(out.code, 2, "expected a usage error (exit 2): {out:#?}");
    assert_no_panic(out);
    assert!(out.stderr.starts_with("error: "), "{out:#?}");
    assert!(
        out.stderr.contains(needle),
        "stderr should mention {needle:?}: {out:#?}"
    );
    assert!(out.stdout.is_empty(), "{out:#?}");
}
