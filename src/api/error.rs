//! API errors and their one mapping to HTTP: status code plus the temBoard
//! `{"error": "..."}` body with the 2.x message strings (facts 1.7).

use std::time::Duration;

use hyper::StatusCode;

use crate::ipc::messages::WorkerError;
use crate::ipc::IpcError;

/// Everything a request can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No route for this method and path (2.x: checked before auth).
    #[error("URL not found.")]
    NotFound,
    /// 404 with a message of its own (`Invalid username/password.`).
    #[error("{0}")]
    NotFoundMessage(&'static str),
    /// 404 naming what was not found.
    #[error("{0}")]
    NotFoundText(String),
    /// Another action excludes this one.
    #[error("{0}")]
    Conflict(String),
    /// Resources of the agent are exhausted for now.
    #[error("{0}")]
    Busy(String),
    /// A status and message of the 2.x contract that no other variant has.
    #[error("{1}")]
    Status(u16, String),
    /// Method we never route (PUT, HEAD, PATCH...).
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// POST without a usable body (`Unable to read post data`, `Invalid json format`).
    #[error("{0}")]
    BadRequest(&'static str),
    /// Body over the limit.
    #[error("Request body too large: the limit is {0} bytes.")]
    PayloadTooLarge(usize),
    /// Parameter missing or malformed: `Parameter 'X' not sent.` / `... is malformed.`
    #[error("{0}")]
    NotAcceptable(String),
    /// Unknown or expired session.
    #[error("Invalid session.")]
    InvalidSession,
    /// Too many failed logins from one address.
    #[error("Too many failed logins: retry in {} seconds.", .0.as_secs().max(1))]
    TooManyRequests(Duration),
    /// The handler ran past its deadline.
    #[error("Request timed out.")]
    Timeout,
    /// A worker could not be reached over IPC.
    #[error("{0} worker unavailable, retry")]
    WorkerUnavailable(&'static str),
    /// PostgreSQL cannot be reached: the message says so (our decision, facts 15).
    #[error("Failed to connect to PostgreSQL: {0}")]
    PostgresUnavailable(String),
    /// A 500 whose message helps the operator (no secret, no internals).
    #[error("{0}")]
    ServerMessage(String),
    /// A feature not built yet.
    #[error("Not implemented: {0}")]
    NotImplemented(String),
    /// Anything unexpected; details go to the log only.
    #[error("Internal error.")]
    Internal(String),
}

impl ApiError {
    /// HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::NotFoundMessage(_) | ApiError::NotFoundText(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Status(code, _) => {
                StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::InvalidSession => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::WorkerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PostgresUnavailable(_)
            | ApiError::ServerMessage(_)
            | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// `Parameter 'X' not sent.`
    pub fn not_sent(key: &str) -> ApiError {
        ApiError::NotAcceptable(format!("Parameter '{key}' not sent."))
    }

    /// `Parameter 'X' is malformed.`
    pub fn malformed(key: &str) -> ApiError {
        ApiError::NotAcceptable(format!("Parameter '{key}' is malformed."))
    }

    /// Maps a failed worker call; `role` names the worker for the message.
    pub fn from_call(role: &'static str, e: Result<WorkerError, IpcError>) -> ApiError {
        match e {
            Err(ipc) => {
                tracing::warn!("{role} worker call failed: {ipc}");
                ApiError::WorkerUnavailable(role)
            }
            Ok(WorkerError::PostgresUnavailable(m)) => ApiError::PostgresUnavailable(m),
            Ok(WorkerError::NotImplemented(m)) => ApiError::NotImplemented(m),
            Ok(WorkerError::Conflict(m)) => ApiError::Conflict(m),
            Ok(WorkerError::NotConfigured(m)) | Ok(WorkerError::CommandFailed(m)) => {
                ApiError::ServerMessage(m)
            }
            Ok(WorkerError::Timeout(m)) | Ok(WorkerError::Busy(m)) => ApiError::Busy(m),
            Ok(WorkerError::Invalid(m)) => ApiError::NotAcceptable(m),
            Ok(WorkerError::NotFound(m)) => ApiError::NotFoundText(m),
            Ok(WorkerError::Failed(m)) => ApiError::ServerMessage(m),
            // 2.x answers 408 when PostgreSQL refuses an ALTER SYSTEM.
            Ok(WorkerError::PostgresRefused(m)) => ApiError::Status(408, m),
            Ok(WorkerError::Forbidden(m)) => ApiError::Status(403, m),
            Ok(other) => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Internal(format!("state database: {e}"))
    }
}
