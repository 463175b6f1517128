//! The pg_ctl worker: the only process allowed to run programs. Serves
//! `<home>/run/pgctl.sock`; only the http worker talks to it. It holds no
//! database password: it asks the probe worker whether PostgreSQL answers.
//!
//! A host: plugins' pg_ctl work (today the administration plugin's control
//! action) runs here with a [`PgCtlHost`].

pub mod command;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::Connection;
use tracing::info;

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{PgCtlCall, PgCtlReply, ProbeCall, ProbeReply, WorkerSettings};
use crate::plugins::{loaded_work, Works, REGISTRY};

use super::WorkerCtx;

/// What plugins' pg_ctl work may use: the settings, the state database, a
/// PostgreSQL liveness check and the command runner.
pub struct PgCtlHost {
    ctx: WorkerCtx,
    db: Mutex<Connection>,
    probe: SyncClient<ProbeCall, ProbeReply>,
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

/// Runs the pg_ctl worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let settings = ctx.settings();
    let Some(db) = super::open_store(&ctx) else {
        return 1;
    };
    let host = PgCtlHost {
        probe: SyncClient::new(settings.runtime.run_dir.join("probe.sock")),
        ctx: ctx.clone(),
        db: Mutex::new(db),
    };
    let works: Works<PgCtlHost> = REGISTRY
        .iter()
        .filter_map(|p| p.pgctl.map(|build| (p.name, build(&host))))
        .collect();
    info!("pg_ctl worker serving");
    super::serve_ipc(&ctx, move |call: PgCtlCall, _| match call {
        PgCtlCall::Ping => Ok(PgCtlReply::Pong),
        PgCtlCall::Plugin { plugin, call } => {
            let work = loaded_work(&works, &host.settings().config, &plugin, "pg_ctl")?;
            work.handle(&host, call)
                .map(|value| PgCtlReply::Plugin { value })
        }
    })
}
