//! The probe worker: the only process that holds PostgreSQL credentials and
//! connections. Serves typed requests from the http and scheduler workers on
//! `<home>/run/probe.sock`.
//!
//! Uses the blocking `postgres` crate on plain threads (it must not run inside a
//! tokio runtime). One connection is kept and re-established after a failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, NoTls};
use tracing::{info, warn};

use crate::config::PostgresqlSection;
use crate::ipc::messages::{ProbeCall, ProbeReply, WorkerError};

use super::WorkerCtx;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side limit on every statement of the agent.
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

/// Builds connection parameters; a host starting with `/` is a socket directory.
pub fn pg_config(pg: &PostgresqlSection) -> postgres::Config {
    let mut c = postgres::Config::new();
    if pg.host.starts_with('/') {
        c.host_path(&pg.host);
    } else {
        c.host(&pg.host);
    }
    c.port(pg.port)
        .user(&pg.user)
        .dbname(&pg.dbname)
        .application_name("temboard-agent")
        .connect_timeout(CONNECT_TIMEOUT)
        .options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    if let Some(p) = &pg.password {
        c.password(p);
    }
    c
}

struct Pg {
    ctx: WorkerCtx,
    client: Mutex<Option<Client>>,
}

impl Pg {
    /// Runs `f` on the shared connection, connecting first if needed; a failed
    /// connection is dropped so the next call reconnects.
    fn with<T>(
        &self,
        f: impl Fn(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            if guard.as_ref().is_none_or(|c| c.is_closed()) {
                let cfg = pg_config(&self.ctx.settings().config.postgresql);
                match cfg.connect(NoTls) {
                    Ok(c) => *guard = Some(c),
                    Err(e) => return Err(WorkerError::PostgresUnavailable(describe(&e))),
                }
            }
            let Some(client) = guard.as_mut() else {
                return Err(WorkerError::Internal("no connection".into()));
            };
            match f(client) {
                Ok(v) => return Ok(v),
                Err(e) if client.is_closed() && attempt == 0 => {
                    warn!(
                        "PostgreSQL connection lost ({}); reconnecting",
                        describe(&e)
                    );
                    *guard = None;
                }
                Err(e) => {
                    if client.is_closed() {
                        *guard = None;
                        return Err(WorkerError::PostgresUnavailable(describe(&e)));
                    }
                    return Err(WorkerError::Postgres(describe(&e)));
                }
            }
        }
        Err(WorkerError::PostgresUnavailable(
            "connection lost twice".into(),
        ))
    }
}

/// Error text with PostgreSQL's own message when there is one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                text = format!("{text}: {s}");
                src = s.source();
            }
            text
        }
    }
}

fn handle(pg: &Pg, call: ProbeCall) -> Result<ProbeReply, WorkerError> {
    match call {
        ProbeCall::Ping => Ok(ProbeReply::Pong),
        ProbeCall::PgCheck => pg.with(|c| c.simple_query("SELECT 1").map(|_| ())).map(|_| ProbeReply::PgUp),
        ProbeCall::PgInfo => pg.with(|c| {
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
    }
}

/// Runs the probe worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    let pg = Arc::new(Pg {
        ctx: ctx.clone(),
        client: Mutex::new(None),
    });
    info!("probe worker serving");
    super::serve_ipc(&ctx, move |call: ProbeCall| handle(&pg, call))
}
