//! A plugin's typed calls: its call enum ([`PluginCall`]) names the worker
//! that runs it and its reply type. Hosts carry calls as `(plugin name,
//! JSON)` without knowing their types (see docs/architecture.md, "Plugin
//! contract").

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::ipc::messages::WorkerError;

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

/// Decodes a plugin's reply received over a host channel.
pub fn reply_of<C: PluginCall>(value: Value) -> Result<C::Reply, WorkerError> {
    serde_json::from_value(value)
        .map_err(|e| WorkerError::Internal(format!("{} reply: {e}", C::PLUGIN)))
}

/// A plugin's validated section as stored in the configuration.
pub fn section_value<T: Serialize>(settings: &T) -> Value {
    serde_json::to_value(settings).unwrap_or(Value::Null)
}
