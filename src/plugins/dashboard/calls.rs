//! The dashboard plugin's call to the probe worker.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{PluginCall, Worker};

/// Calls of the dashboard plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DashboardCall {
    /// The PostgreSQL part of the set (one statement).
    Collect,
}

impl PluginCall for DashboardCall {
    const PLUGIN: &'static str = "dashboard";
    const WORKER: Worker = Worker::Probe;
    /// The PostgreSQL fields, an object.
    type Reply = serde_json::Map<String, Value>;
}
