//! The control action, run in the pg_ctl worker. Each action is an operation
//! row (IN_PROGRESS, then DONE or FAILED with the output); one action at a
//! time; an action interrupted by the worker's death is marked FAILED when the
//! worker starts again.

use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{error, info, warn};

use super::calls::{Action, ControlCall, ControlDone};
use crate::ipc::messages::WorkerError;
use crate::api::Work;
use crate::store::{operations, sessions};
use crate::api::{command, PgCtlHost};

/// The command is killed past this.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long PostgreSQL gets to reach the expected state after the command.
pub const POLL_FOR: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Output kept per operation.
const OUTPUT_LIMIT: usize = 64 * 1024;
/// Longest a control call can take, for callers' timeouts.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(80);

struct Control;

/// Builds the work when the pg_ctl worker starts: operations left in
/// progress by a previous incarnation are marked FAILED first.
pub fn build(host: &PgCtlHost) -> Box<dyn Work<PgCtlHost>> {
    match operations::fail_interrupted(
        &host.db(),
        "interrupted: the pg_ctl worker stopped during the action",
    ) {
        Ok(0) => {}
        Ok(n) => {
            warn!("{n} operation(s) left in progress by a previous pg_ctl worker marked FAILED")
        }
        Err(e) => error!("cannot check interrupted operations: {e}"),
    }
    Box::new(Control)
}

impl Work<PgCtlHost> for Control {
    fn handle(&self, host: &PgCtlHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: ControlCall| match c {
            ControlCall::Control { action, username } => control(host, action, &username),
        })
    }
}

/// Polls until PostgreSQL answers (`want_up`) or stops answering.
fn wait_for(host: &PgCtlHost, want_up: bool) -> bool {
    let deadline = Instant::now() + POLL_FOR;
    loop {
        if host.pg_answers() == want_up {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

fn control(host: &PgCtlHost, action: Action, username: &str) -> Result<ControlDone, WorkerError> {
    let action = action.as_str();
    let template = super::config::settings(&host.settings().config)
        .pg_ctl
        .ok_or_else(|| {
            WorkerError::NotConfigured(
                "PostgreSQL control is not configured: set [administration] pg_ctl".into(),
            )
        })?;
    let argv = command::argv(&template, action).map_err(WorkerError::NotConfigured)?;
    let id = sessions::new_id().map_err(|e| WorkerError::Internal(e.to_string()))?[..32].to_string();
    let begun = operations::begin(&mut host.db(), &id, action, username)
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
    let (done, output, reason) = match host.run(&argv, COMMAND_TIMEOUT, OUTPUT_LIMIT) {
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
                "stop" => wait_for(host, false),
                _ => wait_for(host, true),
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
    if let Err(e) = operations::finish(&host.db(), &id, done, &output, reason.as_deref()) {
        error!("operation {id}: cannot record its end: {e}");
    }
    match &reason {
        None => {
            info!("operation {id}: PostgreSQL {action} done");
            Ok(ControlDone {
                operation: id,
                state: "ok".into(),
            })
        }
        Some(r) if r.contains("PostgreSQL") => {
            warn!("operation {id}: {r}");
            Ok(ControlDone {
                operation: id,
                state: "ko".into(),
            })
        }
        Some(r) => {
            warn!("operation {id}: {r}");
            Err(WorkerError::CommandFailed(format!(
                "PostgreSQL {action} failed: {r} (operation {id})"
            )))
        }
    }
}
