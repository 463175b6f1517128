//! The pg_ctl worker: the only process allowed to run the `[administration]
//! pg_ctl` command. Serves `<home>/run/pgctl.sock`; only the http worker talks
//! to it. It holds no database password: it asks the probe worker whether
//! PostgreSQL answers.
//!
//! Each action is an operation row (IN_PROGRESS, then DONE or FAILED with the
//! output); one action at a time; an action interrupted by this worker's death
//! is marked FAILED when the worker starts again.

pub mod command;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tracing::{error, info, warn};

use crate::ipc::client::SyncClient;
use crate::ipc::messages::{PgCtlCall, PgCtlReply, ProbeCall, ProbeReply, WorkerError};
use crate::store::{operations, sessions};

use super::WorkerCtx;

/// The command is killed past this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long PostgreSQL gets to reach the expected state after the command.
pub const POLL_FOR: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Output kept per operation.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// Longest a control call can take, for callers' timeouts.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(80);

/// Valid actions (2.x `T_CONTROL`).
pub const ACTIONS: [&str; 4] = ["start", "stop", "restart", "reload"];

struct PgCtl {
    ctx: WorkerCtx,
    db: Mutex<Connection>,
    probe: SyncClient<ProbeCall, ProbeReply>,
}

impl PgCtl {
    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pg_answers(&self) -> bool {
        matches!(
            self.probe.call(ProbeCall::PgCheck, Duration::from_secs(8)),
            Ok(Ok(ProbeReply::PgUp))
        )
    }

    /// Polls until PostgreSQL answers (`want_up`) or stops answering.
    fn wait_for(&self, want_up: bool) -> bool {
        let deadline = Instant::now() + POLL_FOR;
        loop {
            if self.pg_answers() == want_up {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    fn control(&self, action: &str, username: &str) -> Result<PgCtlReply, WorkerError> {
        if !ACTIONS.contains(&action) {
            return Err(WorkerError::BadRequest(format!(
                "unknown action {action:?}"
            )));
        }
        let template = self
            .ctx
            .settings()
            .config
            .administration
            .pg_ctl
            .clone()
            .ok_or_else(|| {
                WorkerError::NotConfigured(
                    "PostgreSQL control is not configured: set [administration] pg_ctl".into(),
                )
            })?;
        let argv = command::argv(&template, action).map_err(WorkerError::NotConfigured)?;
        let id =
            sessions::new_id().map_err(|e| WorkerError::Internal(e.to_string()))?[..32].to_string();
        let begun = operations::begin(&mut self.db(), &id, action, username)
            .map_err(|e| WorkerError::Internal(e.to_string()))?;
        if let Err(running) = begun {
            return Err(WorkerError::Conflict(format!(
                "Another control action is in progress (operation {running})."
            )));
        }
        info!(
            "operation {id}: PostgreSQL {action} asked by {username}: running {}",
            argv[0]
        );
        let (done, output, reason) = match command::run(
            &argv,
            COMMAND_TIMEOUT,
            OUTPUT_LIMIT,
            &command::Inherit {
                open_files_soft: self.ctx.settings().runtime.open_files_soft,
            },
        ) {
            Err(e) => (
                false,
                String::new(),
                Some(format!("cannot run {}: {e}", argv[0])),
            ),
            Ok(o) if o.timed_out => (
                false,
                o.output,
                Some(format!("killed after {} s", COMMAND_TIMEOUT.as_secs())),
            ),
            Ok(o) if o.code != Some(0) => {
                let how = o
                    .code
                    .map(|c| format!("exit status {c}"))
                    .unwrap_or_else(|| "killed by a signal".into());
                (false, o.output, Some(format!("{} failed: {how}", argv[0])))
            }
            Ok(o) => {
                let reached = match action {
                    "reload" => true,
                    "stop" => self.wait_for(false),
                    _ => self.wait_for(true),
                };
                let reason = (!reached).then(|| match action {
                    "stop" => format!(
                        "PostgreSQL still answers {} s after the command",
                        POLL_FOR.as_secs()
                    ),
                    _ => format!(
                        "PostgreSQL does not answer {} s after the command",
                        POLL_FOR.as_secs()
                    ),
                });
                (reached, o.output, reason)
            }
        };
        if let Err(e) = operations::finish(&self.db(), &id, done, &output, reason.as_deref()) {
            error!("operation {id}: cannot record its end: {e}");
        }
        match (&reason, done) {
            (None, _) => {
                info!("operation {id}: PostgreSQL {action} done");
                Ok(PgCtlReply::Done {
                    operation: id,
                    state: "ok".into(),
                })
            }
            (Some(r), _) if r.contains("PostgreSQL") => {
                warn!("operation {id}: {r}");
                Ok(PgCtlReply::Done {
                    operation: id,
                    state: "ko".into(),
                })
            }
            (Some(r), _) => {
                warn!("operation {id}: {r}");
                Err(WorkerError::CommandFailed(format!(
                    "PostgreSQL {action} failed: {r} (operation {id})"
                )))
            }
        }
    }
}

/// Runs the pg_ctl worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let settings = ctx.settings();
    let db = match crate::store::open(&settings.config.temboard.home) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    match operations::fail_interrupted(
        &db,
        "interrupted: the pg_ctl worker stopped during the action",
    ) {
        Ok(0) => {}
        Ok(n) => {
            warn!("{n} operation(s) left in progress by a previous pg_ctl worker marked FAILED")
        }
        Err(e) => error!("cannot check interrupted operations: {e}"),
    }
    let worker = PgCtl {
        probe: SyncClient::new(settings.runtime.run_dir.join("probe.sock")),
        ctx: ctx.clone(),
        db: Mutex::new(db),
    };
    info!("pg_ctl worker serving");
    super::serve_ipc(&ctx, move |call: PgCtlCall| match call {
        PgCtlCall::Ping => Ok(PgCtlReply::Pong),
        PgCtlCall::Control { action, username } => worker.control(&action, &username),
    })
}
