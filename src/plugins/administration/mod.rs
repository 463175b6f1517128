//! Administration plugin (facts 8): PostgreSQL's version, its control (start,
//! stop, restart, reload) through the configured `[administration] pg_ctl`
//! command, and the operations that record each action. The command runs in
//! the pg_ctl worker, the only process allowed to run programs.

pub mod config;
mod pgctl;
mod routes;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "administration",
    default: true,
    routes: ROUTES,
    probe: Some(|| Box::new(VersionWork)),
    pgctl: Some(pgctl::build),
    keys: config::KEYS,
    settings: Some(config::validate),
    ..Plugin::NOTHING
};

const ROUTES: &[Route] = &[
    Route::new(
        "administration",
        "GET",
        "/administration/pg_version",
        "PgVersion",
        routes::pg_version,
    ),
    Route::new(
        "administration",
        "POST",
        "/administration/control",
        "Control",
        routes::control,
    )
    .with_deadline(Duration::from_secs(
        pgctl::CALL_TIMEOUT.as_secs() + 5,
    )),
    Route::new(
        "administration",
        "GET",
        "/operations",
        "Operations",
        routes::list_operations,
    ),
    Route::new(
        "administration",
        "GET",
        "/operations/{id}",
        "Operation",
        routes::operation,
    ),
    // The operations of signed requests' actions (maintenance tasks) are
    // readable by the same signed clients; not in the 9.x contract.
    Route::signed(
        "administration",
        "GET",
        "/operations",
        "Operations9",
        routes::list_operations,
    ),
    Route::signed(
        "administration",
        "GET",
        "/operations/{id}",
        "Operation9",
        routes::operation,
    ),
];

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

/// Answer to [`VersionCall::PgVersion`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgVersion {
    /// `version()`.
    pub full: String,
    /// `server_version`.
    pub server_version: String,
}

impl PluginCall for VersionCall {
    const PLUGIN: &'static str = "administration";
    const WORKER: Worker = Worker::Probe;
    type Reply = PgVersion;
}

struct VersionWork;

impl Work<ProbeHost> for VersionWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: VersionCall| match c {
            VersionCall::PgVersion => host.with(|c| {
                let row = c
                    .client
                    .query_one("SELECT version(), current_setting('server_version')", &[])?;
                Ok(PgVersion {
                    full: row.get(0),
                    server_version: row.get(1),
                })
            }),
        })
    }
}
