//! What plugins' pg_ctl work may use ([`PgCtlHost`]): the settings, the
//! state database, a PostgreSQL liveness check and the command runner.
//! Part of the plugin API (`crate::api`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;

use super::command;
use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerSettings};
use crate::workers::ctx::WorkerCtx;

/// What plugins' pg_ctl work may use: the settings, the state database, a
/// PostgreSQL liveness check and the command runner.
pub struct PgCtlHost {
    pub(super) ctx: WorkerCtx,
    pub(super) db: Mutex<Connection>,
    pub(super) probe: SyncClient<ProbeCall, ProbeReply>,
}

impl PgCtlHost {
    /// The settings in force.
    pub fn settings(&self) -> Arc<WorkerSettings> {
        self.ctx.settings()
    }

    /// The state database (one connection, serialized).
    pub fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether PostgreSQL answers now (asked of the probe worker).
    pub fn pg_answers(&self) -> bool {
        matches!(
            self.probe.call(ProbeCall::PgCheck, Duration::from_secs(8)),
            Ok(Ok(ProbeReply::PgUp))
        )
    }

    /// Runs `argv` (see [`command::run`]) with what a command started by
    /// hand would inherit.
    pub fn run(
        &self,
        argv: &[String],
        timeout: Duration,
        limit: usize,
    ) -> std::io::Result<command::Outcome> {
        let inherit = command::Inherit {
            open_files_soft: self.ctx.settings().runtime.open_files_soft,
        };
        command::run(argv, timeout, limit, &inherit)
    }
}
