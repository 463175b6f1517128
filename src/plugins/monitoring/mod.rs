//! Monitoring plugin (facts 10): probes collected every
//! `[monitoring] scheduler_interval` by the scheduler, deltas kept in SQLite,
//! the payload queued durably and pushed to `collector_url` by a sender
//! thread; routes to run one probe now, read the configuration and pull the
//! history. SQL probes run in the probe worker; host probes read /proc.

pub mod config;
pub mod deltas;
mod health;
pub mod host;
mod job;
mod metrics;
mod metrics9;
pub mod payload;
pub mod probe;
mod routes;
mod routes9;
pub mod sender;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "monitoring",
    default: true,
    routes: ROUTES,
    probe: Some(|| Box::new(MonitoringWork::default())),
    jobs: || vec![Box::new(job::Collect::default())],
    keys: config::KEYS,
    settings: Some(config::validate),
    migrations: store::MIGRATIONS,
    metrics: Some(metrics::add),
    health: Some(health::component),
    ..Plugin::NOTHING
};

/// Every probe, as named by the 2.x agent (the one list: configuration
/// validation, collection and routes use it).
pub const PROBES: &[&str] = &[
    "sessions",
    "xacts",
    "locks",
    "blocks",
    "bgwriter",
    "db_size",
    "tblspc_size",
    "filesystems_size",
    "cpu",
    "process",
    "memory",
    "loadavg",
    "wal_files",
    "replication",
    "replication_lag",
    "temp_files_size_delta",
    "replication_connection",
    "heap_bloat",
    "btree_bloat",
];

/// Probes run once per database, each on a connection of its own (the
/// others run once, on the agent's connection, and cover every database
/// through the catalogs). They run apart from the collection, so a slow
/// estimate on a big database delays nothing else.
pub const PER_DATABASE: &[&str] = &["heap_bloat", "btree_bloat"];

/// Probes of the 2.x payload only (9.x dropped the broken `replication`).
pub const V2_ONLY: &[&str] = &["replication"];

/// Probes of the 9.x document only: the 2.x payload pushed to a 2.x
/// collector keeps exactly its probes.
pub const V9_ONLY: &[&str] = &[
    "replication_lag",
    "temp_files_size_delta",
    "replication_connection",
    "heap_bloat",
    "btree_bloat",
];

/// Probes computed from the host rather than PostgreSQL.
pub const HOST_PROBES: [&str; 5] = ["filesystems_size", "cpu", "process", "memory", "loadavg"];

/// Whether a probe runs in PostgreSQL (every probe not read from the host):
/// derived from the two lists, so a new probe cannot be left out of either.
pub fn is_sql_probe(name: &str) -> bool {
    PROBES.contains(&name) && !HOST_PROBES.contains(&name)
}

/// Bounds on every probe query (`SET LOCAL statement_timeout` and
/// `lock_timeout`), milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `statement_timeout`.
    pub statement_ms: u64,
    /// `lock_timeout`.
    pub lock_ms: u64,
}

impl Limits {
    /// The limits of the configuration in force.
    pub fn of(config: &crate::config::Config) -> Limits {
        let m = config::settings(config);
        Limits {
            statement_ms: m.statement_timeout * 1000,
            lock_ms: m.lock_timeout * 1000,
        }
    }
}

/// Agent time as 2.x writes it in host probes: `YYYY-MM-DD HH:MM:SS +0000` (UTC).
pub fn agent_datetime() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string()
}

const fn probe_route(path: &'static str, id: &'static str) -> Route {
    Route::keyed("monitoring", path, id, routes::probe)
}

const ROUTES: &[Route] = &[
    probe_route("/monitoring/probe/sessions", "MonitoringProbesessions"),
    probe_route("/monitoring/probe/xacts", "MonitoringProbexacts"),
    probe_route("/monitoring/probe/locks", "MonitoringProbelocks"),
    probe_route("/monitoring/probe/blocks", "MonitoringProbeblocks"),
    probe_route("/monitoring/probe/bgwriter", "MonitoringProbebgwriter"),
    probe_route("/monitoring/probe/db_size", "MonitoringProbedb_size"),
    probe_route("/monitoring/probe/tblspc_size", "MonitoringProbetblspc_size"),
    probe_route(
        "/monitoring/probe/filesystems_size",
        "MonitoringProbefilesystems_size",
    ),
    probe_route("/monitoring/probe/cpu", "MonitoringProbecpu"),
    probe_route("/monitoring/probe/process", "MonitoringProbeprocess"),
    probe_route("/monitoring/probe/memory", "MonitoringProbememory"),
    probe_route("/monitoring/probe/loadavg", "MonitoringProbeloadavg"),
    probe_route("/monitoring/probe/wal_files", "MonitoringProbewal_files"),
    probe_route("/monitoring/probe/replication", "MonitoringProbereplication"),
    Route::new(
        "monitoring",
        "GET",
        "/monitoring/config",
        "MonitoringConfig",
        routes::config,
    ),
    Route::keyed(
        "monitoring",
        "/monitoring/history",
        "MonitoringHistory",
        routes::history,
    ),
    Route::signed(
        "monitoring",
        "GET",
        "/monitoring/history",
        "MonitoringHistory9",
        routes9::history,
    ),
    Route::signed(
        "monitoring",
        "GET",
        "/monitoring/config",
        "MonitoringConfig9",
        routes9::config,
    ),
    Route::signed(
        "monitoring",
        "GET",
        "/monitoring/metrics",
        "MonitoringMetrics9",
        routes9::metrics,
    ),
];

/// Calls of the monitoring plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MonitoringCall {
    /// Run SQL probes (raw counters): `{probe: [rows]}`; host probes,
    /// per-database probes and unknown names are ignored.
    Run {
        /// Probe names.
        probes: Vec<String>,
        /// Databases to report (`None` = all).
        dbnames: Option<Vec<String>>,
        /// Bounds on each query (none: the 2.x probe routes' behaviour).
        #[serde(default)]
        limits: Option<Limits>,
    },
    /// Run per-database probes (bloat estimates) in each database, one
    /// connection at a time: `{probe: [{"dbname", ...}]}`; a database that
    /// fails (a lock timeout, say) is left out and logged.
    PerDatabase {
        /// Probe names (of [`PER_DATABASE`]).
        probes: Vec<String>,
        /// Databases (`None` = every one that accepts connections).
        dbnames: Option<Vec<String>>,
        /// Bounds on each query.
        limits: Limits,
    },
    /// The instance description of the payload.
    Instance {
        /// Databases to describe (`None` = all).
        dbnames: Option<Vec<String>>,
    },
}

impl PluginCall for MonitoringCall {
    const PLUGIN: &'static str = "monitoring";
    const WORKER: Worker = Worker::Probe;
    type Reply = Value;
}

/// Failed runs in a row of each SQL probe: a failure is logged when it
/// starts and when it ends (with the count), not at every collection.
#[derive(Default)]
struct MonitoringWork {
    failing: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl MonitoringWork {
    fn record(&self, probe: &str, outcome: Result<(), &WorkerError>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            // PostgreSQL down is the pool's to log (once), not each probe's.
            Err(WorkerError::PostgresUnavailable(_)) => {}
            Err(e) => {
                let n = failing.entry(probe.to_string()).or_default();
                if *n == 0 {
                    tracing::warn!("probe {probe} failed: {e}; logged again when it works");
                }
                *n += 1;
            }
            Ok(()) => {
                if let Some(n) = failing.remove(probe) {
                    tracing::info!("probe {probe} works again after {n} failed run(s)");
                }
            }
        }
    }
}

impl MonitoringWork {
    /// Each per-database probe in each database, one connection at a time
    /// (opened for it, within the pool's cap, closed after): a database
    /// that fails is left out of that probe's rows and logged once.
    fn per_database(
        &self,
        host: &ProbeHost,
        probes: &[String],
        dbnames: Option<Vec<String>>,
        limits: Limits,
    ) -> Value {
        let dbs = match dbnames {
            Some(list) => list,
            None => match host.with(probe::connectable) {
                Ok(list) => list,
                Err(e) => {
                    tracing::debug!("databases unknown: {e}");
                    return Value::Object(Default::default());
                }
            },
        };
        let mut out = serde_json::Map::new();
        for p in probes.iter().filter(|p| PER_DATABASE.contains(&p.as_str())) {
            let mut rows = vec![];
            let mut failed = None;
            for db in &dbs {
                match host.with_database(db, |c| probe::per_database(c, p, limits)) {
                    Ok(Some(ratio)) => rows.push(serde_json::json!({"dbname": db, "ratio": ratio})),
                    Ok(None) => {}
                    Err(e) => failed = Some(format!("database {db}: {e}")),
                }
            }
            match &failed {
                Some(e) => self.record(p, Err(&WorkerError::Failed(e.clone()))),
                None => self.record(p, Ok(())),
            }
            out.insert(p.clone(), Value::Array(rows));
        }
        Value::Object(out)
    }
}

impl Work<ProbeHost> for MonitoringWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: MonitoringCall| match c {
            MonitoringCall::Run {
                probes,
                dbnames,
                limits,
            } => {
                let port = host.settings().config.postgresql.port;
                let mut out = serde_json::Map::new();
                for p in probes
                    .iter()
                    .filter(|p| is_sql_probe(p) && !PER_DATABASE.contains(&p.as_str()))
                {
                    // One failing probe (a lock timeout, say) does not hide the others.
                    let rows = match host.with(|c| probe::run(c, p, port, dbnames.as_deref(), limits)) {
                        Ok(rows) => {
                            self.record(p, Ok(()));
                            rows
                        }
                        Err(e) => {
                            self.record(p, Err(&e));
                            vec![]
                        }
                    };
                    out.insert(p.clone(), Value::Array(rows));
                }
                Ok(Value::Object(out))
            }
            MonitoringCall::PerDatabase {
                probes,
                dbnames,
                limits,
            } => Ok(self.per_database(host, &probes, dbnames, limits)),
            MonitoringCall::Instance { dbnames } => Ok(host
                .with(|c| probe::instance(c, dbnames.as_deref()))
                .unwrap_or_else(|e| {
                    tracing::debug!("instance facts unavailable: {e}");
                    serde_json::json!({ "available": false })
                })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_route_per_probe_and_every_probe_runs_somewhere() {
        for p in PROBES {
            let path = format!("/monitoring/probe/{p}");
            // The 2.x probe routes: 9.x-only probes have none (9.x has no
            // probe routes at all).
            assert_eq!(
                ROUTES.iter().any(|r| r.path == path),
                !V9_ONLY.contains(p),
                "{path}"
            );
            assert!(
                HOST_PROBES.contains(p) || probe::has_sql(p),
                "{p} is neither a host probe nor has SQL"
            );
        }
        let routed = ROUTES
            .iter()
            .filter(|r| r.path.starts_with("/monitoring/probe/"))
            .count();
        assert_eq!(routed, PROBES.len() - V9_ONLY.len());
    }
}
