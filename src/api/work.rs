//! A plugin's work in a worker ([`Work`]) and its periodic jobs ([`Job`]).

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::ipc::messages::WorkerError;
use crate::workers::scheduler::host::JobHost;

/// Work a plugin runs in the probe worker (with PostgreSQL connections) or in
/// the pg_ctl worker (with the command runner). Called concurrently.
pub trait Work<H>: Send + Sync {
    /// Answers one call of the plugin (its [`PluginCall`] enum as JSON).
    fn handle(&self, host: &H, call: Value) -> Result<Value, WorkerError>;

    /// Answers one call as a stream of bytes written to `out`, for answers
    /// as large as the data: the work writes as it reads, so it never holds
    /// the whole answer (see `ipc::stream`). Most work has none.
    fn stream(
        &self,
        _host: &H,
        _call: Value,
        _out: &mut dyn crate::ipc::stream::Sink,
    ) -> Result<(), WorkerError> {
        Err(WorkerError::BadRequest(
            "this plugin has no streamed answer".into(),
        ))
    }

    /// Called once when the worker stops (the task worker asks running
    /// tasks to end and records why). Most work has nothing to do.
    fn stop(&self, _host: &H) {}
}

/// A periodic job run by the scheduler worker, one at a time.
pub trait Job: Send {
    /// Name for logs.
    fn name(&self) -> &'static str;
    /// Time between two runs with this configuration.
    fn every(&self, config: &Config) -> Duration;
    /// One run.
    fn run(&mut self, host: &mut JobHost);
}
