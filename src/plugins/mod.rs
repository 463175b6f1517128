//! Plugins: each is one folder holding everything of one feature — its HTTP
//! routes and handlers, the work it asks the probe or pg_ctl worker to do, its
//! scheduled jobs, its store queries — and one line of [`REGISTRY`].
//!
//! The workers are hosts: the http worker routes to [`Plugin::routes`], the
//! probe, pg_ctl and task workers run [`Plugin::probe`], [`Plugin::pgctl`]
//! and [`Plugin::task`] work, the scheduler runs [`Plugin::jobs`]. None of them names a plugin; each reads
//! this registry. `[temboard] plugins` selects which entries are loaded.
//!
//! IPC stays typed at both ends: a plugin's calls are its own enum implementing
//! [`PluginCall`], which names the worker that must run it and the reply type.
//! The host channel carries the call as `(plugin name, JSON value)` without
//! knowing its type (see docs/architecture.md, "Plugin contract").

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::config::keydef::KeyDef;
use crate::config::{Config, Values};
use crate::ipc::messages::WorkerError;
use crate::workers::http::metrics::Exposition;
use crate::workers::http::routes::Route;
use crate::workers::pgctl::PgCtlHost;
use crate::workers::probe::ProbeHost;
use crate::workers::scheduler::JobHost;
use crate::workers::task::TaskHost;
use rusqlite::Connection;

/// Declares the plugin modules and [`REGISTRY`] from one list of names.
macro_rules! registry {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every plugin of the agent, in the order their routes are matched
        /// and their jobs run.
        pub static REGISTRY: &[&Plugin] = &[$(&$name::PLUGIN),*];
    };
}

// Adding a plugin is adding its folder and one line here.
registry! {
    activity,
    administration,
    dashboard,
    monitoring,
    pgconf,
    extensions,
    statements,
    maintenance,
}

/// Which worker runs a plugin's call. The http worker is never one: it holds
/// no PostgreSQL password and runs no command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    /// Holds the PostgreSQL connections (and runs as the cluster owner).
    Probe,
    /// The only worker allowed to run programs.
    Pgctl,
    /// Runs long PostgreSQL work (maintenance tasks), each on a connection
    /// of its own, so it never takes the probe worker's pool.
    Task,
}

/// A plugin's typed call: the plugin owns the enum and its reply type; the
/// hosts carry it as JSON under the plugin's name.
pub trait PluginCall: Serialize + DeserializeOwned + Send + 'static {
    /// The plugin the call belongs to.
    const PLUGIN: &'static str;
    /// The worker that runs it; the receiving host refuses calls of plugins
    /// that registered no work for it.
    const WORKER: Worker;
    /// What the work answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Work a plugin runs in the probe worker (with PostgreSQL connections) or in
/// the pg_ctl worker (with the command runner). Called concurrently.
pub trait Work<H>: Send + Sync {
    /// Answers one call of the plugin (its [`PluginCall`] enum as JSON).
    fn handle(&self, host: &H, call: Value) -> Result<Value, WorkerError>;

    /// Answers one call as a stream of bytes written to `out`, for answers
    /// as large as the data: the work writes as it reads, so it never holds
    /// the whole answer (see `ipc::stream`). Most work has none.
    fn stream(
        &self,
        _host: &H,
        _call: Value,
        _out: &mut dyn crate::ipc::stream::Sink,
    ) -> Result<(), WorkerError> {
        Err(WorkerError::BadRequest(
            "this plugin has no streamed answer".into(),
        ))
    }

    /// Called once when the worker stops (the task worker asks running
    /// tasks to end and records why). Most work has nothing to do.
    fn stop(&self, _host: &H) {}
}

/// A periodic job run by the scheduler worker, one at a time.
pub trait Job: Send {
    /// Name for logs.
    fn name(&self) -> &'static str;
    /// Time between two runs with this configuration.
    fn every(&self, config: &Config) -> Duration;
    /// One run.
    fn run(&mut self, host: &mut JobHost);
}

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

/// A plugin's validated section as stored in the configuration.
pub fn section_value<T: Serialize>(settings: &T) -> Value {
    serde_json::to_value(settings).unwrap_or(Value::Null)
}

/// A plugin without jobs.
pub fn no_jobs() -> Vec<Box<dyn Job>> {
    vec![]
}

/// Hands the registry to the config layer and the state store (see
/// [`crate::config::catalog`]): called first by every program of the crate.
pub fn install_catalog() {
    crate::config::catalog::install(
        REGISTRY
            .iter()
            .map(|p| crate::config::PluginSection {
                name: p.name,
                default: p.default,
                keys: p.keys,
                settings: p.settings,
                migrations: p.migrations,
            })
            .collect(),
    );
}

/// The registered plugin of that name.
pub fn find(name: &str) -> Option<&'static Plugin> {
    REGISTRY.iter().copied().find(|p| p.name == name)
}

/// Names of every registered plugin.
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|p| p.name).collect()
}

/// Runs a host's call for a plugin's work: decodes the plugin's call type,
/// runs `f`, encodes the reply. Plugins use it in [`Work::handle`] so their
/// work is written against their own types.
pub fn typed<C: PluginCall>(
    call: Value,
    f: impl FnOnce(C) -> Result<C::Reply, WorkerError>,
) -> Result<Value, WorkerError> {
    let call: C = serde_json::from_value(call)
        .map_err(|e| WorkerError::BadRequest(format!("{} call: {e}", C::PLUGIN)))?;
    let reply = f(call)?;
    serde_json::to_value(reply).map_err(|e| WorkerError::Internal(e.to_string()))
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

/// Decodes a plugin's reply received over a host channel.
pub fn reply_of<C: PluginCall>(value: Value) -> Result<C::Reply, WorkerError> {
    serde_json::from_value(value)
        .map_err(|e| WorkerError::Internal(format!("{} reply: {e}", C::PLUGIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_defaults_known() {
        let mut seen = std::collections::HashSet::new();
        for p in REGISTRY {
            assert!(seen.insert(p.name), "plugin {} registered twice", p.name);
        }
        let defaults: Vec<_> = REGISTRY
            .iter()
            .filter(|p| p.default)
            .map(|p| p.name)
            .collect();
        let default_key = crate::config::schema::keys()
            .find(|k| k.section == "temboard" && k.key == "plugins")
            .and_then(|k| k.default)
            .unwrap_or("");
        let listed: Vec<String> = serde_json::from_str(default_key).unwrap_or_default();
        let mut listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed, defaults,
            "the default list is the registry's defaults"
        );
    }

    #[test]
    fn plugin_routes_belong_to_their_plugin() {
        for p in REGISTRY {
            for r in p.routes {
                assert_eq!(r.plugin, Some(p.name), "{} {}", r.method, r.path);
            }
        }
    }
}
