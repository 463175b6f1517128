//! Monitoring plugin (facts 10): probes collected every
//! `[monitoring] scheduler_interval` by the scheduler, deltas kept in SQLite,
//! the payload queued durably and pushed to `collector_url` by a sender
//! thread; routes to run one probe now, read the configuration and pull the
//! history. SQL probes run in the probe worker; host probes read /proc.

mod calls;
pub mod config;
pub mod deltas;
mod health;
pub mod host;
mod job;
mod metrics;
mod metrics9;
pub mod payload;
pub mod probe;
pub mod probes;
mod routes;
mod routes9;
pub mod sender;
pub mod store;

use serde_json::Value;

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;
pub use calls::{Limits, MonitoringCall};
pub use probes::{agent_datetime, is_sql_probe, HOST_PROBES, PER_DATABASE, PROBES, V2_ONLY, V9_ONLY};

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
