//! What plugins' task work may use ([`TaskHost`]): the settings, the state
//! database and PostgreSQL connections of their own. Part of the plugin API
//! (`crate::api`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, NoTls};
use rusqlite::Connection;
use tracing::warn;

use crate::ipc::messages::{WorkerError, WorkerSettings};
use crate::pg;
use crate::workers::ctx::WorkerCtx;

/// Most bytes of server messages (VERBOSE output, warnings) kept per task.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// What plugins' task work may use: the settings, the state database and
/// PostgreSQL connections of their own. Cheap to clone: a task's thread
/// keeps one.
#[derive(Clone)]
pub struct TaskHost {
    pub(super) inner: Arc<Inner>,
}

/// What a [`TaskHost`] shares between its clones.
pub(super) struct Inner {
    pub(super) ctx: WorkerCtx,
    pub(super) db: Mutex<Connection>,
}

/// A connection opened for one task, with the server's messages it
/// received (bounded).
pub struct TaskConn {
    /// The client.
    pub client: Client,
    /// `pg_backend_pid()` of the connection.
    pub backend_pid: i32,
    /// `server_version_num`.
    pub version_num: i32,
    output: Arc<Mutex<String>>,
}

impl TaskConn {
    /// The server's messages so far (`INFO: ...` lines), at most
    /// [`OUTPUT_LIMIT`] bytes.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the connection and waits (a moment at most) for its backend
    /// to exit, so whoever reads the task's end finds the backend gone.
    pub fn close(self) {
        let pid = self.backend_pid;
        drop(self.client);
        pg::wait_exit(pid, Duration::from_secs(2));
    }
}

impl TaskHost {
    /// The settings in force.
    pub fn settings(&self) -> Arc<WorkerSettings> {
        self.inner.ctx.settings()
    }

    /// The state database (one connection, serialized).
    pub fn db(&self) -> MutexGuard<'_, Connection> {
        self.inner.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection to `dbname` for one task: no statement timeout (a
    /// VACUUM FULL may take hours), `lock_timeout` as given (so a task
    /// never queues everyone behind its lock for long), and, on
    /// PostgreSQL 14 and later, `client_connection_check_interval`, so the
    /// backend stops if this worker dies in the middle.
    pub fn connect(&self, dbname: &str, lock_timeout_ms: u64) -> Result<TaskConn, WorkerError> {
        let mut pg = self.settings().config.postgresql.clone();
        pg.dbname = dbname.to_string();
        let mut config = pg::pg_config(&pg);
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        config
            .application_name("temboard-agent task")
            .options(&format!(
                "-c statement_timeout=0 -c lock_timeout={lock_timeout_ms}"
            ))
            .notice_callback(move |notice| {
                let mut out = sink.lock().unwrap_or_else(|p| p.into_inner());
                let line = format!("{}: {}\n", notice.severity(), notice.message());
                if out.len() + line.len() <= OUTPUT_LIMIT {
                    out.push_str(&line);
                }
            });
        let mut client = config
            .connect(NoTls)
            .map_err(|e| WorkerError::PostgresUnavailable(pg::describe(&e)))?;
        let row = client
            .query_one(
                "SELECT pg_backend_pid(), current_setting('server_version_num')::int",
                &[],
            )
            .map_err(|e| WorkerError::Postgres(pg::describe(&e)))?;
        let version_num: i32 = row.get(1);
        if version_num >= 140_000 {
            if let Err(e) = client.batch_execute("SET client_connection_check_interval = 1000") {
                warn!("cannot set client_connection_check_interval: {e}");
            }
        }
        Ok(TaskConn {
            backend_pid: row.get(0),
            version_num,
            client,
            output,
        })
    }

    /// Runs `f` on a thread of its own with a clone of the host: a task
    /// runs for as long as it takes while the worker goes on answering.
    pub fn spawn(
        &self,
        name: &str,
        f: impl FnOnce(TaskHost) + Send + 'static,
    ) -> Result<(), WorkerError> {
        let host = self.clone();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || f(host))
            .map(|_| ())
            .map_err(|e| WorkerError::Internal(format!("cannot start a task thread: {e}")))
    }
}
