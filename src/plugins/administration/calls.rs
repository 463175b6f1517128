//! The administration plugin's calls (pg_ctl control, version) and replies.

use serde::{Deserialize, Serialize};

use crate::api::{PluginCall, Worker};

/// A control action (2.x `T_CONTROL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Start PostgreSQL.
    Start,
    /// Stop it.
    Stop,
    /// Restart it.
    Restart,
    /// Reload its configuration.
    Reload,
}

impl Action {
    /// Parses the API's action name.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            "restart" => Some(Action::Restart),
            "reload" => Some(Action::Reload),
            _ => None,
        }
    }

    /// The API's name (and the command template's `{action}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Reload => "reload",
        }
    }
}

/// Calls of the administration plugin to the pg_ctl worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlCall {
    /// Run the control command for an action.
    Control {
        /// The action.
        action: Action,
        /// API user asking.
        username: String,
    },
}

/// Result of a control action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlDone {
    /// Operation id.
    pub operation: String,
    /// `ok`, or `ko` when PostgreSQL did not reach the expected state in time.
    pub state: String,
}

impl PluginCall for ControlCall {
    const PLUGIN: &'static str = "administration";
    const WORKER: Worker = Worker::Pgctl;
    type Reply = ControlDone;
}

/// Calls of the administration plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum VersionCall {
    /// `version()` and `server_version`.
    PgVersion,
}

impl PluginCall for VersionCall {
    const PLUGIN: &'static str = "administration";
    const WORKER: Worker = Worker::Probe;
    type Reply = PgVersion;
}

/// Answer to [`VersionCall::PgVersion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgVersion {
    /// `version()`.
    pub full: String,
    /// `server_version`.
    pub server_version: String,
}
