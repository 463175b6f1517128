//! The probe worker: the only process that holds PostgreSQL credentials and
//! connections. Serves typed requests from the http, scheduler and pg_ctl
//! workers on `<home>/run/probe.sock`.
//!
//! Uses the blocking `postgres` crate on plain threads (it must not run inside a
//! tokio runtime), through a bounded pool ([`pool`]).

pub mod activity;
pub mod dashboard;
pub mod discover;
pub mod monitoring;
mod pgconf;
pub mod pool;
pub mod procstat;

use std::sync::Arc;

use serde_json::Value;
use tracing::info;

use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};

use super::WorkerCtx;
use activity::Listing;

pub(crate) struct Probe {
    ctx: WorkerCtx,
    pool: pool::Pool,
    sampler: procstat::Sampler,
    host: procstat::Host,
}

impl Probe {
    fn with<T>(
        &self,
        f: impl Fn(&mut pool::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let params = self.ctx.settings().config.postgresql.clone();
        self.pool.with(&params, f)
    }

    fn listing(&self, which: Listing) -> Result<ProbeReply, WorkerError> {
        let own = self.pool.own_pids();
        let rows = self.with(|c| activity::list(c, which, &own))?;
        let pids: Vec<i32> = rows.iter().map(|(p, _)| *p).collect();
        let metrics = self
            .sampler
            .metrics(&self.host, &pids, which == Listing::All);
        let rows = rows
            .into_iter()
            .map(|(pid, mut m)| {
                if let Some(Value::Object(extra)) = metrics.get(&pid) {
                    m.extend(extra.clone());
                }
                Value::Object(m)
            })
            .collect();
        Ok(ProbeReply::Rows { rows })
    }

    fn handle(&self, call: ProbeCall) -> Result<ProbeReply, WorkerError> {
        match call {
            ProbeCall::Ping => Ok(ProbeReply::Pong),
            ProbeCall::PgCheck => self.with(|c| c.client.simple_query("SELECT 1").map(|_| ())).map(|_| ProbeReply::PgUp),
            ProbeCall::PgInfo => self.with(|c| {
                let row = c.client.query_one(
                    "SELECT version(), current_setting('port'), current_setting('data_directory'), current_setting('server_version_num')::int",
                    &[],
                )?;
                Ok(ProbeReply::PgInfo {
                    version: row.get(0),
                    port: row.get(1),
                    data_directory: row.get(2),
                    version_num: row.get(3),
                })
            }),
            ProbeCall::Discover9 => self.with(|c| discover::postgres(&mut c.client)).map(|value| ProbeReply::Document { value }),
            ProbeCall::Status9 => self.with(|c| discover::status(&mut c.client)).map(|value| ProbeReply::Document { value }),
            ProbeCall::PgVersion => self.with(|c| {
                let row = c.client.query_one("SELECT version(), current_setting('server_version')", &[])?;
                Ok(ProbeReply::PgVersion { full: row.get(0), server_version: row.get(1) })
            }),
            ProbeCall::Activity => self.listing(Listing::All),
            ProbeCall::ActivityWaiting => self.listing(Listing::Waiting),
            ProbeCall::ActivityBlocking => self.listing(Listing::Blocking),
            ProbeCall::Pgconf(call) => self.pgconf(call),
            ProbeCall::Monitoring { probes, dbnames } => {
                let port = self.ctx.settings().config.postgresql.port;
                let mut out = serde_json::Map::new();
                for p in probes.iter().filter(|p| monitoring::SQL_PROBES.contains(&p.as_str())) {
                    // One failing probe (a lock timeout, say) does not hide the others.
                    let rows = match self.with(|c| monitoring::run(c, p, port, dbnames.as_deref())) {
                        Ok(rows) => rows,
                        Err(e) => {
                            tracing::warn!("probe {p} failed: {e}");
                            vec![]
                        }
                    };
                    out.insert(p.clone(), Value::Array(rows));
                }
                Ok(ProbeReply::Document { value: Value::Object(out) })
            }
            ProbeCall::MonitoringInstance { dbnames } => {
                let value = self.with(|c| monitoring::instance(c, dbnames.as_deref())).unwrap_or_else(|e| {
                    tracing::debug!("instance facts unavailable: {e}");
                    serde_json::json!({ "available": false })
                });
                Ok(ProbeReply::Document { value })
            }
            ProbeCall::Dashboard => self.with(dashboard::collect).map(|value| ProbeReply::Document { value }),
            ProbeCall::Terminate { pids } => {
                self.with(|c| activity::terminate(c, &pids)).map(|backends| ProbeReply::Terminated { backends })
            }
        }
    }
}

/// Runs the probe worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let probe = Arc::new(Probe {
        ctx: ctx.clone(),
        pool: pool::Pool::default(),
        sampler: procstat::Sampler::default(),
        host: procstat::Host::read(),
    });
    info!("probe worker serving");
    super::serve_ipc(&ctx, move |call: ProbeCall| probe.handle(call))
}
