//! The plugin API: everything a plugin may use of the agent's hosts, in one
//! place. A plugin imports this module, `crate::pg` (PostgreSQL helpers),
//! the lower layers (`config`, `ipc::messages`, `store`) and its own
//! folder; nothing else of `crate::workers` (checked by
//! `scripts/import-graph.py`). The hosts (the workers) implement it:
//!
//! | what | for | defined in |
//! |---|---|---|
//! | [`Route`], [`Call`], [`Reply`], [`Handled`], [`HandlerFn`], [`Caller`], [`Query`], [`string_param`], [`decode_segment`] | HTTP routes and handlers | [`http`] |
//! | [`ApiError`] | errors, mapped to HTTP in one place | [`error`] |
//! | [`AppState`] (settings, worker calls, state database, the 9.x core documents) | handlers | `workers::http::state` |
//! | [`PluginCall`], [`Worker`], [`typed`], [`reply_of`], [`section_value`] | typed calls to the probe, pg_ctl and task workers | [`call`] |
//! | [`Work`], [`Job`] | work run by a worker, periodic jobs | [`work`] |
//! | [`ProbeHost`], [`PgCtlHost`], [`TaskHost`], [`JobHost`], [`WorkerCtx`] | what work and jobs may use | `workers::*::host`, `workers::ctx` |
//! | [`Exposition`] | `/metrics` families | [`exposition`] |
//! | [`Plugin`] | what a plugin declares (its `PLUGIN`) | [`plugin`] |

pub mod call;
pub mod error;
pub mod exposition;
pub mod http;
pub mod plugin;
pub mod work;

pub use crate::workers::ctx::WorkerCtx;
pub use crate::workers::http::state::{AppState, IPC_TIMEOUT};
pub use crate::workers::pgctl::command;
pub use crate::workers::pgctl::host::PgCtlHost;
pub use crate::workers::probe::host::ProbeHost;
pub use crate::workers::scheduler::host::JobHost;
pub use crate::workers::task::host::{TaskConn, TaskHost, OUTPUT_LIMIT};
pub use call::{reply_of, section_value, typed, PluginCall, Worker};
pub use error::ApiError;
pub use exposition::Exposition;
pub use http::{
    decode_segment, parse_query, string_param, Call, Caller, Contract, Handled, HandlerFn, Query,
    Reply, Route, DEADLINE,
};
pub use plugin::{HealthHook, MetricsHook, PgCtlWork, Plugin, ProbeWork, TaskWork};
pub use work::{Job, Work};
