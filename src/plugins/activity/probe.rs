//! Activity plugin queries (facts 7): backends, waiting and blocking locks,
//! with the 2.x row shapes and JSON types, and backend termination.

use postgres::types::ToSql;
use postgres::Row;
use serde_json::{json, Map, Value};

use crate::workers::probe::pool::Conn;

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
}

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
                nullif(a.usename, '')::text, nullif(a.state, ''), nullif(a.query, '')
         FROM pg_stat_activity a
         WHERE a.pid <> ALL($1) {client_only}
         ORDER BY duration DESC, a.pid"
    )
}

fn lock_row_select() -> String {
    format!(
        "SELECT l.pid, nullif(a.datname, '')::text AS database, nullif(a.usename, '')::text AS usename,
                l.mode, l.locktype, coalesce(l.relation::regclass::text, ' ') AS relation,
                {DURATION} AS duration, nullif(a.state, '') AS state, nullif(a.query, '') AS query
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    )
}

fn waiting_sql() -> String {
    format!(
        "{} WHERE NOT l.granted AND l.pid <> ALL($1) ORDER BY duration DESC, l.pid",
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
         ) b WHERE $1::int[] IS NOT NULL ORDER BY duration DESC, pid"
    )
}

fn text(row: &Row, i: usize) -> Value {
    row.get::<_, Option<String>>(i)
        .map(Value::String)
        .unwrap_or(Value::Null)
}

fn all_row(row: &Row) -> PendingRow {
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
    m.insert("state".into(), text(row, 6));
    m.insert("query".into(), text(row, 7));
    (pid, m)
}

fn lock_row(row: &Row) -> PendingRow {
    let pid: i32 = row.get(0);
    let mut m = Map::new();
    m.insert("pid".into(), json!(pid));
    m.insert("database".into(), text(row, 1));
    m.insert("user".into(), text(row, 2));
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

/// Runs a listing; rows without their process metrics yet.
pub fn list(
    conn: &mut Conn,
    which: Listing,
    own_pids: &[i32],
) -> Result<Vec<PendingRow>, postgres::Error> {
    let params: [&(dyn ToSql + Sync); 1] = [&own_pids];
    Ok(match which {
        Listing::All => conn
            .client
            .query(&all_sql(conn.version_num), &params)?
            .iter()
            .map(all_row)
            .collect(),
        Listing::Waiting => conn
            .client
            .query(&waiting_sql(), &params)?
            .iter()
            .map(lock_row)
            .collect(),
        Listing::Blocking => conn
            .client
            .query(&blocking_sql(), &params)?
            .iter()
            .map(lock_row)
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
