//! What plugins' probe work may use ([`ProbeHost`]): the settings in force
//! and the bounded PostgreSQL pool. Part of the plugin API (`crate::api`).

use std::sync::Arc;

use crate::ipc::messages::{WorkerError, WorkerSettings};
use crate::workers::ctx::WorkerCtx;

/// What plugins' probe work may use: the settings in force and the bounded
/// PostgreSQL pool. Only this worker builds one (the http, scheduler and
/// pg_ctl workers never receive the PostgreSQL password).
pub struct ProbeHost {
    pub(super) ctx: WorkerCtx,
    pub(super) pool: crate::pg::Pool,
}

impl ProbeHost {
    /// The settings in force.
    pub fn settings(&self) -> Arc<WorkerSettings> {
        self.ctx.settings()
    }

    /// Runs `f` on a pooled connection (retried once on a new connection
    /// when the one used was closed).
    pub fn with<T>(
        &self,
        f: impl Fn(&mut crate::pg::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let params = self.ctx.settings().config.postgresql.clone();
        self.pool.with(&params, f)
    }

    /// Runs `f` on a connection opened for the purpose (see
    /// [`crate::pg::Pool::with_new`]: values in force, not lazily re-read ones).
    pub fn with_new<T>(
        &self,
        f: impl FnOnce(&mut crate::pg::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let params = self.ctx.settings().config.postgresql.clone();
        self.pool.with_new(&params, f)
    }

    /// Runs `f` once on a pooled connection, never retried: for work that
    /// must not run twice.
    pub fn with_once<T>(
        &self,
        f: impl FnOnce(&mut crate::pg::Conn) -> T,
    ) -> Result<T, WorkerError> {
        let params = self.ctx.settings().config.postgresql.clone();
        self.pool.with_once(&params, f)
    }

    /// Runs `f` on a connection to database `dbname` opened for the purpose
    /// and closed after it, within the pool's cap: per-database work
    /// (catalogs like `pg_extension` are per database) never holds more
    /// connections than the agent's share.
    pub fn with_database<T>(
        &self,
        dbname: &str,
        f: impl FnOnce(&mut crate::pg::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let mut params = self.ctx.settings().config.postgresql.clone();
        params.dbname = dbname.to_string();
        self.pool.with_new(&params, f)
    }

    /// Runs `f` on a pooled connection to database `dbname` (kept idle in
    /// the pool for the next request on that database, within the pool's
    /// cap; retried once on a new connection when the one used was closed).
    pub fn with_in<T>(
        &self,
        dbname: &str,
        f: impl Fn(&mut crate::pg::Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let mut params = self.ctx.settings().config.postgresql.clone();
        params.dbname = dbname.to_string();
        self.pool.with(&params, f)
    }

    /// Backend pids of the pool's own connections (hidden from listings).
    pub fn own_pids(&self) -> Vec<i32> {
        self.pool.own_pids()
    }
}
