//! Whether writes are getting through: the writer reports every batch here, `/healthz` reads
//! it, and a failing database (a full disk, a read-only file) is logged once per interval with
//! a count instead of once per refused request (docs/operations.md, "Health").

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use crate::error::Error;

/// At most one log line per this long while writes keep failing.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// `/healthz` reports a failed commit this long after it happened (unless one succeeded since).
const REMEMBER: Duration = Duration::from_secs(60);

/// Why a write could not be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trouble {
    /// The disk (or the database's page limit) is full.
    StorageFull,
    /// The database file or its folder cannot be written.
    ReadOnly,
    /// Anything else: the text of the database's error.
    Failed(String),
}

impl Trouble {
    pub fn of(e: &rusqlite::Error) -> Trouble {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Trouble::StorageFull,
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => Trouble::ReadOnly,
            _ => Trouble::Failed(e.to_string()),
        }
    }

    /// The trouble an error stands for, when it is one of the database's own.
    pub fn of_error(e: &Error) -> Option<Trouble> {
        match e {
            Error::Db(e) => Some(Trouble::of(e)),
            _ => None,
        }
    }

    /// The database's storage refuses writes (full or read-only), as opposed to a passing
    /// failure.
    pub fn is_storage(&self) -> bool {
        matches!(self, Trouble::StorageFull | Trouble::ReadOnly)
    }

    /// What `/healthz` says.
    pub fn reason(&self) -> String {
        match self {
            Trouble::StorageFull => {
                "storage full: the disk holding the database has no room".into()
            }
            Trouble::ReadOnly => "the database cannot be written (read-only)".into(),
            Trouble::Failed(e) => format!("writes fail: {e}"),
        }
    }

    /// What a caller whose write was refused is told.
    pub fn error(&self) -> Error {
        match self {
            Trouble::StorageFull => Error::Unavailable {
                message: "The server's storage is full; nothing was stored. Try again later".into(),
                retry_after: 60,
            },
            Trouble::ReadOnly => Error::Unavailable {
                message:
                    "The server cannot write its database; nothing was stored. Try again later"
                        .into(),
                retry_after: 60,
            },
            Trouble::Failed(_) => Error::Unavailable {
                message: "The database is busy; try again shortly".into(),
                retry_after: 2,
            },
        }
    }
}

#[derive(Default)]
struct State {
    /// The trouble of the latest failed batch, when no batch has succeeded since.
    failing: Option<(Trouble, Instant)>,
    /// When the current run of failures began.
    since: Option<Instant>,
    refused_total: u64,
    refused_unlogged: u64,
    last_log: Option<Instant>,
}

#[derive(Default)]
pub struct WriteHealth {
    state: Mutex<State>,
}

impl WriteHealth {
    /// A batch committed.
    pub fn committed(&self) {
        let mut s = self.state.lock().expect("not poisoned");
        if let Some(since) = s.since.take() {
            tracing::warn!(
                refused = s.refused_total,
                seconds = since.elapsed().as_secs(),
                "writes succeed again"
            );
        }
        *s = State::default();
    }

    /// `refused` writes could not be stored because of `trouble`.
    pub fn failed(&self, trouble: Trouble, refused: usize) {
        let now = Instant::now();
        let mut s = self.state.lock().expect("not poisoned");
        s.since.get_or_insert(now);
        s.refused_total += refused as u64;
        s.refused_unlogged += refused as u64;
        if s.last_log.is_none_or(|t| now - t >= LOG_EVERY) {
            let window = s.last_log.map_or(0, |t| (now - t).as_secs());
            tracing::error!(
                reason = %trouble.reason(),
                refused = s.refused_unlogged,
                seconds = window,
                "writes are failing"
            );
            s.refused_unlogged = 0;
            s.last_log = Some(now);
        }
        s.failing = Some((trouble, now));
    }

    /// `Err(reason)` while the latest batch of the last minute failed.
    pub fn status(&self) -> Result<(), String> {
        let s = self.state.lock().expect("not poisoned");
        match &s.failing {
            Some((trouble, at)) if at.elapsed() < REMEMBER => Err(trouble.reason()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_shows_until_a_commit_succeeds() {
        let h = WriteHealth::default();
        assert!(h.status().is_ok());
        h.failed(Trouble::StorageFull, 3);
        h.failed(Trouble::StorageFull, 2);
        assert_eq!(
            h.status().unwrap_err(),
            "storage full: the disk holding the database has no room"
        );
        assert_eq!(h.state.lock().unwrap().refused_total, 5);
        // Only the first failure of the interval was logged; the second waits with its count.
        assert_eq!(h.state.lock().unwrap().refused_unlogged, 2);
        h.committed();
        assert!(h.status().is_ok());
    }

    #[test]
    fn full_disks_are_told_apart() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        assert_eq!(Trouble::of(&full), Trouble::StorageFull);
        let Error::Unavailable { message, .. } = Trouble::StorageFull.error() else {
            panic!()
        };
        assert!(message.contains("storage is full"));
    }
}
