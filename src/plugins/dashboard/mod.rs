//! Dashboard plugin (facts 9): the host and PostgreSQL metric set, collected
//! every `[dashboard] scheduler_interval` by the scheduler into a bounded
//! history, and live single-metric routes.

pub mod config;
pub mod host;
mod job;
pub mod probe;
mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::workers::http::routes::Route;
use crate::workers::probe::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "dashboard",
    default: true,
    routes: ROUTES,
    probe: Some(|| Box::new(DashboardWork)),
    jobs: || vec![Box::new(job::Collect::default())],
    keys: config::KEYS,
    settings: Some(config::validate),
    migrations: store::MIGRATIONS,
    ..Plugin::NOTHING
};

const fn metric(path: &'static str, id: &'static str) -> Route {
    Route::keyed("dashboard", path, id, routes::metric)
}

const ROUTES: &[Route] = &[
    Route::keyed("dashboard", "/dashboard", "Dashboard", routes::last),
    Route::keyed("dashboard", "/dashboard/live", "DashboardLive", routes::live),
    Route::keyed(
        "dashboard",
        "/dashboard/history",
        "DashboardHistory",
        routes::history,
    ),
    Route::keyed(
        "dashboard",
        "/dashboard/config",
        "DashboardConfig",
        routes::config,
    ),
    metric("/dashboard/buffers", "DashboardMetricbuffers"),
    metric("/dashboard/hitratio", "DashboardMetrichitratio"),
    metric("/dashboard/active_backends", "DashboardMetricactive_backends"),
    metric("/dashboard/max_connections", "DashboardMetricmax_connections"),
    metric("/dashboard/databases", "DashboardMetricdatabases"),
    metric("/dashboard/pg_version", "DashboardMetricpg_version"),
    metric("/dashboard/info", "DashboardMetricinfo"),
    metric("/dashboard/cpu", "DashboardMetriccpu"),
    metric("/dashboard/loadaverage", "DashboardMetricloadaverage"),
    metric("/dashboard/memory", "DashboardMetricmemory"),
    metric("/dashboard/hostname", "DashboardMetrichostname"),
    metric("/dashboard/os_version", "DashboardMetricos_version"),
    metric("/dashboard/n_cpu", "DashboardMetricn_cpu"),
];

/// Calls of the dashboard plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DashboardCall {
    /// The PostgreSQL part of the set (one statement).
    Collect,
}

impl PluginCall for DashboardCall {
    const PLUGIN: &'static str = "dashboard";
    const WORKER: Worker = Worker::Probe;
    /// The PostgreSQL fields, an object.
    type Reply = serde_json::Map<String, Value>;
}

struct DashboardWork;

impl Work<ProbeHost> for DashboardWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        super::typed(call, |c: DashboardCall| match c {
            DashboardCall::Collect => match host.with(probe::collect)? {
                Value::Object(m) => Ok(m),
                other => Err(WorkerError::Internal(format!(
                    "dashboard set is not an object: {other}"
                ))),
            },
        })
    }
}
