//! Maintenance plugin (temBoard 9.x facts 9): sizes and bloat of every
//! database, schema, table and index, and VACUUM / ANALYZE / REINDEX
//! scheduled, tracked and cancellable, for signed requests.
//!
//! Where each part runs:
//! - the pages' figures: the probe worker, on a pooled connection to the
//!   database shown, each query bounded ([`sizes`]);
//! - a task's record: SQLite ([`store`]), written by the http worker when
//!   scheduled or canceled before its time;
//! - its start: the scheduler's dispatcher job, every second, at most one
//!   task per database and `[maintenance] max_tasks` in all ([`job`]);
//! - its run: the task worker, on a connection of its own, as an operation
//!   with PostgreSQL's VERBOSE output ([`task`]). A task the worker was
//!   running when it died is `aborted` when it starts again.

mod job;
mod routes;
mod sizes;
pub mod store;
mod task;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};
use crate::ipc::messages::WorkerError;
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "maintenance",
    routes: routes::ROUTES,
    probe: Some(|| Box::new(SizesWork)),
    task: Some(task::build),
    jobs: job::jobs,
    keys: KEYS,
    settings: Some(validate),
    migrations: store::MIGRATIONS,
    ..Plugin::NOTHING
};

/// The keys of `[maintenance]`.
const KEYS: &[KeyDef] = &[
    k(
        "maintenance",
        "max_tasks",
        Some("2"),
        "maintenance tasks running at once in all databases (one per database at most), 1 to 64",
    ),
    k(
        "maintenance",
        "task_lock_timeout",
        Some("60"),
        "seconds a task may wait for its lock before it fails (0: wait for ever)",
    ),
    k(
        "maintenance",
        "statement_timeout",
        Some("30"),
        "seconds a query of the maintenance pages may run, 1 or more",
    ),
    k(
        "maintenance",
        "lock_timeout",
        Some("5"),
        "seconds a query of the maintenance pages may wait for a lock, 1 or more",
    ),
];

/// The validated `[maintenance]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Tasks running at once.
    pub max_tasks: u64,
    /// Seconds a task waits for its lock.
    pub task_lock_timeout: u64,
    /// Seconds a page query may run.
    pub statement_timeout: u64,
    /// Seconds a page query may wait for a lock.
    pub lock_timeout: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let default = |key| crate::config::schema::default_number(KEYS, key);
        Settings {
            max_tasks: default("max_tasks"),
            task_lock_timeout: default("task_lock_timeout"),
            statement_timeout: default("statement_timeout"),
            lock_timeout: default("lock_timeout"),
        }
    }
}

fn validate(c: &mut Values<'_>) -> Value {
    let s = Settings {
        max_tasks: c.int("maintenance", "max_tasks", 1, 64),
        task_lock_timeout: c.int("maintenance", "task_lock_timeout", 0, 86_400),
        statement_timeout: c.int("maintenance", "statement_timeout", 1, 86_400),
        lock_timeout: c.int("maintenance", "lock_timeout", 1, 86_400),
    };
    crate::api::section_value(&s)
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("maintenance").unwrap_or_default()
}

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
const INSTANCE_WAIT: Duration = Duration::from_secs(120);

struct SizesWork;

impl Work<ProbeHost> for SizesWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: SizesCall| match c {
            SizesCall::Instance => sizes::instance(host),
            SizesCall::Database { db } => sizes::database(host, &db),
            SizesCall::Schema { db, schema } => sizes::schema(host, &db, &schema),
            SizesCall::Table { db, schema, table } => sizes::table(host, &db, &schema, &table),
            SizesCall::Check {
                db,
                schema,
                table,
                index,
            } => sizes::check(
                host,
                &db,
                schema.as_deref(),
                table.as_deref(),
                index.as_deref(),
            )
            .map(|()| Value::Null),
        })
    }
}
