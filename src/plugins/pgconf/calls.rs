//! The pgconf plugin's calls to the probe worker (2.x and 9.x).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::probe9;
use crate::api::{PluginCall, Worker};

/// Calls of the pgconf plugin, answered by the probe worker (it runs as the
/// cluster owner and knows where PostgreSQL's files are).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PgconfCall {
    /// Settings grouped by category, optionally filtered.
    Settings {
        /// Substring of name or descriptions (already validated).
        filter: Option<String>,
        /// Exact category.
        category: Option<String>,
    },
    /// Sorted category names.
    Categories,
    /// Settings waiting for a reload or a restart.
    Status,
    /// `ALTER SYSTEM` for each item, then a reload.
    Update {
        /// The `settings` list of the request.
        settings: serde_json::Value,
        /// Narrows the lookup, as `?filter=` does.
        filter: Option<String>,
    },
    /// pg_hba.conf entries, or its raw text, current or a version.
    HbaRead {
        /// Version to read.
        version: Option<String>,
        /// Raw text instead of entries.
        raw: bool,
    },
    /// Replace pg_hba.conf with entries or raw text.
    HbaWrite {
        /// Entries (written in the 2.x format).
        entries: Option<Vec<serde_json::Value>>,
        /// Raw text.
        content: Option<String>,
        /// Keep a copy of the current file as a version first.
        new_version: bool,
    },
    /// Versions of pg_hba.conf, newest first.
    HbaVersions,
    /// Remove a version.
    HbaDelete {
        /// The version.
        version: String,
    },
    /// Values proposed for each column.
    HbaOptions,
    /// A 9.x call (facts 9.x section 6).
    V9(probe9::Pgconf9Call),
    /// pg_ident.conf text.
    IdentRead,
    /// Replace pg_ident.conf, keeping `.previous`.
    IdentWrite {
        /// New text.
        content: String,
    },
}

impl PluginCall for PgconfCall {
    const PLUGIN: &'static str = "pgconf";
    const WORKER: Worker = Worker::Probe;
    type Reply = Value;
}
