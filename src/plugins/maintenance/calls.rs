//! The maintenance plugin's calls: sizes to the probe worker, tasks to the
//! task worker.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{PluginCall, Worker};

/// Calls of the maintenance pages to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SizesCall {
    /// Every database with its sums.
    Instance,
    /// One database's schemas.
    Database {
        /// Database.
        db: String,
    },
    /// One schema's tables and indexes.
    Schema {
        /// Database.
        db: String,
        /// Schema.
        schema: String,
    },
    /// One table.
    Table {
        /// Database.
        db: String,
        /// Schema.
        schema: String,
        /// Table.
        table: String,
    },
    /// Whether a task's target exists (before it is scheduled).
    Check {
        /// Database.
        db: String,
        /// Schema of the table or index.
        schema: Option<String>,
        /// Table.
        table: Option<String>,
        /// Index.
        index: Option<String>,
    },
}

impl PluginCall for SizesCall {
    const PLUGIN: &'static str = "maintenance";
    const WORKER: Worker = Worker::Probe;
    type Reply = Value;
}

/// The maintenance plugin's calls to the task worker (inside the task
/// channel's `TaskCall::Plugin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RunnerCall {
    /// Start a queued task (the scheduler's dispatcher).
    Run {
        /// Task id.
        id: String,
    },
    /// Cancel a queued or running task (the API).
    Cancel {
        /// Task id.
        id: String,
        /// Who asked (the notification of the cancel names them).
        username: String,
    },
}

impl PluginCall for RunnerCall {
    const PLUGIN: &'static str = "maintenance";
    const WORKER: Worker = Worker::Task;
    type Reply = Value;
}

/// How long the instance page may take: it reads every database, one at a
/// time.
pub const INSTANCE_WAIT: Duration = Duration::from_secs(120);

/// How long the schema page's stream may take to be spooled (its queries
/// are bounded by `[maintenance] statement_timeout`, 30 s by default), then
/// each of its chunks; the route's deadline is the same.
pub const SCHEMA_WAIT: Duration = Duration::from_secs(60);
