//! The data directory: where it is, creating it, and the lock that marks a running server.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const LOCK_FILE: &str = "jetrack.lock";

/// `--data-dir`, else the platform's data directory (`~/.local/share/jetrack`), else
/// `./jetrack-data`.
pub fn resolve(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        directories::ProjectDirs::from("", "", "jetrack")
            .map(|d| d.data_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from("jetrack-data"))
    })
}

/// Creates the data directory (owner-only) when missing and checks that it is writable.
pub fn ensure(dir: &Path) -> Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| {
            Error::Internal(format!(
                "cannot create data directory {}: {}",
                dir.display(),
                plain(&e)
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
    }
    if !dir.is_dir() {
        return Err(Error::Internal(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let probe = dir.join(".jetrack-write-test");
    File::create(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| {
            Error::Internal(format!(
                "data directory {} is not writable: {}",
                dir.display(),
                plain(&e)
            ))
        })
}

/// An I/O error without the "(os error 13)" noise.
pub fn plain(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Held by a running server for its whole life; released by the OS when the process ends.
pub struct DataDirLock {
    _file: File,
}

/// Takes the data directory's lock, or says who has it.
pub fn lock(dir: &Path) -> Result<DataDirLock> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Internal(format!("cannot open {}: {}", path.display(), plain(&e))))?;
    match file.try_lock() {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(TryLockError::WouldBlock) => Err(Error::Conflict(format!(
            "a jetrack server is using {}; stop it first",
            dir.display()
        ))),
        Err(TryLockError::Error(e)) => Err(Error::Internal(format!(
            "cannot lock {}: {}",
            path.display(),
            plain(&e)
        ))),
    }
}
