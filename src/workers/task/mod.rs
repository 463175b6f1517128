//! The task worker: runs long PostgreSQL work — maintenance's VACUUM,
//! ANALYZE and REINDEX — each on a connection opened for it, never on the
//! probe worker's pool, so a three-hour `VACUUM FULL` takes nothing from
//! `/activity` or the monitoring. Serves `<home>/run/task.sock`; the
//! scheduler asks it to start tasks, the http worker to cancel them.
//!
//! A host: what runs here is plugins' task work ([`crate::plugins::Plugin::task`]).
//! It holds the PostgreSQL password (like the probe worker) and runs no
//! command. Its state is SQLite's: a crash loses nothing, and the plugin's
//! work, built when the worker starts, records what the previous
//! incarnation left unfinished.

pub mod host;

use host::{Inner, TaskHost};

pub use host::OUTPUT_LIMIT;

use std::sync::{Arc, Mutex};

use tracing::info;

use crate::ipc::messages::{TaskCall, TaskReply};
use crate::plugins::{loaded_work, Works, REGISTRY};

use super::ctx::WorkerCtx;

/// Runs the task worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let Some(db) = super::ctx::open_store(&ctx) else {
        return 1;
    };
    let host = TaskHost {
        inner: Arc::new(Inner {
            ctx: ctx.clone(),
            db: Mutex::new(db),
        }),
    };
    let works: Works<TaskHost> = REGISTRY
        .iter()
        .filter_map(|p| p.task.map(|build| (p.name, build(&host))))
        .collect();
    info!("task worker serving");
    let works = Arc::new(works);
    let serving = works.clone();
    let stop_host = host.clone();
    let status = super::ipc_server::serve_ipc(&ctx, move |call: TaskCall, _| match call {
        TaskCall::Ping => Ok(TaskReply::Pong),
        TaskCall::Plugin { plugin, call } => {
            let work = loaded_work(&serving, &host.settings().config, &plugin, "task")?;
            work.handle(&host, call)
                .map(|value| TaskReply::Plugin { value })
        }
    });
    for (_, work) in works.iter() {
        work.stop(&stop_host);
    }
    status
}
