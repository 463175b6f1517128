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
    /// The run directory, lock, a listener, the pid file or the detach
    /// cannot be set up (the message names the path and the fix).
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// Why the run directory, the lock, a listener, the pid file or the detach
/// from the terminal cannot be set up: each says what and where.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A system call on a path or address failed.
    #[error("cannot {action} {target}: {source}")]
    Sys {
        /// What was attempted (`bind`, `create`, `chmod`...).
        action: &'static str,
        /// The path or address.
        target: String,
        /// Cause.
        source: nix::Error,
    },
    /// A file operation on a path failed.
    #[error("cannot {action} {target}: {source}")]
    Io {
        /// What was attempted (`read pid file`, `write pid file`...).
        action: &'static str,
        /// The path.
        target: String,
        /// Cause.
        source: std::io::Error,
    },
    /// `<home>/run` is a link the worker user could have planted.
    #[error(
        "{0} is a symbolic link: refusing to use it (remove it; the agent creates the directory)"
    )]
    RunDirLink(String),
    /// `<home>/run` is something else than a directory.
    #[error("{0} is not a directory: refusing to use it")]
    RunDirNotDirectory(String),
    /// `<home>/run` belongs to someone else than the agent user.
    #[error("{path} is owned by uid {owner}, not by the agent user '{user}' (uid {expected}): refusing to use it")]
    RunDirOwner {
        /// The directory.
        path: String,
        /// Its owner.
        owner: u32,
        /// The agent user.
        user: String,
        /// The agent user's uid.
        expected: u32,
    },
    /// Another supervisor holds the lock of this home.
    #[error("another temboard-agent already runs with home {home} ({source})")]
    Locked {
        /// The home.
        home: String,
        /// Cause.
        source: nix::Error,
    },
    /// The pid file names a live process.
    #[error("pid file {path} names process {pid}, which is running: is another agent using it?")]
    PidFileInUse {
        /// The pid file.
        path: String,
        /// The process it names.
        pid: i32,
    },
    /// A step of detaching from the terminal failed.
    #[error("{step}: {source}")]
    Detach {
        /// `pipe`, `fork`, `setsid`, `chdir /`, `/dev/null`, `dup2`.
        step: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The worker user's identity cannot be taken for the file work.
    #[error("{0}")]
    Identity(String),
    /// The log file is a link the worker user could have planted.
    #[error("{0} is a symbolic link, which the agent does not follow")]
    LogFileLink(String),
    /// The log file cannot be opened as the worker user.
    #[error("cannot open {path} as user '{user}': {source}")]
    LogFileOpen {
        /// The log file.
        path: String,
        /// The worker user.
        user: String,
        /// Cause.
        source: nix::Error,
    },
    /// The log destination names no file.
    #[error("{0} is not a file path")]
    NotAFilePath(String),
    /// The log file's directory is reached through a link.
    #[error("user '{user}' cannot write {path}, and the agent creates it only in a directory reached without symbolic links: {source}")]
    LogDirectory {
        /// The log file.
        path: String,
        /// The worker user.
        user: String,
        /// Cause.
        source: nix::Error,
    },
    /// The log file exists and belongs to someone else than the worker user.
    #[error("{path} exists and user '{user}' cannot write it: the agent never changes the owner of an existing file; chown it to '{user}' or remove it")]
    LogFileForeign {
        /// The log file.
        path: String,
        /// The worker user.
        user: String,
    },
    /// The new log file cannot be handed to the worker user.
    #[error("cannot hand {path} to user '{user}': {source}")]
    LogFileHandOver {
        /// The log file.
        path: String,
        /// The worker user.
        user: String,
        /// Cause.
        source: nix::Error,
    },
    /// The worker user could create the log file itself but could not
    /// open it: something is off.
    #[error("cannot open {path} as user '{user}' (permission denied)")]
    LogFileDenied {
        /// The log file.
        path: String,
        /// The worker user.
        user: String,
    },
}
