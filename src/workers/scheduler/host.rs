//! What plugins' jobs may use ([`JobHost`]): the settings, the state
//! database, the probe and task workers, and the host name. Part of the
//! plugin API (`crate::api`).

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use crate::api::call::{reply_of, PluginCall, Worker};
use crate::ipc::client::SyncClient;
use crate::ipc::messages::{ProbeCall, ProbeReply, TaskCall, TaskReply, WorkerSettings};
use crate::workers::ctx::WorkerCtx;

/// What plugins' jobs may use: the settings, the state database, the probe
/// worker (the scheduler holds no PostgreSQL password) and the host name.
pub struct JobHost {
    pub(super) ctx: WorkerCtx,
    pub(super) probe: SyncClient<ProbeCall, ProbeReply>,
    pub(super) task: SyncClient<TaskCall, TaskReply>,
    pub(super) db: Connection,
    pub(super) hostname: Option<String>,
}

impl JobHost {
    /// The settings in force.
    pub fn settings(&self) -> Arc<WorkerSettings> {
        self.ctx.settings()
    }

    /// The worker context, for a thread a job starts (it reads the settings
    /// in force from it).
    pub fn ctx(&self) -> WorkerCtx {
        self.ctx.clone()
    }

    /// The state database.
    pub fn db(&mut self) -> &mut Connection {
        &mut self.db
    }

    /// Runs a plugin's call on the probe or task worker; the error says why
    /// in words fit for a log line. Calls for the pg_ctl worker are refused:
    /// jobs do not run commands.
    pub fn call<C: PluginCall>(&self, call: C, timeout: Duration) -> Result<C::Reply, String> {
        let call = serde_json::to_value(call).map_err(|e| e.to_string())?;
        let plugin = C::PLUGIN.to_string();
        let value = match C::WORKER {
            Worker::Pgctl => {
                return Err(format!("{} jobs may not call the pg_ctl worker", C::PLUGIN))
            }
            Worker::Probe => match self.probe.call(ProbeCall::Plugin { plugin, call }, timeout) {
                Ok(Ok(ProbeReply::Plugin { value })) => value,
                Ok(Ok(other)) => return Err(format!("unexpected probe reply {other:?}")),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(e) => return Err(format!("probe worker unavailable: {e}")),
            },
            Worker::Task => match self.task.call(TaskCall::Plugin { plugin, call }, timeout) {
                Ok(Ok(TaskReply::Plugin { value })) => value,
                Ok(Ok(other)) => return Err(format!("unexpected task reply {other:?}")),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(e) => return Err(format!("task worker unavailable: {e}")),
            },
        };
        reply_of::<C>(value).map_err(|e| e.to_string())
    }

    /// `[temboard] hostname`, or the system FQDN (resolved once).
    pub fn hostname(&mut self) -> String {
        match &self.ctx.settings().config.temboard.hostname {
            Some(h) => h.clone(),
            None => self
                .hostname
                .get_or_insert_with(crate::host::system_fqdn)
                .clone(),
        }
    }
}
