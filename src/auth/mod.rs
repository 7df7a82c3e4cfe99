//! Who is calling: passwords, dashboard sessions, CSRF and the login limits.

pub mod bounded;
pub mod device;
pub mod failures;
pub mod limits;
pub mod password;
pub mod ratelimit;
pub mod session;
pub mod token;
