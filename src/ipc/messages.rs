//! The message catalogue: one request and one response type per channel.
//!
//! Channels:
//! - control (supervisor <-> each worker, over the socketpair at fd 3):
//!   [`ToWorker`] / [`ToSupervisor`];
//! - probe (http, scheduler -> probe worker, `<home>/run/probe.sock`):
//!   [`Request<ProbeCall>`] / [`Response<ProbeReply>`];
//! - pgctl (http -> pg_ctl worker, `<home>/run/pgctl.sock`):
//!   [`Request<PgCtlCall>`] / [`Response<PgCtlReply>`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Role;
use crate::config::Config;

/// Supervisor to worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// First message: everything the worker needs to run.
    Start {
        /// Configuration generation, bumped on each successful reload.
        generation: u64,
        /// The snapshot.
        settings: Box<WorkerSettings>,
    },
    /// A new validated configuration.
    Reload {
        /// New generation.
        generation: u64,
        /// The snapshot.
        settings: Box<WorkerSettings>,
    },
    /// Finish current work and exit 0.
    Stop,
    /// What the supervisor knows of the workers (sent to the http worker on
    /// each change, for `/agent/self`).
    Supervision(Supervision),
}

/// Worker to supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToSupervisor {
    /// First message: who is speaking.
    Hello {
        /// Role.
        role: Role,
        /// Pid.
        pid: u32,
        /// [`super::PROTOCOL`] of the worker's build.
        protocol: u32,
    },
    /// The worker serves (the http worker accepts connections).
    Ready {
        /// Generation in force.
        generation: u64,
    },
    /// A reload was applied.
    Reloaded {
        /// Generation in force.
        generation: u64,
    },
}

/// What a worker receives at start and at each reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSettings {
    /// Configuration, without the secrets this role must not hold.
    pub config: Config,
    /// Facts about the running agent.
    pub runtime: Runtime,
    /// Certificate and key, for the http worker only: it then needs no access
    /// to the key file, which can stay readable by root alone.
    pub tls: Option<TlsMaterial>,
    /// The temBoard UI's PEM public key (9.x signed requests), for the http
    /// worker, as the supervisor read and checked it.
    #[serde(default)]
    pub signing_key_pem: Option<String>,
    /// Source of each configuration value (`section.key` → source).
    pub sources: std::collections::BTreeMap<String, crate::config::Source>,
}

/// The supervisor's view of the agent, for `/agent/self` and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    /// One entry per role.
    pub workers: Vec<WorkerState>,
    /// Why the last reload was refused, if it was.
    pub last_reload_error: Option<String>,
    /// Configuration generation in force.
    pub generation: u64,
}

/// State of one worker role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerState {
    /// Role.
    pub role: Role,
    /// Pid of the running incarnation.
    pub pid: Option<u32>,
    /// Restarts after a failure so far.
    pub restarts: u64,
    /// How the previous incarnation ended.
    pub last_exit: Option<String>,
    /// Deaths in a row soon after start (a crash loop when above 1).
    pub consecutive_failures: u32,
    /// Delay applied before the last restart after a failure, in ms: the
    /// backoff, visible while a role crash-loops.
    pub restart_delay_ms: Option<u64>,
}

/// Facts about the running agent shown by `/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// Supervisor pid.
    pub supervisor_pid: u32,
    /// Local start time, `%Y-%m-%dT%H:%M:%S`.
    pub start_datetime: String,
    /// Local time of the last successful reload (start time before any).
    pub reload_datetime: String,
    /// OS user the workers run as.
    pub user: String,
    /// Directory of the IPC sockets.
    pub run_dir: PathBuf,
    /// Open-files soft limit the agent was started with (before it raised
    /// its own): what commands run for the DBA get back.
    #[serde(default)]
    pub open_files_soft: Option<u64>,
}

pub use crate::tls::TlsMaterial;

/// A request on a worker channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<C> {
    /// Echoed by the response.
    pub id: u64,
    /// What is asked.
    pub call: C,
}

/// A response on a worker channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response<R> {
    /// Id of the request.
    pub id: u64,
    /// Result.
    pub result: Result<R, WorkerError>,
}

/// Failures a worker reports; the http worker maps them to HTTP in one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum WorkerError {
    /// PostgreSQL cannot be reached.
    #[error("PostgreSQL is unreachable: {0}")]
    PostgresUnavailable(String),
    /// A query failed.
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// The work took too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The request is not valid for this worker.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The feature is not built yet.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    /// A value of the request is not acceptable; the message says which.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (a file, a version).
    #[error("{0}")]
    NotFound(String),
    /// PostgreSQL refused a change the request asked for (`ALTER SYSTEM`).
    #[error("{0}")]
    PostgresRefused(String),
    /// The work failed for a reason the operator can act on; the message
    /// says it.
    #[error("{0}")]
    Failed(String),
    /// Something else is running that excludes this request.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The agent's configuration does not allow it; the message says what to set.
    #[error("{0}")]
    NotConfigured(String),
    /// An external command failed; the message says how.
    #[error("{0}")]
    CommandFailed(String),
    /// The agent's configuration forbids this change (a 403).
    #[error("{0}")]
    Forbidden(String),
    /// The worker's budget for this kind of work is in use: retry later
    /// (a 503 with `Retry-After`).
    #[error("{0}")]
    Busy(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Calls to the probe worker: the core's own, and plugins' calls carried
/// without the host knowing their types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeCall {
    /// Liveness of the worker itself (no PostgreSQL).
    Ping,
    /// Can PostgreSQL be reached now.
    PgCheck,
    /// When PostgreSQL started and last loaded its configuration, and
    /// whether it is a standby: what the scheduler watches so the http
    /// worker's discover documents are re-read only when they can have
    /// changed.
    PgStamp,
    /// Server facts for `/discover`.
    PgInfo,
    /// temBoard 9.x: the `postgres` section of the discover document.
    Discover9,
    /// temBoard 9.x: the PostgreSQL facts of `GET /status`.
    Status9,
    /// A plugin's call (its own enum, see `plugins::PluginCall`).
    Plugin {
        /// Plugin name.
        plugin: String,
        /// The plugin's call as JSON.
        call: serde_json::Value,
    },
    /// A plugin's call answered as a stream (`Streaming`, then chunks: see
    /// `ipc::stream`), for answers as large as the data.
    PluginStream {
        /// Plugin name.
        plugin: String,
        /// The plugin's call as JSON.
        call: serde_json::Value,
    },
}

/// Replies of the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProbeReply {
    /// Answer to `Ping`.
    Pong,
    /// Answer to `PgCheck`: PostgreSQL answered.
    PgUp,
    /// Answer to `PgStamp` (times in microseconds since the epoch).
    PgStamp {
        /// `pg_postmaster_start_time()`.
        started: i64,
        /// `pg_conf_load_time()`.
        conf_loaded: i64,
        /// `pg_is_in_recovery()`: a promotion changes the documents too.
        in_recovery: bool,
        /// The timeline: of the WAL written now on a primary, of the WAL
        /// received on a standby (`None` without a WAL receiver).
        #[serde(default)]
        timeline: Option<i64>,
    },
    /// Answer to `PgInfo`.
    PgInfo {
        /// `version()`.
        version: String,
        /// `port` setting, as text.
        port: String,
        /// `data_directory` setting.
        data_directory: String,
        /// `server_version_num`.
        version_num: i32,
    },
    /// A JSON document (9.x discover and status parts).
    Document {
        /// The document.
        value: serde_json::Value,
    },
    /// A plugin's reply (its own type, as JSON).
    Plugin {
        /// The reply.
        value: serde_json::Value,
    },
    /// Answer to `PluginStream`: the answer follows as chunks.
    Streaming,
}

/// Calls to the pg_ctl worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PgCtlCall {
    /// Liveness.
    Ping,
    /// A plugin's call (its own enum, see `plugins::PluginCall`).
    Plugin {
        /// Plugin name.
        plugin: String,
        /// The plugin's call as JSON.
        call: serde_json::Value,
    },
}

/// Replies of the pg_ctl worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PgCtlReply {
    /// Answer to `Ping`.
    Pong,
    /// A plugin's reply (its own type, as JSON).
    Plugin {
        /// The reply.
        value: serde_json::Value,
    },
}

/// Calls to the task worker (long PostgreSQL work, one connection each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskCall {
    /// Liveness.
    Ping,
    /// A plugin's call (its own enum, see `plugins::PluginCall`).
    Plugin {
        /// Plugin name.
        plugin: String,
        /// The plugin's call as JSON.
        call: serde_json::Value,
    },
}

/// Replies of the task worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskReply {
    /// Answer to `Ping`.
    Pong,
    /// A plugin's reply (its own type, as JSON).
    Plugin {
        /// The reply.
        value: serde_json::Value,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes_are_stable() {
        let r = Response::<ProbeReply> {
            id: 4,
            result: Err(WorkerError::PostgresUnavailable("down".into())),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"id":4,"result":{"Err":{"kind":"postgres_unavailable","message":"down"}}}"#
        );
        let back: Response<ProbeReply> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let hello = ToSupervisor::Hello {
            role: Role::Http,
            pid: 1,
            protocol: 1,
        };
        assert_eq!(
            serde_json::to_string(&hello).unwrap(),
            r#"{"type":"hello","role":"http","pid":1,"protocol":1}"#
        );
    }

    #[test]
    fn tls_material_is_not_printed() {
        let t = TlsMaterial {
            cert_pem: "c".into(),
            key_pem: "SECRET".into(),
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
