//! Why the supervisor cannot start, or refuses a reload: each variant says
//! what to fix, with the file involved.

use std::path::PathBuf;

/// A failure of the supervisor's own work.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file the workers get from the supervisor cannot be read.
    #[error("{what}{}: {source}", path.display())]
    Read {
        /// What the file is, as a prefix of the message (may be empty).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate and key that make no TLS server configuration.
    #[error("TLS material {} + {} unusable: {reason}", cert.display(), key.display())]
    Tls {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The temBoard UI's public key does not parse.
    #[error("signing key {}: {reason}", path.display())]
    SigningKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A system call of the start failed.
    #[error("{what}: {source}")]
    System {
        /// What was attempted.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The run directory, lock or a listener cannot be set up (the message
    /// names the path and the fix).
    #[error("{0}")]
    Setup(String),
}

impl From<String> for SupervisorError {
    fn from(message: String) -> Self {
        SupervisorError::Setup(message)
    }
}
