//! Inter-process communication between the supervisor and the workers, and
//! between workers (http and scheduler are clients of the probe, pg_ctl and
//! task workers).
//!
//! Used in every process. Frames are a 4-byte big-endian length followed by a
//! serde_json document; each channel has its own request/response enums in
//! [`messages`]; every request carries an id echoed by its reply.

pub mod client;
pub mod fds;
pub mod frame;
pub mod messages;
pub mod stream;

use serde::{Deserialize, Serialize};

/// Version of the message catalogue; the first message each way carries it so a
/// worker of another build is refused instead of misread.
pub const PROTOCOL: u32 = 2;

/// Largest frame accepted (4 MiB), checked before allocating: what one
/// frame can make a reader allocate at once. Answers as large as the data
/// (`/statements`) stream in chunks of their own (`stream.rs`); a larger
/// message (the maintenance schema page of a 10,000-table database is about
/// 7 MB) is sent as several frames, each flagged "more follows".
pub const MAX_FRAME: u32 = 4 * 1024 * 1024;

/// Largest message, over all its frames (16 MiB, the largest frame before
/// messages could span frames): its buffer grows frame by frame as the bytes
/// arrive, never from an announced length.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Why an IPC exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    /// The peer closed the connection (cleanly, at a frame boundary).
    #[error("peer closed the connection")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("peer closed the connection in the middle of a frame")]
    Truncated,
    /// A frame announced more bytes than we accept.
    #[error("frame of {0} bytes exceeds the limit of {max} bytes", max = MAX_FRAME)]
    TooLarge(u32),
    /// A message, over its frames, is larger than we accept.
    #[error("message of {0} bytes or more exceeds the limit of {max} bytes", max = MAX_MESSAGE)]
    MessageTooLarge(usize),
    /// The frame is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// No reply in time.
    #[error("no reply within {0} ms")]
    Timeout(u64),
    /// The reply does not answer our request.
    #[error("reply id {got} does not match request id {want}")]
    Mismatch {
        /// Expected id.
        want: u64,
        /// Received id.
        got: u64,
    },
    /// Socket error.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// The roles of the worker processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves the HTTPS API.
    Http,
    /// Runs periodic jobs.
    Scheduler,
    /// Holds the PostgreSQL connections.
    Probe,
    /// Runs the pg_ctl command.
    Pgctl,
    /// Runs long PostgreSQL tasks (maintenance), each on a connection of
    /// its own, away from the probe worker's pool.
    Task,
}

impl Role {
    /// Every role, in start order (servers before their clients).
    pub const ALL: [Role; 5] = [
        Role::Probe,
        Role::Pgctl,
        Role::Task,
        Role::Scheduler,
        Role::Http,
    ];

    /// Short name used in logs, process titles and the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Http => "http",
            Role::Scheduler => "scheduler",
            Role::Probe => "probe",
            Role::Pgctl => "pgctl",
            Role::Task => "task",
        }
    }

    /// Parses the short name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the role serves requests on a UNIX socket under `<home>/run/`.
    pub fn serves_ipc(self) -> bool {
        matches!(self, Role::Probe | Role::Pgctl | Role::Task)
    }

    /// Whether this role may hold the PostgreSQL password: the probe worker
    /// (its pool) and the task worker (a connection per task) connect; the
    /// pg_ctl worker asks the probe worker whether PostgreSQL answers.
    pub fn holds_db_password(self) -> bool {
        matches!(self, Role::Probe | Role::Task)
    }

    /// Process title shown by `ps`.
    pub fn title(self) -> String {
        format!("temboard-agent: {}", self.as_str())
    }
}
/// What a worker's exit status tells the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Finished as asked (stop).
    Done,
    /// Failed: restarted with backoff.
    Failed,
    /// Its configuration is unusable (e.g. TLS material it cannot load):
    /// not restarted until a reload brings a new one. 78 is `EX_CONFIG`.
    Config,
}

impl WorkerExit {
    /// The process exit status.
    pub const fn code(self) -> i32 {
        match self {
            WorkerExit::Done => 0,
            WorkerExit::Failed => 1,
            WorkerExit::Config => 78,
        }
    }

    /// The meaning of an exit status (`None` for other codes, which count
    /// as failures).
    pub fn from_code(code: i32) -> Option<WorkerExit> {
        [WorkerExit::Done, WorkerExit::Failed, WorkerExit::Config]
            .into_iter()
            .find(|w| w.code() == code)
    }
}
