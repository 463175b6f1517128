//! The http worker's state shared by every request ([`AppState`]): the
//! settings, the clients of the other workers, the state database and the
//! caches. Handlers, the core's and the plugins', reach it through
//! [`crate::api::Call::state`].

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;

use super::{budget, db, fresh, hosts, login_guard, replay, session_cache};
use crate::api::call::{reply_of, PluginCall, Worker};
use crate::api::error;
use crate::ipc::client::AsyncClient;
use crate::ipc::messages::{
    PgCtlCall, PgCtlReply, ProbeCall, ProbeReply, TaskCall, TaskReply, WorkerSettings,
};
use crate::workers::ctx::WorkerCtx;

/// Value of the `Server` header of every answer.
pub const SERVER_HEADER: &str = concat!("temboard-agent/", env!("CARGO_PKG_VERSION"));
/// Deadline of one IPC call made for a request.
pub const IPC_TIMEOUT: Duration = Duration::from_secs(15);
/// Password checks at once: one per core of a small host; more would only
/// queue on the CPU and hold 19 MiB each.
const PASSWORD_CHECKS: usize = 2;

/// A discover document is re-read at least this often, whatever else.
const DOCUMENT_MAX_AGE: Duration = Duration::from_secs(60);

/// PostgreSQL's start time, configuration load time and recovery state as
/// the scheduler last recorded them (`None` before its first check).
pub type Stamp = (Option<f64>, Option<f64>, Option<f64>);

/// A discover document read: the document, its ETag, and the basis it was
/// read with when PostgreSQL answered for it (else it is the stored one).
pub type DiscoverRead = (serde_json::Value, String, Option<Basis>);

/// What a discover document was computed from: PostgreSQL's start and
/// configuration load times and recovery state as the scheduler last saw
/// them (it checks every 10 s), and the settings in force (a reload swaps
/// them). Equal bases give equal documents, so they are answered from
/// memory.
#[derive(Debug, Clone)]
pub struct Basis {
    stamp: Stamp,
    settings: Arc<WorkerSettings>,
}

impl PartialEq for Basis {
    fn eq(&self, other: &Basis) -> bool {
        // The same settings object: the remembered basis holds it, so its
        // address cannot be reused by the settings of a later reload.
        self.stamp == other.stamp && Arc::ptr_eq(&self.settings, &other.settings)
    }
}

/// How long `/health`'s result is reused ([`AppState::health`]): a second
/// keeps anonymous health checks from reaching the probe worker more often.
pub const HEALTH_MAX_AGE: Duration = Duration::from_secs(1);

/// State shared by every request.
pub struct AppState {
    /// Worker context (settings in force).
    pub ctx: WorkerCtx,
    /// Client of the probe worker.
    pub probe: AsyncClient<ProbeCall, ProbeReply>,
    /// Client of the pg_ctl worker.
    pub pgctl: AsyncClient<PgCtlCall, PgCtlReply>,
    /// Client of the task worker.
    pub task: AsyncClient<TaskCall, TaskReply>,
    /// Sessions and notifications.
    pub db: db::Db,
    /// Sessions checked a moment ago.
    pub sessions: Arc<session_cache::SessionCache>,
    /// Password checks running at once (Argon2id is CPU and memory heavy).
    pub password_checks: tokio::sync::Semaphore,
    /// Failed-login bookkeeping.
    pub guard: login_guard::LoginGuard,
    /// `/health`'s last result (single flight).
    pub health: fresh::Fresh<(bool, serde_json::Value)>,
    /// `/discover`'s PostgreSQL facts (single flight: the route is anonymous).
    pub pg_info: fresh::Fresh<Result<crate::ipc::messages::ProbeReply, error::ApiError>>,
    /// The UI's public key, parsed from the PEM in force (9.x).
    pub signing_key: std::sync::Mutex<Option<(String, Arc<crate::signing::PublicKey>)>>,
    /// Request ids of signed requests (replay refusal).
    pub replay: replay::Replay,
    /// The 9.x discover document and its ETag (coalesced reads), and
    /// whether PostgreSQL answered for it (else it is the stored one).
    pub discover: fresh::Fresh<Result<DiscoverRead, error::ApiError>>,
    /// The 9.x discover document answered from memory until its [`Basis`]
    /// changes.
    pub discover_memory: fresh::Remembered<Basis, (serde_json::Value, String)>,
    /// When PostgreSQL started and last loaded its configuration, as the
    /// scheduler last recorded them (read at most once a second).
    pub pg_stamp: fresh::Fresh<Stamp>,
    /// Requests by route pattern and status, for `/metrics`.
    pub requests: std::sync::Mutex<std::collections::BTreeMap<(String, u16), u64>>,
    /// Request body bytes in flight, in all and per peer address.
    pub bodies: budget::BodyBudget,
    /// This host's names, for the `Host` a signed request may give.
    pub local_names: fresh::Fresh<hosts::LocalNames>,
    pub(super) server_header: HeaderValue,
    fqdn: tokio::sync::OnceCell<String>,
}

impl AppState {
    /// The state of a worker starting with `ctx` and its state database.
    pub fn new(ctx: WorkerCtx, db: db::Db) -> AppState {
        let settings = ctx.settings();
        AppState {
            probe: AsyncClient::new(settings.runtime.run_dir.join("probe.sock")),
            pgctl: AsyncClient::new(settings.runtime.run_dir.join("pgctl.sock")),
            task: AsyncClient::new(settings.runtime.run_dir.join("task.sock")),
            ctx,
            db,
            guard: login_guard::LoginGuard::default(),
            password_checks: tokio::sync::Semaphore::new(PASSWORD_CHECKS),
            sessions: Default::default(),
            requests: Default::default(),
            health: fresh::Fresh::new(HEALTH_MAX_AGE),
            pg_info: fresh::Fresh::new(Duration::ZERO),
            signing_key: Default::default(),
            replay: Default::default(),
            discover: fresh::Fresh::new(Duration::ZERO),
            discover_memory: fresh::Remembered::new(DOCUMENT_MAX_AGE),
            pg_stamp: fresh::Fresh::new(Duration::from_secs(1)),
            bodies: budget::BodyBudget::default(),
            local_names: fresh::Fresh::new(hosts::LOCAL_NAMES_AGE),
            server_header: HeaderValue::from_static(SERVER_HEADER),
            fqdn: tokio::sync::OnceCell::new(),
        }
    }

    /// Runs a plugin's call on the worker the call type names, within
    /// [`IPC_TIMEOUT`].
    pub async fn call<C: PluginCall>(&self, call: C) -> Result<C::Reply, error::ApiError> {
        self.call_within(call, IPC_TIMEOUT).await
    }

    /// Runs a plugin's call on the worker the call type names, within
    /// `timeout`: the one place a worker's failure or unexpected answer
    /// becomes an API error.
    pub async fn call_within<C: PluginCall>(
        &self,
        call: C,
        timeout: Duration,
    ) -> Result<C::Reply, error::ApiError> {
        use error::ApiError;
        let plugin = C::PLUGIN.to_string();
        let call = serde_json::to_value(call).map_err(|e| ApiError::Internal(e.to_string()))?;
        let value = match C::WORKER {
            Worker::Probe => match self
                .probe(ProbeCall::Plugin { plugin, call }, timeout)
                .await?
            {
                ProbeReply::Plugin { value } => value,
                other => {
                    return Err(ApiError::Internal(format!(
                        "unexpected probe reply {other:?}"
                    )))
                }
            },
            Worker::Pgctl => {
                let reply = self
                    .pgctl
                    .call(PgCtlCall::Plugin { plugin, call }, timeout)
                    .await
                    .map_err(|e| ApiError::from_call("pgctl", Err(e)))?
                    .map_err(|e| ApiError::from_call("pgctl", Ok(e)))?;
                match reply {
                    PgCtlReply::Plugin { value } => value,
                    PgCtlReply::Pong => {
                        return Err(ApiError::Internal("unexpected pgctl reply".into()))
                    }
                }
            }
            Worker::Task => {
                let reply = self
                    .task
                    .call(TaskCall::Plugin { plugin, call }, timeout)
                    .await
                    .map_err(|e| ApiError::from_call("task", Err(e)))?
                    .map_err(|e| ApiError::from_call("task", Ok(e)))?;
                match reply {
                    TaskReply::Plugin { value } => value,
                    TaskReply::Pong => {
                        return Err(ApiError::Internal("unexpected task reply".into()))
                    }
                }
            }
        };
        reply_of::<C>(value).map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// A plugin's call to the probe worker answered as a stream of chunks
    /// (see `ipc::stream`); `timeout` bounds the wait for each chunk.
    pub async fn stream<C: PluginCall>(
        &self,
        call: C,
        timeout: Duration,
    ) -> Result<crate::ipc::client::ChunkStream, error::ApiError> {
        use error::ApiError;
        if C::WORKER != Worker::Probe {
            return Err(ApiError::Internal(
                "streams come from the probe worker".into(),
            ));
        }
        let plugin = C::PLUGIN.to_string();
        let call = serde_json::to_value(call).map_err(|e| ApiError::Internal(e.to_string()))?;
        match self
            .probe
            .stream(ProbeCall::PluginStream { plugin, call }, timeout)
            .await
            .map_err(|e| ApiError::from_call("probe", Err(e)))?
            .map_err(|e| ApiError::from_call("probe", Ok(e)))?
        {
            (ProbeReply::Streaming, chunks) => Ok(chunks),
            (other, _) => Err(ApiError::Internal(format!(
                "unexpected probe reply {other:?}"
            ))),
        }
    }

    /// A core call to the probe worker, its failures mapped to API errors.
    pub async fn probe(
        &self,
        call: ProbeCall,
        timeout: Duration,
    ) -> Result<ProbeReply, error::ApiError> {
        use error::ApiError;
        self.probe
            .call(call, timeout)
            .await
            .map_err(|e| ApiError::from_call("probe", Err(e)))?
            .map_err(|e| ApiError::from_call("probe", Ok(e)))
    }

    /// Records routine notifications of `user`, in one transaction.
    pub async fn notify(&self, user: &str, messages: Vec<String>) -> Result<(), error::ApiError> {
        self.record(user, messages, crate::store::notifications::push)
            .await
    }

    /// Records audit notifications of `user` (changes and actions an
    /// operator must be able to trace: kept apart from routine ones), in
    /// one transaction.
    pub async fn notify_audit(
        &self,
        user: &str,
        messages: Vec<String>,
    ) -> Result<(), error::ApiError> {
        self.record(user, messages, crate::store::notifications::push_audit)
            .await
    }

    async fn record(
        &self,
        user: &str,
        messages: Vec<String>,
        push: fn(&rusqlite::Connection, &str, &str) -> rusqlite::Result<()>,
    ) -> Result<(), error::ApiError> {
        let user = user.to_string();
        self.db
            .run(move |c| {
                let tx = c.transaction()?;
                for m in &messages {
                    push(&tx, &user, m)?;
                }
                tx.commit()
            })
            .await
    }

    /// The basis of the discover documents now (see [`Basis`]).
    pub async fn basis(&self) -> Basis {
        let stamp = self
            .pg_stamp
            .get(|| async {
                self.db
                    .read(|c| {
                        Ok((
                            crate::store::meta::get(c, "pg_started")?,
                            crate::store::meta::get(c, "pg_conf_loaded")?,
                            crate::store::meta::get(c, "pg_in_recovery")?,
                        ))
                    })
                    .await
                    .unwrap_or((None, None, None))
            })
            .await;
        Basis {
            stamp,
            settings: self.ctx.settings(),
        }
    }

    /// The system FQDN, resolved once (it may need DNS) off the request tasks.
    pub async fn system_fqdn(&self) -> String {
        self.fqdn
            .get_or_init(|| async {
                tokio::task::spawn_blocking(crate::host::system_fqdn)
                    .await
                    .unwrap_or_else(|_| "localhost".to_string())
            })
            .await
            .clone()
    }
}
