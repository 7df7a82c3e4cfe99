//! The shared harness of the black-box tests: the real `jetrack` executable, started on
//! `127.0.0.1:0` with its own temporary data directory and `HOME`.
#![allow(dead_code)]

pub mod cli;
pub mod ingest;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_jetrack")
}

/// A command for the executable with a clean environment: its own HOME, no JETRACK_* from the
/// machine, and the given data dir.
pub fn jetrack(data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    isolate(&mut cmd, data_dir);
    cmd.arg("--data-dir").arg(data_dir);
    cmd
}

pub fn isolate(cmd: &mut Command, data_dir: &Path) {
    for (key, _) in std::env::vars() {
        if key.starts_with("JETRACK_") || key == "RUST_BACKTRACE" {
            cmd.env_remove(key);
        }
    }
    let home = data_dir.parent().unwrap_or(data_dir).join("home");
    let _ = std::fs::create_dir_all(&home);
    cmd.env("HOME", &home)
        .env("XDG_DATA_HOME", home.join(".local/share"));
}

/// A temporary folder that holds the data dir (`…/data`) and the fake HOME.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join("jetrack.db")
    }

    pub fn cmd(&self) -> Command {
        jetrack(&self.data_dir())
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub setup_url: Option<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// `jetrack serve --listen 127.0.0.1:0` plus `args`, on the sandbox's data dir.
    pub fn start(sandbox: &Sandbox, args: &[&str]) -> Server {
        let mut cmd = sandbox.cmd();
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(args);
        Self::spawn(cmd)
    }

    pub fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jetrack");
        let stdout = capture(child.stdout.take().expect("stdout"));
        let stderr = capture(child.stderr.take().expect("stderr"));
        let deadline = Instant::now() + Duration::from_secs(30);
        // `serve` prints its address to stdout after the setup link, so once the address is
        // there, so is the link (when there is one).
        let base = loop {
            if let Some(base) = find_listening(&stdout.lock().unwrap()) {
                break base;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "jetrack exited early ({status}): {}",
                    stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "jetrack did not start: {}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let setup_url = stdout
            .lock()
            .unwrap()
            .split_whitespace()
            .find(|w| w.contains("/setup?token="))
            .map(str::to_string);
        Server {
            child,
            base,
            setup_url,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn setup_token(&self) -> String {
        let url = self.setup_url.as_deref().expect("a setup link was printed");
        url.split("token=").nth(1).expect("token").to_string()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait()
    }

    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(50));
                return status;
            }
            assert!(Instant::now() < deadline, "jetrack did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Creates the first account through the setup endpoint; returns a logged-in client.
    pub fn setup(&self, email: &str) -> Session {
        let client = client();
        let resp = client
            .post(self.api("/auth/setup"))
            .json(
                &json!({"token": self.setup_token(), "email": email, "password": PASSWORD,
                          "firstName": "Ada", "lastName": "Lovelace"}),
            )
            .send()
            .expect("setup");
        assert_eq!(resp.status(), 201, "setup failed");
        let body: Value = resp.json().unwrap();
        Session {
            client,
            csrf: body["data"]["csrfToken"].as_str().unwrap().to_string(),
        }
    }

    /// Logs in with email and password.
    pub fn login(&self, email: &str, password: &str) -> Session {
        let client = client();
        let resp = client
            .post(self.api("/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .expect("login");
        assert_eq!(resp.status(), 200, "login failed");
        let body: Value = resp.json().unwrap();
        Session {
            client,
            csrf: body["data"]["csrfToken"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client holding a dashboard session and its CSRF token.
pub struct Session {
    pub client: reqwest::blocking::Client,
    pub csrf: String,
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn capture<R: std::io::Read + Send + 'static>(reader: R) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let sink = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            let mut b = sink.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
    buf
}

fn find_listening(log: &str) -> Option<String> {
    let i = log.find("listening on http://")?;
    let rest = &log[i + "listening on ".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '\x1b')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// Parses an envelope and checks its outer shape.
pub fn envelope(resp: reqwest::blocking::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().expect("a JSON envelope");
    assert_eq!(
        body["meta"]["status"], status,
        "meta.status equals the HTTP status: {body}"
    );
    assert_eq!(body["success"], status < 400, "{body}");
    if status >= 400 {
        assert!(body["data"].is_null(), "{body}");
        assert!(body["meta"]["message"].is_string(), "{body}");
        assert!(body["meta"]["errors"].is_array(), "{body}");
    }
    (status, body)
}

/// Creates an API key through the dashboard session (`POST /account/api-keys` with the
/// session's `X-CSRF-Token`) and returns the answer's `data` (`key`, `id`, `scope`, …).
/// `body` is the request body, e.g. `json!({})` or `json!({"scope": "read"})`.
pub fn create_api_key(server: &Server, session: &Session, body: Value) -> Value {
    let resp = session
        .client
        .post(server.api("/account/api-keys"))
        .header("x-csrf-token", &session.csrf)
        .json(&body)
        .send()
        .expect("create an API key");
    let (status, body) = envelope(resp);
    assert_eq!(status, 201, "creating an API key: {body}");
    body["data"].clone()
}

/// A new full API key of the session's account.
pub fn api_key(server: &Server, session: &Session) -> String {
    create_api_key(server, session, json!({}))["key"]
        .as_str()
        .expect("data.key")
        .to_string()
}
