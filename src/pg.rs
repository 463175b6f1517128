//! PostgreSQL helpers shared by the workers and the plugins: the connection
//! type and its configuration, error descriptions, bounded reads, waiting
//! for a backend to exit, and the small, bounded pool of the probe worker.
//!
//! Connections carry `application_name = temboard-agent` and a statement
//! timeout; the backend pid of each is tracked so the agent's own sessions can
//! be left out of activity listings. A call whose connection turns out closed
//! (PostgreSQL restarted, or `pg_terminate_backend` on it) is retried once on a
//! fresh connection.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Row, Statement, Transaction};
use tracing::{debug, warn};

use crate::config::PostgresqlSection;
use crate::ipc::messages::WorkerError;

/// Connections open at most (the agent's share of `max_connections`).
pub const MAX_CONNECTIONS: usize = 4;
/// How long a connection to a database other than the configured one stays
/// idle in the pool.
const OTHER_DB_IDLE: Duration = Duration::from_secs(60);

/// Whether two connection settings differ only by database.
fn same_server(a: &PostgresqlSection, b: &PostgresqlSection) -> bool {
    let mut a = a.clone();
    a.dbname.clone_from(&b.dbname);
    &a == b
}

/// How long a call waits for a free connection.
const CHECKOUT_WAIT: Duration = Duration::from_secs(5);
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Server-side limit on every statement of the agent.
pub const STATEMENT_TIMEOUT_MS: u32 = 10_000;

/// One pooled connection.
pub struct Conn {
    /// The client.
    pub client: Client,
    /// `pg_backend_pid()` of this connection.
    pub backend_pid: i32,
    /// `server_version_num`.
    pub version_num: i32,
    params: PostgresqlSection,
    /// When it was last given back (idle since).
    idle_since: std::time::Instant,
    /// Statements prepared on this connection, kept with it.
    pub prepared: Prepared,
}

/// Statements prepared once on a pooled connection and kept there, by their
/// text. Why: PostgreSQL parses and plans a one-shot statement each time; a
/// page of the maintenance plugin runs a dozen small catalog queries whose
/// planning cost more than their execution (0.1 to 0.7 ms each), and a kept
/// statement is planned once (without parameters) or by PostgreSQL's plan
/// cache. Bounded: past [`Prepared::MAX`] texts the kept ones are closed.
#[derive(Default)]
pub struct Prepared(HashMap<String, Statement>);

impl Prepared {
    /// At most this many statements are kept per connection.
    const MAX: usize = 32;

    /// The statement of `sql`, prepared with parameter `types` the first
    /// time on this connection (`prepare` is any client or transaction's).
    pub fn get(
        &mut self,
        sql: &str,
        types: &[Type],
        prepare: impl FnOnce(&str, &[Type]) -> Result<Statement, postgres::Error>,
    ) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let statement = prepare(sql, types)?;
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A bounded transaction ([`bounded_prepared`]) with its connection's kept
/// statements: the `*_prepared` queries prepare once per connection, the
/// transaction's own methods (through `Deref`) run as they always do.
pub struct Cached<'a> {
    tx: Transaction<'a>,
    prepared: &'a mut Prepared,
}

impl<'a> std::ops::Deref for Cached<'a> {
    type Target = Transaction<'a>;
    fn deref(&self) -> &Transaction<'a> {
        &self.tx
    }
}

impl<'a> std::ops::DerefMut for Cached<'a> {
    fn deref_mut(&mut self) -> &mut Transaction<'a> {
        &mut self.tx
    }
}

/// Parameters with their types, as `query_typed` takes them.
pub type Typed<'p> = [(&'p (dyn ToSql + Sync), Type)];

/// The types and the values of typed parameters, apart: what preparing and
/// running a statement take.
pub fn split_typed<'p>(params: &Typed<'p>) -> (Vec<Type>, Vec<&'p (dyn ToSql + Sync)>) {
    params.iter().map(|(v, t)| (t.clone(), *v)).unzip()
}

impl Cached<'_> {
    /// The kept statement of `sql`.
    pub fn statement(&mut self, sql: &str, types: &[Type]) -> Result<Statement, postgres::Error> {
        let tx = &mut self.tx;
        self.prepared
            .get(sql, types, |sql, types| tx.prepare_typed(sql, types))
    }

    /// `query_typed` on the kept statement of `sql`.
    pub fn query_prepared(
        &mut self,
        sql: &str,
        params: &Typed<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        self.run(sql, params, |tx, s, v| tx.query(s, v))
    }

    /// `query_typed_one` on the kept statement of `sql`.
    pub fn query_one_prepared(
        &mut self,
        sql: &str,
        params: &Typed<'_>,
    ) -> Result<Row, postgres::Error> {
        self.run(sql, params, |tx, s, v| tx.query_one(s, v))
    }

    /// `query_typed_opt` on the kept statement of `sql`.
    pub fn query_opt_prepared(
        &mut self,
        sql: &str,
        params: &Typed<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        self.run(sql, params, |tx, s, v| tx.query_opt(s, v))
    }

    /// Runs `f` with the kept statement of `sql` and the parameters' values.
    fn run<T>(
        &mut self,
        sql: &str,
        params: &Typed<'_>,
        f: impl FnOnce(
            &mut Transaction<'_>,
            &Statement,
            &[&(dyn ToSql + Sync)],
        ) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let (types, values) = split_typed(params);
        let statement = self.statement(sql, &types)?;
        f(&mut self.tx, &statement, &values)
    }
}

impl Conn {
    /// `query_opt` on the kept statement of `sql` (outside a transaction).
    pub fn query_opt_prepared(
        &mut self,
        sql: &str,
        params: &Typed<'_>,
    ) -> Result<Option<Row>, postgres::Error> {
        let (types, values) = split_typed(params);
        let client = &mut self.client;
        let statement = self
            .prepared
            .get(sql, &types, |sql, types| client.prepare_typed(sql, types))?;
        self.client.query_opt(&statement, &values)
    }
}

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
        .options(&format!(
            "-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout=5000"
        ));
    if let Some(p) = &pg.password {
        c.password(p);
    }
    c
}

/// Runs `f` in a transaction of its own under `SET LOCAL statement_timeout`
/// and `lock_timeout` (milliseconds): a slow catalog or a held lock costs
/// at most that, and the session's defaults are back afterwards. READ
/// COMMITTED whatever `default_transaction_isolation` says: each statement
/// sees what is committed when it starts (the maintenance pages re-read the
/// catalog after listing files, to see what was rewritten meanwhile).
pub fn bounded<T>(
    conn: &mut Conn,
    statement_ms: u64,
    lock_ms: u64,
    f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    bounded_prepared(conn, statement_ms, lock_ms, |c| f(&mut c.tx))
}

/// [`bounded`], with the connection's kept statements ([`Cached`]).
pub fn bounded_prepared<T>(
    conn: &mut Conn,
    statement_ms: u64,
    lock_ms: u64,
    f: impl FnOnce(&mut Cached<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tx = conn.client.transaction()?;
    tx.batch_execute(&format!(
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; \
         SET LOCAL statement_timeout = {statement_ms}; SET LOCAL lock_timeout = {lock_ms}"
    ))?;
    let mut cached = Cached {
        tx,
        prepared: &mut conn.prepared,
    };
    let out = match f(&mut cached) {
        Ok(out) => out,
        Err(e) => {
            // A kept statement that fails may fail again the same way (a
            // view's columns changed under its plan: "cached plan must not
            // change result type"): the next call prepares afresh.
            cached.prepared.0.clear();
            return Err(e);
        }
    };
    cached.tx.commit()?;
    Ok(out)
}

/// Error text with PostgreSQL's own message when there is one.
pub fn describe(e: &postgres::Error) -> String {
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

/// A failed connection, with where it was tried: the operator sees at once
/// a wrong socket directory or port.
pub fn tried(pg: &PostgresqlSection, e: &postgres::Error) -> String {
    let place = if pg.host.starts_with('/') {
        format!(
            "socket {}/.s.PGSQL.{}",
            pg.host.trim_end_matches('/'),
            pg.port
        )
    } else {
        format!("host {} port {}", pg.host, pg.port)
    };
    format!(
        "{} (tried {place}, user {}, database {})",
        describe(e),
        pg.user,
        pg.dbname
    )
}

/// Longest a freed slot waits for its backend to exit.
const EXIT_WAIT: Duration = Duration::from_millis(500);

/// Closes a connection and, when PostgreSQL runs on this host (a socket
/// directory), waits for its backend process to exit (at most
/// [`EXIT_WAIT`]) before the caller reuses the slot.
///
/// Why: closing only sends Terminate; the backend leaves the server's
/// process array a moment later. Opening the replacement at once would, for
/// that moment, give the agent one connection more than its share of
/// `max_connections` on the server's side. The exit is awaited on a pidfd
/// (an event, not a polling loop); a backend that is not visible here
/// (another PID namespace) is not waited for.
fn close(conn: Conn) {
    let pid = conn.backend_pid;
    let local = conn.params.host.starts_with('/');
    drop(conn);
    if local {
        wait_exit(pid, EXIT_WAIT);
    }
}

/// Waits, at most `limit`, for process `pid` to exit (on a pidfd: an event,
/// not a polling loop); returns at once for a process not visible here.
pub fn wait_exit(pid: i32, limit: Duration) {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open(pid, 0) returns a new descriptor we then own, or -1
    // (the process is gone, or not visible from here).
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(raw) = i32::try_from(raw) else {
        return;
    };
    if raw < 0 {
        return;
    }
    // SAFETY: `raw` is a descriptor pidfd_open just created for us.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let ms = u16::try_from(limit.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    // Readable when the process has exited.
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
}

/// What a pooled call does after one attempt: the retry rule, apart from
/// the I/O so it can be tested on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// It worked: answer.
    Done,
    /// The connection was lost on the first attempt: once more, on a new
    /// connection (a restart or a terminated backend is not the caller's
    /// failure, and the statement may not have run).
    Retry,
    /// Lost again: PostgreSQL is unavailable.
    Unavailable,
    /// The statement failed on a live connection: no retry (it would fail
    /// the same way, or do its work twice).
    Failed,
}

fn after(ok: bool, connection_lost: bool, attempt: u32) -> After {
    match (ok, connection_lost, attempt) {
        (true, _, _) => After::Done,
        (false, true, 0) => After::Retry,
        (false, true, _) => After::Unavailable,
        (false, false, _) => After::Failed,
    }
}

/// Whether an error means the connection is gone (server restart, our
/// backend terminated), as opposed to a failed statement.
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    // An I/O error (broken pipe, reset) leaves the connection unusable even
    // before the client notices it is closed.
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    e.is_closed()
        || io
        || e.as_db_error().is_some_and(|db| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(db.code())
        })
}

#[derive(Default)]
struct State {
    idle: Vec<Conn>,
    open: usize,
    own_pids: HashSet<i32>,
}

/// The pool.
#[derive(Default)]
pub struct Pool {
    state: Mutex<State>,
    freed: Condvar,
    /// Connection failures in a row (logged when they start and end).
    failures: Mutex<u64>,
}

impl Pool {
    /// Logs the first failure of a run, with where it was tried (the API and
    /// the scheduler say only that PostgreSQL is unreachable: an anonymous
    /// client must not learn the socket path or role).
    fn connect_failed(&self, params: &PostgresqlSection, e: &postgres::Error) {
        let mut n = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if *n == 0 {
            warn!("cannot connect to PostgreSQL: {}", tried(params, e));
        }
        *n += 1;
    }

    /// Logs the end of a run of failures, with its count.
    fn connect_succeeded(&self) {
        let mut n = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if *n > 0 {
            tracing::info!(
                "connected to PostgreSQL again after {} failed attempt(s)",
                *n
            );
            *n = 0;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Backend pids of the agent's own connections.
    pub fn own_pids(&self) -> Vec<i32> {
        self.lock().own_pids.iter().copied().collect()
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.lock().open
    }

    /// A connection: an idle one, or a new one when `fresh` (after a lost
    /// connection the idle ones are likely dead too: a server restart or a
    /// `pg_terminate_backend` sweep takes them all, so they are dropped).
    fn checkout(&self, params: &PostgresqlSection, fresh: bool) -> Result<Conn, WorkerError> {
        if fresh {
            let stale: Vec<Conn> = {
                let mut st = self.lock();
                st.idle.drain(..).collect()
            };
            let n = stale.len();
            stale.into_iter().for_each(|c| self.retire(c));
            self.lock().open -= n;
            self.freed.notify_all();
        }
        let mut st = self.lock();
        loop {
            // Closed idle connections only take a slot; those made with
            // another configuration (a reload changed the role or the
            // server) must go; one to another database idle for a minute
            // goes too, so the agent never keeps a database busy (a
            // `DROP DATABASE` would be refused) for a page seen once.
            let stale = |c: &Conn| {
                c.client.is_closed()
                    || !same_server(&c.params, params)
                    || (c.params.dbname != params.dbname && c.idle_since.elapsed() > OTHER_DB_IDLE)
            };
            while let Some(i) = st.idle.iter().position(stale) {
                let c = st.idle.swap_remove(i);
                drop(st);
                self.retire(c);
                st = self.lock();
                st.open -= 1;
            }
            // The newest idle connection with these parameters (the same
            // database): the pool holds one per database the agent reads.
            if let Some(i) = st.idle.iter().rposition(|c| &c.params == params) {
                return Ok(st.idle.remove(i));
            }
            if st.open < MAX_CONNECTIONS {
                st.open += 1;
                drop(st);
                return self.connect(params).inspect_err(|_| {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                });
            }
            // Full of idle connections to other databases: the oldest one
            // makes room (its slot is ours once its backend is gone).
            if !st.idle.is_empty() {
                let c = st.idle.remove(0);
                drop(st);
                self.retire(c);
                return self.connect(params).inspect_err(|_| {
                    self.lock().open -= 1;
                    self.freed.notify_one();
                });
            }
            st = self.wait_for_room(st)?;
        }
    }

    /// Waits for a connection to be given back, at most [`CHECKOUT_WAIT`];
    /// the error says the cap is reached.
    fn wait_for_room<'a>(
        &'a self,
        st: std::sync::MutexGuard<'a, State>,
    ) -> Result<std::sync::MutexGuard<'a, State>, WorkerError> {
        let (st, timeout) = self
            .freed
            .wait_timeout(st, CHECKOUT_WAIT)
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() && st.idle.is_empty() && st.open >= MAX_CONNECTIONS {
            return Err(WorkerError::Timeout(format!(
                "all {MAX_CONNECTIONS} PostgreSQL connections of the agent are busy"
            )));
        }
        Ok(st)
    }

    fn connect(&self, params: &PostgresqlSection) -> Result<Conn, WorkerError> {
        let mut client = pg_config(params).connect(NoTls).map_err(|e| {
            self.connect_failed(params, &e);
            WorkerError::PostgresUnavailable(describe(&e))
        })?;
        let row = client
            .query_one(
                "SELECT pg_backend_pid(), current_setting('server_version_num')::int",
                &[],
            )
            .map_err(|e| WorkerError::PostgresUnavailable(describe(&e)))?;
        let conn = Conn {
            backend_pid: row.get(0),
            version_num: row.get(1),
            client,
            params: params.clone(),
            idle_since: std::time::Instant::now(),
            prepared: Prepared::default(),
        };
        debug!(
            "new PostgreSQL connection, backend pid {}",
            conn.backend_pid
        );
        self.lock().own_pids.insert(conn.backend_pid);
        self.connect_succeeded();
        Ok(conn)
    }

    /// Closes a connection and, once its backend is gone, forgets its pid.
    ///
    /// Why in that order: the activity pages hide the agent's backends by
    /// these pids; a pid forgotten before its backend exits let a listing
    /// made meanwhile show the agent's own session.
    fn retire(&self, conn: Conn) {
        let pid = conn.backend_pid;
        close(conn);
        self.lock().own_pids.remove(&pid);
    }

    fn give_back(&self, conn: Conn, broken: bool) {
        let mut st = self.lock();
        if broken || conn.client.is_closed() {
            drop(st);
            // The slot is free once the backend is gone (see close).
            self.retire(conn);
            self.lock().open -= 1;
        } else {
            let mut conn = conn;
            conn.idle_since = std::time::Instant::now();
            st.idle.push(conn);
        }
        self.freed.notify_one();
    }

    /// Runs `f` on a connection opened for the purpose and closed after it
    /// (within the cap: an idle pooled connection is closed to make room).
    ///
    /// Why: a pooled backend handles the postmaster's SIGHUP lazily, at its
    /// next command, and then re-reads the configuration files *as they are
    /// then* — after any later `ALTER SYSTEM` — so its `pg_settings.setting`
    /// can show a value the server does not run with. A new backend starts
    /// from the postmaster's configuration: the values in force.
    pub fn with_new<T>(
        &self,
        params: &PostgresqlSection,
        f: impl FnOnce(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        let evicted = {
            let mut st = self.lock();
            loop {
                if st.open < MAX_CONNECTIONS {
                    st.open += 1;
                    break None;
                }
                if let Some(c) = st.idle.pop() {
                    // Its slot is ours once its backend is gone.
                    break Some(c);
                }
                st = self.wait_for_room(st)?;
            }
        };
        if let Some(c) = evicted {
            self.retire(c);
        }
        let mut conn = self.connect(params).inspect_err(|_| {
            self.lock().open -= 1;
            self.freed.notify_one();
        })?;
        let result = f(&mut conn);
        self.give_back(conn, true);
        result.map_err(|e| WorkerError::Postgres(describe(&e)))
    }

    /// Runs `f` once on a pooled connection, without retry: for work that
    /// must not run twice (settings changes).
    pub fn with_once<T>(
        &self,
        params: &PostgresqlSection,
        f: impl FnOnce(&mut Conn) -> T,
    ) -> Result<T, WorkerError> {
        let mut conn = self.checkout(params, false)?;
        let out = f(&mut conn);
        let closed = conn.client.is_closed();
        self.give_back(conn, closed);
        Ok(out)
    }

    /// Runs `f` on a pooled connection; retries once on a fresh connection
    /// when the one used turns out closed.
    pub fn with<T>(
        &self,
        params: &PostgresqlSection,
        f: impl Fn(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, WorkerError> {
        for attempt in 0..2 {
            let mut conn = self.checkout(params, attempt > 0)?;
            let result = f(&mut conn);
            let closed =
                conn.client.is_closed() || result.as_ref().err().is_some_and(connection_lost);
            self.give_back(conn, closed);
            let step = after(result.is_ok(), closed, attempt);
            match (result, step) {
                (Ok(v), _) => return Ok(v),
                (Err(e), After::Retry) => {
                    warn!(
                        "PostgreSQL connection lost ({}); retrying on a new one",
                        describe(&e)
                    );
                }
                (Err(e), After::Unavailable) => {
                    return Err(WorkerError::PostgresUnavailable(describe(&e)))
                }
                (Err(e), _) => return Err(WorkerError::Postgres(describe(&e))),
            }
        }
        Err(WorkerError::PostgresUnavailable(
            "connection lost twice".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{after, After};

    #[test]
    fn a_lost_connection_is_retried_once_and_a_failed_statement_never() {
        assert_eq!(after(true, false, 0), After::Done);
        assert_eq!(after(true, true, 1), After::Done);
        assert_eq!(after(false, true, 0), After::Retry);
        assert_eq!(after(false, true, 1), After::Unavailable);
        assert_eq!(after(false, false, 0), After::Failed);
        assert_eq!(after(false, false, 1), After::Failed);
    }
}
