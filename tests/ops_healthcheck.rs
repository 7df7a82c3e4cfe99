//! `jetrack healthcheck` (SPEC 6): the Docker image's HEALTHCHECK, which has no shell or curl.
//! Exit 0 when `/healthz` answers 200, else 1 with one line on stderr.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::cli::{Out, assert_failure, assert_success, finish};
use common::{Sandbox, Server};

fn healthcheck(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = sb.cmd();
    cmd.arg("healthcheck").args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    finish(cmd, None)
}

/// A port on loopback that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_running_server_is_healthy_and_a_stopped_one_is_not() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let url = server.url("/healthz");
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/healthz");

    let out = healthcheck(&sb, &["--url", &url], &[]);
    assert_success(&out);
    assert_eq!(out.stdout, format!("{url}: 200\n"));

    // Docker's HEALTHCHECK runs with the image's JETRACK_LISTEN=0.0.0.0:8420 and no --url:
    // the unspecified address is asked on loopback.
    let listen = format!("0.0.0.0:{port}");
    let out = healthcheck(&sb, &[], &[("JETRACK_LISTEN", &listen)]);
    assert_success(&out);
    assert_eq!(
        out.stdout,
        format!("http://127.0.0.1:{port}/healthz: 200\n")
    );
    let out = healthcheck(&sb, &["--listen", &format!("127.0.0.1:{port}")], &[]);
    assert_success(&out);

    // A page that is not 200 is a failure, naming the status.
    let out = healthcheck(&sb, &["--url", &server.url("/no-such-page")], &[]);
    assert_failure(&out, "answered 404");

    assert!(server.stop().success());
    let out = healthcheck(&sb, &["--url", &url], &[]);
    assert_failure(&out, "cannot connect");
    assert!(out.stdout.is_empty(), "{out:?}");
}

#[test]
fn a_closed_port_fails_with_one_line() {
    let sb = Sandbox::new();
    let url = format!("http://127.0.0.1:{}/healthz", closed_port());
    let out = healthcheck(&sb, &["--url", &url], &[]);
    assert_failure(&out, &format!("{url}: cannot connect"));

    let listen = format!("127.0.0.1:{}", closed_port());
    let out = healthcheck(&sb, &[], &[("JETRACK_LISTEN", &listen)]);
    assert_failure(&out, &format!("http://{listen}/healthz: cannot connect"));
}

#[test]
fn unhealthy_silent_and_foreign_answers_fail() {
    let sb = Sandbox::new();

    // 503 is what /healthz answers when the database does not.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let n = conn.read(&mut request).unwrap();
        conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request[..n]).into_owned()
    });
    let out = healthcheck(&sb, &["--url", &format!("http://{addr}/healthz")], &[]);
    assert_failure(&out, "answered 503");
    let request = answer.join().unwrap();
    assert!(
        request.starts_with(&format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n")),
        "{request:?}"
    );

    // Something that accepts but never answers: the command gives up after its timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let started = Instant::now();
    let out = healthcheck(&sb, &["--url", &url], &[]);
    assert_failure(&out, "no answer");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded wait");
    drop(silent);

    // Not HTTP at all.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let talker = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let _ = conn.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    });
    let out = healthcheck(&sb, &["--url", &format!("http://{addr}/healthz")], &[]);
    assert_failure(&out, "not an HTTP answer");
    talker.join().unwrap();

    let out = healthcheck(&sb, &["--url", "https://stats.example.com/healthz"], &[]);
    assert_failure(&out, "only http:// is supported");
    let out = healthcheck(&sb, &["--url", "not a url"], &[]);
    assert_failure(&out, "not a URL");
}
