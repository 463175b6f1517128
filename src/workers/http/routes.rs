//! The route table and the handlers of the core routes. Exact matching only
//! (our decision against 2.x prefix matching); the table is data so the OpenAPI
//! description can later be generated from it.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;

/// Handlers known to the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// `GET /status`.
    Status,
    /// `GET /discover`.
    Discover,
}

/// One routed (method, path).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Exact path.
    pub path: &'static str,
    /// What runs.
    pub handler: Handler,
}

/// Every route of the agent.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/status",
        handler: Handler::Status,
    },
    Route {
        method: "GET",
        path: "/discover",
        handler: Handler::Discover,
    },
];

/// Finds the handler of a request.
pub fn lookup(method: &Method, path: &str) -> Option<Handler> {
    ROUTES
        .iter()
        .find(|r| r.method == method.as_str() && r.path == path)
        .map(|r| r.handler)
}

/// Runs a handler.
pub async fn dispatch(handler: Handler, state: &Arc<AppState>) -> Result<Value, ApiError> {
    match handler {
        Handler::Status => Ok(status(state)),
        Handler::Discover => discover(state).await,
    }
}

fn status(state: &AppState) -> Value {
    let s = state.ctx.settings();
    json!({
        "pid": s.runtime.supervisor_pid,
        "user": s.runtime.user,
        "start_datetime": s.runtime.start_datetime,
        "reload_datetime": s.runtime.reload_datetime,
        "configfile": s.config.configfile.display().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

async fn discover(state: &AppState) -> Result<Value, ApiError> {
    use crate::ipc::messages::{ProbeCall, ProbeReply};
    let reply = state
        .probe
        .call(ProbeCall::PgInfo, super::IPC_TIMEOUT)
        .await
        .map_err(|e| ApiError::from_call("probe", Err(e)))?
        .map_err(|e| ApiError::from_call("probe", Ok(e)))?;
    let ProbeReply::PgInfo {
        version,
        port,
        data_directory,
        ..
    } = reply
    else {
        return Err(ApiError::Internal("unexpected probe reply".into()));
    };
    let s = state.ctx.settings();
    let summary: Vec<&str> = version.split(' ').take(2).collect();
    Ok(json!({
        "hostname": crate::host::hostname(s.config.temboard.hostname.as_deref()),
        "cpu": crate::host::cpu_count(),
        "memory_size": crate::host::memory_bytes(),
        "pg_port": port,
        "pg_version": version,
        "pg_version_summary": summary.join(" "),
        "pg_data": data_directory,
        "plugins": s.config.temboard.plugins,
    }))
}
