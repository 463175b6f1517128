//! The activity plugin's calls to the probe worker and their replies.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::probe::{Listing, Shape};
use crate::api::{PluginCall, Worker};

/// Calls of the activity plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ActivityCall {
    /// Rows of a listing, in the API's shape.
    List {
        /// Which listing.
        which: Listing,
        /// Whose row shape (2.x when absent).
        #[serde(default)]
        shape: Shape,
        /// At most this many rows (9.x `?limit=`; none for 2.x).
        #[serde(default)]
        limit: Option<i64>,
    },
    /// `pg_terminate_backend` of each pid.
    Terminate {
        /// Backend pids.
        pids: Vec<i32>,
    },
}

/// Replies of [`ActivityCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ActivityReply {
    /// The rows of a listing.
    Rows {
        /// Rows.
        rows: Vec<Value>,
    },
    /// A 9.x listing: its `columns` (they depend on the server version for
    /// locks) and rows.
    Table {
        /// Column names.
        columns: Vec<String>,
        /// Rows.
        rows: Vec<Value>,
    },
    /// (pid, terminated) in request order.
    Terminated {
        /// Results.
        backends: Vec<(i32, bool)>,
    },
}

impl PluginCall for ActivityCall {
    const PLUGIN: &'static str = "activity";
    const WORKER: Worker = Worker::Probe;
    type Reply = ActivityReply;
}
