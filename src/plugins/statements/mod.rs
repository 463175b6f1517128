//! Statements plugin (temBoard 9.x facts 8): `GET /statements` answers
//! every row of `pg_stat_statements` in `[statements] dbname`, with the
//! role and database names, for signed requests.
//!
//! Memory stays bounded whatever `pg_stat_statements.max` and the query
//! texts: the probe worker reads the view through a cursor, a few rows at a
//! time, and writes each row's JSON (made by PostgreSQL, so `queryid` and
//! every other integer stay exact) to a spool file under the home; when the
//! query has ended (connection and snapshot released) the file goes to the
//! http worker a chunk at a time, at the client's pace (see `ipc::stream`
//! and `workers::Streaming`). Neither worker ever holds the answer; the 9.x
//! agent, which built it whole, grew to gigabytes on large servers. A
//! client that stops reading holds no PostgreSQL connection, and is cut
//! after 30 s without progress.

mod probe;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Plugin, PluginCall, Work, Worker};
use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};
use crate::ipc::messages::WorkerError;
use crate::ipc::stream::Sink;
use crate::api::{Call, Handled, Reply, Route};
use crate::api::ProbeHost;

/// The plugin.
pub static PLUGIN: Plugin = Plugin {
    name: "statements",
    routes: &[Route::signed(
        "statements",
        "GET",
        "/statements",
        "Statements9",
        statements,
    )
    .with_deadline(SPOOL_WAIT)],
    probe: Some(|| Box::new(StatementsWork)),
    keys: KEYS,
    settings: Some(validate),
    ..Plugin::NOTHING
};

/// The keys of `[statements]`.
const KEYS: &[KeyDef] = &[k(
    "statements",
    "dbname",
    Some("postgres"),
    "the database holding pg_stat_statements",
)];

/// The validated `[statements]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Database where `CREATE EXTENSION pg_stat_statements` was run.
    pub dbname: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dbname: "postgres".into(),
        }
    }
}

fn validate(c: &mut Values<'_>) -> Value {
    let dbname = c
        .opt_str("statements", "dbname")
        .unwrap_or_else(|| "postgres".into());
    crate::api::section_value(&Settings { dbname })
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("statements").unwrap_or_default()
}

/// Calls of the statements plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StatementsCall {
    /// The whole view, streamed as the 9.x JSON document.
    Snapshot,
}

impl PluginCall for StatementsCall {
    const PLUGIN: &'static str = "statements";
    const WORKER: Worker = Worker::Probe;
    /// Never answered whole: the answer is streamed.
    type Reply = Value;
}

/// How long the http worker waits for the answer to be spooled (the
/// query runs whole first), then for each chunk.
const SPOOL_WAIT: Duration = Duration::from_secs(120);

/// `GET /statements` (signed).
fn statements(c: Call<'_>) -> Handled<'_> {
    Box::pin(async move {
        let chunks = c.state.stream(StatementsCall::Snapshot, SPOOL_WAIT).await?;
        Ok(Reply::Stream(chunks))
    })
}

struct StatementsWork;

impl Work<ProbeHost> for StatementsWork {
    fn handle(&self, _host: &ProbeHost, _call: Value) -> Result<Value, WorkerError> {
        Err(WorkerError::BadRequest(
            "statements are only answered as a stream".into(),
        ))
    }

    fn stream(&self, host: &ProbeHost, call: Value, out: &mut dyn Sink) -> Result<(), WorkerError> {
        let StatementsCall::Snapshot = serde_json::from_value(call)
            .map_err(|e| WorkerError::BadRequest(format!("statements call: {e}")))?;
        let dbname = settings(&host.settings().config).dbname;
        probe::snapshot(host, &dbname, out)
    }
}
