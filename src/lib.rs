//! Jetrack: privacy-friendly, self-hosted web analytics in one executable.
//!
//! Requests enter in `server` (routes, the API table in `server::api`), callers are identified
//! in `auth`, rows are read and written by the domain modules (`accounts`, `audit`), and the
//! database itself (pool, single writer, migrations, backups) lives in `db`.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod db;
pub mod demo;
pub mod error;
pub mod export;
pub mod fuzzing;
pub mod generate;
pub mod ingest;
pub mod keys;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod retention;
pub mod server;
pub mod stats;
pub mod time;
pub mod websites;
