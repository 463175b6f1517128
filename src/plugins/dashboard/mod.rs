//! Dashboard plugin (2.x facts 9, 9.x facts 5): the host and PostgreSQL
//! metric set, collected every `[dashboard] scheduler_interval` by the
//! scheduler into a bounded history, and live single-metric routes (2.x).
//! One collection feeds both contracts: the 9.x sample is built from the
//! stored 2.x set and a few figures stored beside it.

mod calls;
pub mod config;
pub mod host;
mod job;
pub mod probe;
mod shape;
mod routes;
pub mod store;

use serde_json::Value;

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;
pub use calls::DashboardCall;
pub use shape::{sample_v9, split_v9};

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
