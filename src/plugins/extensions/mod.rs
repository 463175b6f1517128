//! Extensions plugin: `GET /extensions` lists, for each database, the
//! installed extensions with their version, the default version the server
//! offers, and whether an update is available — what a DBA checks after a
//! package upgrade (`ALTER EXTENSION … UPDATE` pending). Read by the probe
//! worker, one short connection per database, within the pool's cap. Off
//! unless listed in `[temboard] plugins`.
//!
//! Written through the plugin contract alone: this folder and its name in
//! the registry (docs/architecture.md, "Adding a plugin").

mod probe;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::api::{Call, Handled, Reply, Route};
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "extensions",
    routes: &[Route::keyed("extensions", "/extensions", "Extensions", list)],
    probe: Some(|| Box::new(ExtensionsWork)),
    ..Plugin::NOTHING
};

/// Calls of the extensions plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ExtensionsCall {
    /// Installed extensions of every database that accepts connections.
    List,
}

/// One database's extensions, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Database name.
    pub dbname: String,
    /// Installed extensions, by name.
    pub extensions: Vec<Extension>,
    /// Why the database could not be read (connection refused, permission),
    /// `null` when it was: one unreadable database does not hide the others.
    pub error: Option<String>,
}

/// One installed extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// `pg_extension.extname`.
    pub name: String,
    /// Installed version (`pg_extension.extversion`).
    pub version: String,
    /// Version `CREATE EXTENSION` would install now
    /// (`pg_available_extensions.default_version`); `null` when the
    /// extension's files are gone from the server.
    pub default_version: Option<String>,
    /// Whether the default version differs from the installed one.
    pub update_available: bool,
    /// Schema holding its objects.
    pub schema: String,
}

impl PluginCall for ExtensionsCall {
    const PLUGIN: &'static str = "extensions";
    const WORKER: Worker = Worker::Probe;
    type Reply = Vec<Database>;
}

struct ExtensionsWork;

impl Work<ProbeHost> for ExtensionsWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: ExtensionsCall| match c {
            ExtensionsCall::List => probe::databases(host),
        })
    }
}

/// `GET /extensions`.
fn list(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let databases = c.state.call(ExtensionsCall::List).await?;
        Ok(Reply::Json(json!({ "databases": databases })))
    })
}
