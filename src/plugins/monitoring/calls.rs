//! The monitoring plugin's calls to the probe worker and the bounds on
//! their queries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config;
use crate::api::{PluginCall, Worker};

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
        /// Probe names (of [`super::probes::PER_DATABASE`]).
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
