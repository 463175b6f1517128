//! One plugin as the hosts see it ([`Plugin`]): its routes, its work for
//! the probe, pg_ctl and task workers, its jobs, configuration keys, state
//! database schema, metrics and health hooks. A plugin declares one
//! `PLUGIN` value of this type; `plugins::REGISTRY` lists them.

use rusqlite::Connection;
use serde_json::Value;

use super::exposition::Exposition;
use super::http::Route;
use super::work::{Job, Work};
use crate::config::keydef::KeyDef;
use crate::config::{Config, Values};
use crate::ipc::messages::WorkerError;
use crate::workers::pgctl::host::PgCtlHost;
use crate::workers::probe::host::ProbeHost;
use crate::workers::task::host::TaskHost;

/// Builds a plugin's probe-worker work once, when the worker starts.
pub type ProbeWork = fn() -> Box<dyn Work<ProbeHost>>;
/// Builds a plugin's pg_ctl-worker work once, when the worker starts.
pub type PgCtlWork = fn(&PgCtlHost) -> Box<dyn Work<PgCtlHost>>;
/// Builds a plugin's task-worker work once, when the worker starts (it may
/// record what a previous incarnation left unfinished).
pub type TaskWork = fn(&TaskHost) -> Box<dyn Work<TaskHost>>;

/// One plugin, as the hosts see it.
pub struct Plugin {
    /// Name used in `[temboard] plugins`.
    pub name: &'static str,
    /// Whether the plugin is in the default `[temboard] plugins` list.
    pub default: bool,
    /// Its HTTP routes (2.x contract), routed only while it is loaded.
    pub routes: &'static [Route],
    /// Its work in the probe worker.
    pub probe: Option<ProbeWork>,
    /// Its work in the pg_ctl worker.
    pub pgctl: Option<PgCtlWork>,
    /// Its work in the task worker.
    pub task: Option<TaskWork>,
    /// Its scheduled jobs, built when the scheduler starts; they run only
    /// while the plugin is loaded.
    pub jobs: fn() -> Vec<Box<dyn Job>>,
    /// Its configuration keys (section, name, default, what is allowed);
    /// shown in docs and `show-config`, settable by file and environment.
    pub keys: &'static [KeyDef],
    /// Validates its section into its settings type, serialized; read back
    /// with `Config::section`. Errors count only while it is loaded.
    pub settings: Option<fn(&mut Values<'_>) -> Value>,
    /// Its state database schema, in order, numbered per plugin in
    /// `plugin_schema`; applied by `store::open` for every registered plugin.
    pub migrations: &'static [&'static str],
    /// Its `/metrics` families, read from the state database (called for
    /// every registered plugin, so the exposition keeps its shape).
    pub metrics: Option<MetricsHook>,
    /// Its `/health` component (name, document), read from the state
    /// database; informative, it does not turn the agent's status to failing.
    pub health: Option<HealthHook>,
}

/// Adds a plugin's families to `/metrics`.
pub type MetricsHook = fn(&Connection, &mut Exposition) -> rusqlite::Result<()>;
/// A plugin's `/health` component, given the configuration and the time.
pub type HealthHook = fn(&Connection, &Config, f64) -> rusqlite::Result<(&'static str, Value)>;

impl Plugin {
    /// A plugin that declares nothing: plugins start from it and name only
    /// what they have (`Plugin { name, routes, probe, ..Plugin::NOTHING }`).
    pub const NOTHING: Plugin = Plugin {
        name: "",
        default: false,
        routes: &[],
        probe: None,
        pgctl: None,
        task: None,
        jobs: no_jobs,
        keys: &[],
        settings: None,
        migrations: &[],
        metrics: None,
        health: None,
    };
}

/// A plugin without jobs.
pub fn no_jobs() -> Vec<Box<dyn Job>> {
    vec![]
}

/// A host's list of plugins' work, built when the worker starts.
pub type Works<H> = Vec<(&'static str, Box<dyn Work<H>>)>;

/// The work a call names, only for a loaded plugin that registered work
/// for this host (`worker` names it in the error): the check every host
/// makes before running a plugin's call, whoever asks.
pub fn loaded_work<'a, H>(
    works: &'a Works<H>,
    config: &Config,
    plugin: &str,
    worker: &str,
) -> Result<&'a dyn Work<H>, WorkerError> {
    if !config.has_plugin(plugin) {
        return Err(WorkerError::BadRequest(format!(
            "plugin {plugin:?} is not loaded"
        )));
    }
    works
        .iter()
        .find(|(name, _)| *name == plugin)
        .map(|(_, w)| w.as_ref())
        .ok_or_else(|| {
            WorkerError::BadRequest(format!(
                "plugin {plugin:?} has no work in the {worker} worker"
            ))
        })
}
