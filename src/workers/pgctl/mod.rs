//! The pg_ctl worker: the only process allowed to run the `[administration]
//! pg_ctl` command. Serves `<home>/run/pgctl.sock`; only the http worker talks
//! to it.
//!
//! Control actions arrive with the administration plugin (issue #4); until then
//! a control request gets a clear "not implemented" error, never a fake success.

use tracing::info;

use crate::ipc::messages::{PgCtlCall, PgCtlReply, WorkerError};

use super::WorkerCtx;

fn handle(call: PgCtlCall) -> Result<PgCtlReply, WorkerError> {
    match call {
        PgCtlCall::Ping => Ok(PgCtlReply::Pong),
        PgCtlCall::Control { action, .. } => Err(WorkerError::NotImplemented(format!(
            "PostgreSQL control ({action}) is not available in this version of the agent"
        ))),
    }
}

/// Runs the pg_ctl worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    info!("pg_ctl worker serving");
    super::serve_ipc(&ctx, handle)
}
