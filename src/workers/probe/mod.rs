//! The probe worker: holds the agent's pooled PostgreSQL connections (the
//! task worker, the only other holder of the credentials, opens one per
//! long task). Serves typed requests from the http, scheduler and pg_ctl
//! workers on `<home>/run/probe.sock`.
//!
//! Uses the blocking `postgres` crate on plain threads (it must not run inside a
//! tokio runtime), through a bounded pool ([`pool`]).

pub mod host;

use host::ProbeHost;

pub mod discover;

use std::sync::Arc;

use postgres::Client;
use tracing::info;

use crate::api::Work;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};
use crate::plugins::REGISTRY;

use super::ctx::WorkerCtx;
use super::ipc_server::Streaming;

struct Probe {
    host: ProbeHost,
    /// Each registered plugin's work, built once.
    works: crate::plugins::Works<ProbeHost>,
}

fn document(r: Result<serde_json::Value, WorkerError>) -> Result<ProbeReply, WorkerError> {
    r.map(|value| ProbeReply::Document { value })
}

impl Probe {
    fn with_client<T>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        self.host.with(|c| f(&mut c.client))
    }

    fn work(&self, plugin: &str) -> Result<&dyn Work<ProbeHost>, WorkerError> {
        // Only a loaded plugin's work runs, whoever asks.
        crate::plugins::loaded_work(&self.works, &self.host.settings().config, plugin, "probe")
    }

    fn handle(
        &self,
        call: ProbeCall,
        streaming: &mut Streaming<'_>,
    ) -> Result<ProbeReply, WorkerError> {
        match call {
            ProbeCall::Ping => Ok(ProbeReply::Pong),
            ProbeCall::PgStamp => self.with_client(|c| {
                let row = c.query_one(
                    "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint, \
                            (extract(epoch FROM pg_conf_load_time()) * 1000000)::bigint, \
                            pg_is_in_recovery(), \
                            CASE WHEN pg_is_in_recovery() \
                              THEN (SELECT received_tli::bigint FROM pg_stat_wal_receiver) \
                              ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint \
                            END",
                    &[],
                )?;
                Ok(ProbeReply::PgStamp {
                    started: row.get(0),
                    conf_loaded: row.get(1),
                    in_recovery: row.get(2),
                    timeline: row.get(3),
                })
            }),
            ProbeCall::PgCheck => self
                .with_client(|c| c.simple_query("SELECT 1").map(|_| ()))
                .map(|_| ProbeReply::PgUp),
            ProbeCall::PgInfo => self.with_client(|c| {
                let row = c.query_one(
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
            ProbeCall::Discover9 => document(self.with_client(discover::postgres)),
            ProbeCall::Status9 => document(self.with_client(discover::status)),
            ProbeCall::Plugin { plugin, call } => self
                .work(&plugin)?
                .handle(&self.host, call)
                .map(|value| ProbeReply::Plugin { value }),
            ProbeCall::PluginStream { plugin, call } => {
                let work = self.work(&plugin)?;
                streaming
                    .run(ProbeReply::Streaming, |out| work.stream(&self.host, call, out))
                    .map(|()| ProbeReply::Streaming)
            }
        }
    }
}

/// Runs the probe worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let works = REGISTRY
        .iter()
        .filter_map(|p| p.probe.map(|build| (p.name, build())))
        .collect();
    let probe = Arc::new(Probe {
        host: ProbeHost {
            ctx: ctx.clone(),
            pool: crate::pg::Pool::default(),
        },
        works,
    });
    info!("probe worker serving");
    super::ipc_server::serve_ipc(
        &ctx,
        move |call: ProbeCall, streaming: &mut Streaming<'_>| probe.handle(call, streaming),
    )
}
