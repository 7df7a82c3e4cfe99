//! The one error type of the project and its mapping to an HTTP status and the JSON envelope.

use http::StatusCode;

/// Every failure a request, a command or a background job can meet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that fails validation: one entry in `errors` per problem (`"field: what is wrong"`).
    #[error("{message}")]
    Invalid {
        message: String,
        errors: Vec<String>,
    },
    #[error("Authentication required")]
    Unauthorized,
    #[error("Invalid email or password")]
    BadCredentials,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("The request body did not arrive in time")]
    RequestTimeout,
    #[error("Request body too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    /// A database newer than this executable: refused, left untouched.
    #[error(
        "database schema version {found} is newer than this jetrack supports ({supported}); upgrade jetrack"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A validation failure with a single problem.
    pub fn invalid(field_error: impl Into<String>) -> Self {
        Self::invalid_all(vec![field_error.into()])
    }

    /// A validation failure listing every problem found.
    pub fn invalid_all(errors: Vec<String>) -> Self {
        let message = if errors.len() == 1 {
            "The request has an invalid value".to_string()
        } else {
            format!("The request has {} invalid values", errors.len())
        };
        Self::Invalid { message, errors }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized | Error::BadCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::SchemaTooNew { .. }
            | Error::Db(_)
            | Error::Pool(_)
            | Error::Io(_)
            | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The sentence shown to an API client. Internal details (SQL, paths) never leave the server.
    pub fn public_message(&self) -> String {
        if self.status() == StatusCode::INTERNAL_SERVER_ERROR {
            "Internal server error".to_string()
        } else {
            self.to_string()
        }
    }

    pub fn field_errors(&self) -> &[String] {
        match self {
            Error::Invalid { errors, .. } => errors,
            _ => &[],
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests { retry_after, .. } | Error::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}
