//! Activity plugin queries (facts 2.x 7, 9.x 4): backends, waiting and
//! blocking locks in the row shapes and JSON types of each contract, the
//! 9.x sessions and locks listings, and backend termination. Every listing
//! takes a row limit (9.x `?limit=`, none for 2.x).

use postgres::types::ToSql;
use postgres::Row;
use serde_json::{json, Map, Value};

use crate::pg::Conn;

/// A row before its process metrics are added: the backend pid and the
/// columns of the 2.x row.
pub type PendingRow = (i32, Map<String, Value>);

/// Which listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Listing {
    /// `GET /activity`.
    All,
    /// `GET /activity/waiting`.
    Waiting,
    /// `GET /activity/blocking`.
    Blocking,
    /// 9.x `GET /activity/sessions`: every client backend with timestamps,
    /// whether it waits for or blocks another, cumulative /proc figures.
    Sessions,
    /// 9.x `GET /activity/locks`: ungranted locks and the exclusive locks
    /// that block them.
    Locks,
}

/// Which contract's row shape a listing has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// temBoard 2.x rows.
    #[default]
    V2,
    /// temBoard 9.x rows (`application_name` added).
    V9,
}

/// The agent's own sessions, whichever worker opened them: the same
/// `application_name`, role and client address as the connection listing.
/// With the pids of the probe worker's pool (`$1`), this also hides a
/// backend of another worker (the task worker's), or one the pool is
/// connecting or closing while the listing runs. Only a session of the
/// agent's own role from the agent's own address could hide itself so.
const NOT_AGENT: &str = "NOT (a.application_name = 'temboard-agent' AND a.usename = current_user
             AND a.client_addr IS NOT DISTINCT FROM inet_client_addr())";

const DURATION: &str = "round(greatest(coalesce(extract(epoch FROM now() - a.query_start), 0), 0)::numeric, 2)::float8";

fn all_sql(version_num: i32) -> String {
    let wait = if version_num >= 90600 {
        "CASE WHEN a.wait_event_type = 'Lock' THEN 'Y' ELSE 'N' END"
    } else {
        "CASE WHEN a.waiting THEN 'Y' ELSE 'N' END"
    };
    let client_only = if version_num >= 100000 {
        "AND a.backend_type = 'client backend'"
    } else {
        ""
    };
    format!(
        "SELECT a.pid, nullif(a.datname, '')::text, host(a.client_addr), {DURATION} AS duration, {wait},
                nullif(a.usename, '')::text, nullif(a.state, ''), nullif(a.query, ''), a.application_name
         FROM pg_stat_activity a
         WHERE a.pid <> ALL($1) AND {NOT_AGENT} {client_only}
         ORDER BY duration DESC, a.pid
         LIMIT $2"
    )
}

fn lock_row_select() -> String {
    format!(
        "SELECT l.pid, nullif(a.datname, '')::text AS database, nullif(a.usename, '')::text AS usename,
                l.mode, l.locktype, coalesce(l.relation::regclass::text, ' ') AS relation,
                {DURATION} AS duration, nullif(a.state, '') AS state, nullif(a.query, '') AS query,
                a.application_name
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    )
}

fn waiting_sql() -> String {
    format!(
        "{} WHERE NOT l.granted AND l.pid <> ALL($1) AND {NOT_AGENT} ORDER BY duration DESC, l.pid LIMIT $2",
        lock_row_select()
    )
}

fn blocking_sql() -> String {
    let base = lock_row_select();
    format!(
        "SELECT DISTINCT * FROM (
           {base} WHERE l.granted AND l.transactionid IN (SELECT transactionid FROM pg_locks WHERE NOT granted)
           UNION ALL
           {base} WHERE l.granted AND (l.database, l.relation) IN
             (SELECT database, relation FROM pg_locks WHERE NOT granted AND relation IS NOT NULL)
         ) b WHERE $1::int[] IS NOT NULL ORDER BY duration DESC, pid LIMIT $2"
    )
}

/// 9.x sessions (PostgreSQL 9.6+: `pg_blocking_pids`). Blockers are
/// computed once for the backends waiting on a lock, not once per pair.
fn sessions_sql(version_num: i32) -> String {
    let client_only = if version_num >= 100000 {
        "AND a.backend_type = 'client backend'"
    } else {
        ""
    };
    format!(
        "WITH w AS (SELECT pid, pg_blocking_pids(pid) AS blockers
                    FROM pg_stat_activity WHERE wait_event_type = 'Lock'),
              b AS (SELECT DISTINCT unnest(blockers) AS pid FROM w)
         SELECT a.pid, host(a.client_addr), nullif(a.usename, '')::text, a.application_name,
                nullif(a.datname, '')::text, nullif(a.state, ''),
                to_json(a.backend_start) #>> '{{}}', to_json(a.query_start) #>> '{{}}',
                extract(epoch FROM now() - a.query_start)::float8 AS duration, nullif(a.query, ''),
                EXISTS (SELECT 1 FROM w WHERE w.pid = a.pid AND cardinality(w.blockers) > 0),
                EXISTS (SELECT 1 FROM b WHERE b.pid = a.pid)
         FROM pg_stat_activity a
         WHERE a.pid <> ALL($1) AND {NOT_AGENT} {client_only}
         ORDER BY duration DESC NULLS LAST, a.pid
         LIMIT $2"
    )
}

/// 9.x locks with the lock columns (facts 14.10): every ungranted lock
/// (with its first blocker), then each granted exclusive lock that blocks
/// a waiter on the same object (with the waiters). Names resolve in the
/// agent's database; other databases' relations show null names.
fn locks_sql(version_num: i32) -> String {
    let waitstart = if version_num >= 140000 {
        "to_json(w.waitstart) #>> '{}'"
    } else {
        "NULL::text"
    };
    format!(
        "WITH w AS (SELECT l.*, pg_blocking_pids(l.pid) AS blockers
                    FROM pg_locks l WHERE NOT l.granted AND l.pid <> ALL($1)),
              r AS (
                SELECT w.pid, w.locktype, w.database, w.relation, w.mode, false AS granted,
                       w.blockers[1] AS blocking_pid, {waitstart} AS waitstart,
                       '{{}}'::int[] AS waiting_pids
                FROM w
                UNION ALL
                SELECT l.pid, l.locktype, l.database, l.relation, l.mode, true, NULL, NULL,
                       array_agg(DISTINCT w.pid ORDER BY w.pid)
                FROM pg_locks l JOIN w ON l.pid = ANY (w.blockers)
                  AND l.locktype = w.locktype
                  AND l.database IS NOT DISTINCT FROM w.database
                  AND l.relation IS NOT DISTINCT FROM w.relation
                  AND l.page IS NOT DISTINCT FROM w.page
                  AND l.tuple IS NOT DISTINCT FROM w.tuple
                  AND l.virtualxid IS NOT DISTINCT FROM w.virtualxid
                  AND l.transactionid IS NOT DISTINCT FROM w.transactionid
                  AND l.classid IS NOT DISTINCT FROM w.classid
                  AND l.objid IS NOT DISTINCT FROM w.objid
                  AND l.objsubid IS NOT DISTINCT FROM w.objsubid
                WHERE l.granted AND l.mode LIKE '%Exclusive%'
                GROUP BY l.pid, l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid,
                         l.transactionid::text, l.classid, l.objid, l.objsubid, l.mode)
         SELECT r.pid, r.locktype, d.datname::text, n.nspname::text, c.relname::text, r.mode,
                r.granted, r.blocking_pid, r.waitstart, r.waiting_pids
         FROM r LEFT JOIN pg_database d ON d.oid = r.database
                LEFT JOIN pg_class c ON c.oid = r.relation
                LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
         ORDER BY r.granted, r.waitstart NULLS LAST, r.pid
         LIMIT $2"
    )
}

/// The 9.x `columns` of a listing (facts 4; the lock columns for locks,
/// `waitstart` from PostgreSQL 14).
pub fn columns(which: Listing, version_num: i32) -> Vec<&'static str> {
    match which {
        Listing::All | Listing::Waiting | Listing::Blocking => vec![
            "pid",
            "database",
            "client",
            "duration",
            "wait",
            "user",
            "application_name",
            "state",
            "query",
            "iow",
            "read_s",
            "write_s",
            "cpu",
            "memory",
        ],
        Listing::Sessions => vec![
            "pid",
            "client_addr",
            "username",
            "application_name",
            "database",
            "state",
            "backend_start",
            "query_start",
            "duration",
            "query",
            "waiting",
            "blocking",
        ],
        Listing::Locks => {
            let mut c = vec![
                "pid",
                "locktype",
                "database",
                "schema",
                "relation",
                "mode",
                "granted",
                "blocking_pid",
            ];
            if version_num >= 140000 {
                c.push("waitstart");
            }
            c.push("waiting_pids");
            c
        }
    }
}

fn text(row: &Row, i: usize) -> Value {
    row.get::<_, Option<String>>(i)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn all_row(row: &Row, shape: Shape) -> PendingRow {
    let pid: i32 = row.get(0);
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    m.insert("database".into(), text(row, 1));
    m.insert("client".into(), text(row, 2));
    m.insert(
        "duration".into(),
        json!(row.get::<_, Option<f64>>(3).unwrap_or(0.0)),
    );
    m.insert("wait".into(), text(row, 4));
    m.insert("user".into(), text(row, 5));
    if shape == Shape::V9 {
        m.insert("application_name".into(), text(row, 8));
    }
    m.insert("state".into(), text(row, 6));
    m.insert("query".into(), text(row, 7));
    (pid, m)
}

fn lock_row(row: &Row, shape: Shape) -> PendingRow {
    let pid: i32 = row.get(0);
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    m.insert("database".into(), text(row, 1));
    m.insert("user".into(), text(row, 2));
    if shape == Shape::V9 {
        m.insert("application_name".into(), text(row, 9));
    }
    m.insert("mode".into(), text(row, 3));
    m.insert("type".into(), text(row, 4));
    m.insert("relation".into(), text(row, 5));
    m.insert(
        "duration".into(),
        json!(row.get::<_, Option<f64>>(6).unwrap_or(0.0)),
    );
    m.insert("state".into(), text(row, 7));
    m.insert("query".into(), text(row, 8));
    (pid, m)
}

fn session_row(row: &Row) -> PendingRow {
    let pid: i32 = row.get(0);
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    for (i, key) in [
        (1, "client_addr"),
        (2, "username"),
        (3, "application_name"),
        (4, "database"),
        (5, "state"),
        (6, "backend_start"),
        (7, "query_start"),
    ] {
        m.insert(key.into(), text(row, i));
    }
    m.insert("duration".into(), json!(row.get::<_, Option<f64>>(8)));
    m.insert("query".into(), text(row, 9));
    m.insert("waiting".into(), json!(row.get::<_, bool>(10)));
    m.insert("blocking".into(), json!(row.get::<_, bool>(11)));
    (pid, m)
}

fn locks_row(row: &Row, version_num: i32) -> PendingRow {
    let pid: i32 = row.get(0);
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    for (i, key) in [
        (1, "locktype"),
        (2, "database"),
        (3, "schema"),
        (4, "relation"),
        (5, "mode"),
    ] {
        m.insert(key.into(), text(row, i));
    }
    m.insert("granted".into(), json!(row.get::<_, bool>(6)));
    m.insert("blocking_pid".into(), json!(row.get::<_, Option<i32>>(7)));
    if version_num >= 140000 {
        m.insert("waitstart".into(), text(row, 8));
    }
    m.insert(
        "waiting_pids".into(),
        json!(row.get::<_, Option<Vec<i32>>>(9).unwrap_or_default()),
    );
    (pid, m)
}

/// Runs a listing; rows without their process metrics yet. `limit` caps
/// the rows (none when `None`).
pub fn list(
    conn: &mut Conn,
    which: Listing,
    shape: Shape,
    limit: Option<i64>,
    own_pids: &[i32],
) -> Result<Vec<PendingRow>, postgres::Error> {
    let params: [&(dyn ToSql + Sync); 2] = [&own_pids, &limit];
    let version = conn.version_num;
    let mut rows = |sql: &str| conn.client.query(sql, &params);
    Ok(match which {
        Listing::All => rows(&all_sql(version))?
            .iter()
            .map(|r| all_row(r, shape))
            .collect(),
        Listing::Waiting => rows(&waiting_sql())?
            .iter()
            .map(|r| lock_row(r, shape))
            .collect(),
        Listing::Blocking => rows(&blocking_sql())?
            .iter()
            .map(|r| lock_row(r, shape))
            .collect(),
        Listing::Sessions => rows(&sessions_sql(version))?
            .iter()
            .map(session_row)
            .collect(),
        Listing::Locks => rows(&locks_sql(version))?
            .iter()
            .map(|r| locks_row(r, version))
            .collect(),
    })
}

/// `pg_terminate_backend` for each pid, in order.
pub fn terminate(conn: &mut Conn, pids: &[i32]) -> Result<Vec<(i32, bool)>, postgres::Error> {
    let mut out = Vec::with_capacity(pids.len());
    for pid in pids {
        let row = conn
            .client
            .query_one("SELECT pg_terminate_backend($1)", &[pid])?;
        out.push((*pid, row.get::<_, bool>(0)));
    }
    Ok(out)
}
