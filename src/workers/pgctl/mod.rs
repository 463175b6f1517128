//! The pg_ctl worker: the only process allowed to run programs. Serves
//! `<home>/run/pgctl.sock`; only the http worker talks to it. It holds no
//! database password: it asks the probe worker whether PostgreSQL answers.
//!
//! A host: plugins' pg_ctl work (today the administration plugin's control
//! action) runs here with a [`PgCtlHost`].

pub mod host;

use host::PgCtlHost;

pub mod command;

use std::sync::Mutex;

use tracing::info;

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{PgCtlCall, PgCtlReply};
use crate::plugins::{loaded_work, Works, REGISTRY};

use super::ctx::WorkerCtx;

/// Runs the pg_ctl worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let settings = ctx.settings();
    let Some(db) = super::ctx::open_store(&ctx) else {
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
    super::ipc_server::serve_ipc(&ctx, move |call: PgCtlCall, _| match call {
        PgCtlCall::Ping => Ok(PgCtlReply::Pong),
        PgCtlCall::Plugin { plugin, call } => {
            let work = loaded_work(&works, &host.settings().config, &plugin, "pg_ctl")?;
            work.handle(&host, call)
                .map(|value| PgCtlReply::Plugin { value })
        }
    })
}
