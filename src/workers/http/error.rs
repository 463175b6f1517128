//! API errors and their one mapping to HTTP: status code plus the temBoard
//! `{"error": "..."}` body with the 2.x message strings.

use hyper::StatusCode;

use crate::ipc::messages::WorkerError;
use crate::ipc::IpcError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route for this method and path (2.x: checked before auth).
    #[error("URL not found.")]
    NotFound,
    /// Method we never route (PUT, HEAD, PATCH...).
    #[error("Method not allowed.")]
    MethodNotAllowed,
    /// A worker could not be reached over IPC.
    #[error("{0} worker unavailable, retry")]
    WorkerUnavailable(&'static str),
    /// PostgreSQL cannot be reached: the message says so (our decision, facts 15).
    #[error("Failed to connect to PostgreSQL: {0}")]
    PostgresUnavailable(String),
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
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::WorkerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PostgresUnavailable(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
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
            Ok(other) => ApiError::Internal(other.to_string()),
        }
    }
}
