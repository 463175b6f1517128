//! Activity plugin (facts 7): the backends, those waiting for a lock and
//! those blocking others, with per-process metrics read from /proc, and
//! backend termination. Queries and /proc sampling run in the probe worker.

pub mod probe;
pub mod procstat;
mod routes;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Plugin, PluginCall, Work, Worker};
use crate::ipc::messages::WorkerError;
use crate::workers::http::routes::Route;
use crate::workers::probe::ProbeHost;
use probe::Listing;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "activity",
    default: true,
    routes: ROUTES,
    probe: Some(|| Box::new(ActivityWork::default())),
    ..Plugin::NOTHING
};

const ROUTES: &[Route] = &[
    Route::keyed("activity", "/activity", "Activity", routes::all),
    Route::keyed(
        "activity",
        "/activity/waiting",
        "ActivityWaiting",
        routes::waiting,
    ),
    Route::keyed(
        "activity",
        "/activity/blocking",
        "ActivityBlocking",
        routes::blocking,
    ),
    Route::new(
        "activity",
        "POST",
        "/activity/kill",
        "ActivityKill",
        routes::kill,
    ),
];

/// Calls of the activity plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ActivityCall {
    /// Rows of a listing, in the API's shape.
    List {
        /// Which listing.
        which: Listing,
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

/// The probe worker's side: keeps the last /proc sample of each backend, so
/// rates usually need no pause.
struct ActivityWork {
    sampler: procstat::Sampler,
    host: procstat::Host,
}

impl Default for ActivityWork {
    fn default() -> Self {
        ActivityWork {
            sampler: procstat::Sampler::default(),
            host: procstat::Host::read(),
        }
    }
}

impl ActivityWork {
    fn listing(&self, host: &ProbeHost, which: Listing) -> Result<ActivityReply, WorkerError> {
        let own = host.own_pids();
        let rows = host.with(|c| probe::list(c, which, &own))?;
        let pids: Vec<i32> = rows.iter().map(|(p, _)| *p).collect();
        let metrics = self
            .sampler
            .metrics(&self.host, &pids, which == Listing::All);
        let rows = rows
            .into_iter()
            .map(|(pid, mut m): (i32, Map<String, Value>)| {
                if let Some(Value::Object(extra)) = metrics.get(&pid) {
                    m.extend(extra.clone());
                }
                Value::Object(m)
            })
            .collect();
        Ok(ActivityReply::Rows { rows })
    }
}

impl Work<ProbeHost> for ActivityWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        super::typed(call, |c: ActivityCall| match c {
            ActivityCall::List { which } => self.listing(host, which),
            ActivityCall::Terminate { pids } => host
                .with(|c| probe::terminate(c, &pids))
                .map(|backends| ActivityReply::Terminated { backends }),
        })
    }
}
