//! Activity plugin (2.x facts 7, 9.x facts 4): the backends, those waiting
//! for a lock and those blocking others, with per-process metrics read from
//! /proc, and backend termination; for signed requests also the 9.x
//! sessions and locks listings. Queries and /proc sampling run in the probe
//! worker.

mod calls;
pub mod probe;
pub mod procstat;
mod routes;

use serde_json::{Map, Value};

use crate::api::{Plugin, Work};
use crate::ipc::messages::WorkerError;
use crate::api::Route;
use crate::api::ProbeHost;
pub use calls::{ActivityCall, ActivityReply};
use probe::{Listing, Shape};

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
    Route::signed("activity", "GET", "/activity", "Activity9", routes::all9),
    Route::signed(
        "activity",
        "GET",
        "/activity/waiting",
        "ActivityWaiting9",
        routes::waiting9,
    ),
    Route::signed(
        "activity",
        "GET",
        "/activity/blocking",
        "ActivityBlocking9",
        routes::blocking9,
    ),
    Route::signed(
        "activity",
        "GET",
        "/activity/sessions",
        "ActivitySessions9",
        routes::sessions9,
    ),
    Route::signed(
        "activity",
        "GET",
        "/activity/locks",
        "ActivityLocks9",
        routes::locks9,
    ),
    Route::signed(
        "activity",
        "POST",
        "/activity/kill",
        "ActivityKill9",
        routes::kill,
    ),
];

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
    fn listing(
        &self,
        host: &ProbeHost,
        which: Listing,
        shape: Shape,
        limit: Option<i64>,
    ) -> Result<ActivityReply, WorkerError> {
        let own = host.own_pids();
        let (rows, version) = host.with(|c| {
            if matches!(which, Listing::Sessions | Listing::Locks) && c.version_num < 90600 {
                return Ok(Err(WorkerError::Failed(
                    "this listing needs pg_blocking_pids(): PostgreSQL 9.6 or later".into(),
                )));
            }
            probe::list(c, which, shape, limit, &own).map(|rows| Ok((rows, c.version_num)))
        })??;
        let pids: Vec<i32> = rows.iter().map(|(p, _)| *p).collect();
        let metrics = match which {
            Listing::All | Listing::Waiting | Listing::Blocking => {
                self.sampler
                    .metrics(&self.host, &pids, which == Listing::All && limit.is_none())
            }
            Listing::Sessions => pids
                .iter()
                .map(|p| (*p, procstat::cumulative(&self.host, *p)))
                .collect(),
            Listing::Locks => Default::default(),
        };
        let rows = rows
            .into_iter()
            .map(|(pid, mut m): (i32, Map<String, Value>)| {
                if let Some(Value::Object(extra)) = metrics.get(&pid) {
                    m.extend(extra.clone());
                }
                Value::Object(m)
            })
            .collect();
        Ok(match shape {
            Shape::V2 => ActivityReply::Rows { rows },
            Shape::V9 => ActivityReply::Table {
                columns: probe::columns(which, version)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                rows,
            },
        })
    }
}

impl Work<ProbeHost> for ActivityWork {
    fn handle(&self, host: &ProbeHost, call: Value) -> Result<Value, WorkerError> {
        crate::api::typed(call, |c: ActivityCall| match c {
            ActivityCall::List {
                which,
                shape,
                limit,
            } => self.listing(host, which, shape, limit),
            ActivityCall::Terminate { pids } => host
                .with(|c| probe::terminate(c, &pids))
                .map(|backends| ActivityReply::Terminated { backends }),
        })
    }
}
