//! Dashboard plugin (2.x facts 9, 9.x facts 5): the host and PostgreSQL
//! metric set, collected every `[dashboard] scheduler_interval` by the
//! scheduler into a bounded history, and live single-metric routes (2.x).
//! One collection feeds both contracts: the 9.x sample is built from the
//! stored 2.x set and a few figures stored beside it.

pub mod config;
pub mod host;
mod job;
pub mod probe;
mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;

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
    Route::signed("dashboard", "GET", "/dashboard", "Dashboard9", routes::last9),
    Route::signed(
        "dashboard",
        "GET",
        "/dashboard/config",
        "DashboardConfig9",
        routes::config,
    ),
    Route::signed(
        "dashboard",
        "GET",
        "/dashboard/history",
        "DashboardHistory9",
        routes::history9,
    ),
];

/// Takes the 9.x-only figures out of a PostgreSQL part (so 2.x answers and
/// the stored 2.x set stay as they were) and adds the memory in bytes:
/// `{"total_size_bytes", "memory": {"free_bytes", "active_bytes",
/// "cached_bytes"}}`.
pub fn split_v9(pg: &mut serde_json::Map<String, Value>, meminfo: &str) -> Value {
    let size = pg.remove(probe::TOTAL_SIZE_BYTES).unwrap_or(Value::Null);
    serde_json::json!({
        "total_size_bytes": size,
        "memory": host::parse_memory_bytes(meminfo),
    })
}

/// The 9.x sample (facts 5) from a stored 2.x set and its 9.x figures: the
/// same collection feeds both contracts. `timestamp` is the collection's
/// (the 2.x `buffers.time`).
pub fn sample_v9(set: &Value, v9: &Value) -> Value {
    let d = &set["databases"];
    let m = &set["memory"];
    let b = &v9["memory"];
    serde_json::json!({
        "buffers": {"nb": set["buffers"]["nb"]},
        "hitratio": set["hitratio"],
        "active_backends": {"nb": set["active_backends"]["nb"]},
        "databases": {
            "databases": d["databases"],
            "total_size": d["total_size"],
            "nb": d["databases"],
            "total_size_bytes": v9["total_size_bytes"],
            "total_commit": d["total_commit"],
            "total_rollback": d["total_rollback"],
        },
        "cpu": set["cpu"],
        "loadaverage": set["loadaverage"],
        "memory": {
            "total": m["total"],
            "free": m["free"],
            "active": m["active"],
            "cached": m["cached"],
            "free_bytes": b["free_bytes"],
            "active_bytes": b["active_bytes"],
            "cached_bytes": b["cached_bytes"],
        },
        "timestamp": set["buffers"]["time"],
    })
}

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
        crate::api::typed(call, |c: DashboardCall| match c {
            DashboardCall::Collect => match host.with(probe::collect)? {
                Value::Object(m) => Ok(m),
                other => Err(WorkerError::Internal(format!(
                    "dashboard set is not an object: {other}"
                ))),
            },
        })
    }
}
