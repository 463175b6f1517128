//! Administration plugin (facts 8): PostgreSQL's version, its control (start,
//! stop, restart, reload) through the configured `[administration] pg_ctl`
//! command, and the operations that record each action. The command runs in
//! the pg_ctl worker, the only process allowed to run programs.

mod calls;
pub mod config;
mod pgctl;
mod routes;

use std::time::Duration;

use serde_json::Value;

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;
pub use calls::{Action, ControlCall, ControlDone, PgVersion, VersionCall};

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
