//! `GET /health` (no authentication, the Nomad idea): 200 when every worker
//! answers and PostgreSQL accepts connections, else 503, with one state per
//! component. It reveals no path, user, version or pid, and opens no new
//! PostgreSQL connection (the probe worker's pooled one answers).
//!
//! Answers come from a result at most [`MAX_AGE`] old, computed by one
//! request at a time: anonymous clients cannot multiply probe calls. The
//! `store` component writes to the agent's database: when the home's disk is
//! full, `/health` says so even though reads still work.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::state::AppState;
use crate::api::{Call, Handled, Reply};
use crate::ipc::messages::{PgCtlCall, PgCtlReply, ProbeCall, ProbeReply, TaskCall, TaskReply};
use hyper::StatusCode;

/// A worker must answer a ping within this.
const PING: Duration = Duration::from_secs(1);
/// The scheduler's heartbeat (written every few seconds) must be younger.
const HEARTBEAT_MAX_AGE: f64 = 30.0;

fn state(ok: bool) -> Value {
    json!({ "status": if ok { "ok" } else { "failing" } })
}

/// How long a result is reused (see [`super::state::HEALTH_MAX_AGE`]).
pub const MAX_AGE: Duration = super::state::HEALTH_MAX_AGE;

/// The checks' result, fresh within [`MAX_AGE`].
pub async fn check(app: &AppState) -> (bool, Value) {
    app.health.get(|| run_checks(app)).await
}

/// Runs the checks; returns (all required components ok, body).
async fn run_checks(app: &AppState) -> (bool, Value) {
    let (probe, pgctl, task, pg) = tokio::join!(
        app.probe.call(ProbeCall::Ping, PING),
        app.pgctl.call(PgCtlCall::Ping, PING),
        app.task.call(TaskCall::Ping, PING),
        app.probe.call(ProbeCall::PgCheck, Duration::from_secs(3)),
    );
    let settings = app.ctx.settings();
    let supervisor = nix::unistd::getppid().as_raw() as u32 == settings.runtime.supervisor_pid;
    let probe_ok = matches!(probe, Ok(Ok(ProbeReply::Pong)));
    let pgctl_ok = matches!(pgctl, Ok(Ok(PgCtlReply::Pong)));
    let task_ok = matches!(task, Ok(Ok(TaskReply::Pong)));
    let pg_ok = matches!(pg, Ok(Ok(ProbeReply::PgUp)));
    let config = settings.config.clone();
    let now = crate::store::sessions::now();
    // The plugins' components (the monitoring collector) are read with the
    // heartbeat, in one trip; every registered plugin answers, loaded or
    // not, so the document keeps its shape.
    let (heartbeat, plugin_components) = app
        .db
        .run(move |c| {
            let heartbeat = crate::store::meta::get(c, "scheduler_heartbeat")?;
            let mut parts = vec![];
            for hook in crate::plugins::REGISTRY.iter().filter_map(|p| p.health) {
                parts.push(hook(c, &config, now)?);
            }
            Ok((heartbeat, parts))
        })
        .await
        .unwrap_or((None, vec![]));
    let store_ok = app
        .db
        .run(move |c| crate::store::meta::set(c, "health_write", now))
        .await
        .is_ok();
    let scheduler_ok = heartbeat.is_some_and(|t| now - t < HEARTBEAT_MAX_AGE);
    let mut components = Map::new();
    components.insert("supervisor".into(), state(supervisor));
    components.insert("http".into(), state(true));
    components.insert("scheduler".into(), state(scheduler_ok));
    components.insert("probe".into(), state(probe_ok));
    components.insert("pgctl".into(), state(pgctl_ok));
    components.insert("task".into(), state(task_ok));
    components.insert("postgresql".into(), state(pg_ok));
    for (name, component) in plugin_components {
        components.insert(name.into(), component);
    }
    components.insert("store".into(), state(store_ok));
    let ok = supervisor && scheduler_ok && probe_ok && pgctl_ok && task_ok && pg_ok && store_ok;
    (
        ok,
        json!({ "status": if ok { "ok" } else { "failing" }, "components": components }),
    )
}

/// `GET /health` route: 200 or 503.
pub fn route(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let (ok, v) = check(c.state).await;
        let code = if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        Ok(Reply::JsonStatus(code, v))
    })
}
