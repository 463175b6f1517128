//! The extensions plugin's call to the probe worker and what it lists.

use serde::{Deserialize, Serialize};

use crate::api::{PluginCall, Worker};

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
