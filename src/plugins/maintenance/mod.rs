//! Maintenance plugin (temBoard 9.x facts 9): sizes and bloat of every
//! database, schema, table and index, and VACUUM / ANALYZE / REINDEX
//! scheduled, tracked and cancellable, for signed requests.
//!
//! Where each part runs:
//! - the pages' figures: the probe worker, on a pooled connection to the
//!   database shown, each query bounded ([`sizes`]), each relation's sizes
//!   read from the data directory ([`files`]) and its bloat estimate kept
//!   until its inputs change ([`catalog`]);
//! - a task's record: SQLite ([`store`]), written by the http worker when
//!   scheduled or canceled before its time;
//! - its start: the scheduler's dispatcher job, every second, at most one
//!   task per database and `[maintenance] max_tasks` in all ([`job`]);
//! - its run: the task worker, on a connection of its own, as an operation
//!   with PostgreSQL's VERBOSE output ([`task`]). A task the worker was
//!   running when it died is `aborted` when it starts again.

mod calls;
mod catalog;
pub mod config;
mod files;
mod job;
mod routes;
mod sizes;
pub mod store;
mod task;


use serde_json::Value;

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::ipc::stream::Sink;
use crate::api::ProbeHost;
pub use calls::{RunnerCall, SizesCall};
pub use config::{settings, Settings};
use config::{validate, KEYS};

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "maintenance",
    routes: routes::ROUTES,
    probe: Some(|| Box::new(SizesWork::default())),
    task: Some(task::build),
    jobs: job::jobs,
    keys: KEYS,
    settings: Some(validate),
    migrations: store::MIGRATIONS,
    ..Plugin::NOTHING
};

/// The pages' work in the probe worker, with what it keeps between pages
/// (the bloat estimates).
#[derive(Default)]
struct SizesWork {
    memory: catalog::Memory,
}

impl Work<ProbeHost> for SizesWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: SizesCall| match c {
            SizesCall::Instance => sizes::instance(host, &self.memory),
            SizesCall::Database { db } => sizes::database(host, &self.memory, &db),
            SizesCall::Schema { .. } => Err(WorkerError::BadRequest(
                "the schema page is only answered as a stream".into(),
            )),
            SizesCall::Table { db, schema, table } => {
                sizes::table(host, &self.memory, &db, &schema, &table)
            }
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

    /// The schema page as a stream: the http worker sends it as it comes,
    /// without holding or parsing it.
    fn stream(&self, host: &ProbeHost, call: Value, out: &mut dyn Sink) -> Result<(), WorkerError> {
        match serde_json::from_value(call) {
            Ok(SizesCall::Schema { db, schema }) => {
                let text = sizes::schema(host, &self.memory, &db, &schema)?;
                out.write(&text)
                    .map_err(|e| WorkerError::Failed(format!("cannot spool the answer: {e}")))
            }
            Ok(_) => Err(WorkerError::BadRequest(
                "only the schema page is answered as a stream".into(),
            )),
            Err(e) => Err(WorkerError::BadRequest(format!("maintenance call: {e}"))),
        }
    }
}
