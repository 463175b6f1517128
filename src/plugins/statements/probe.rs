//! Reading `pg_stat_statements` through a cursor and writing the 9.x
//! document as it goes: `{"snapshot_datetime": "...", "data": [row, ...]}`.
//! Each row's JSON is made by PostgreSQL (`to_json` of the view's row, so
//! every column the installed version has, with exact integers), and the
//! role and database names are put in front.

use crate::ipc::messages::WorkerError;
use crate::ipc::stream::Sink;
use crate::api::ProbeHost;

/// Rows fetched at a time: query texts have no length limit in
/// `pg_stat_statements`, so a batch is kept small.
const BATCH: i64 = 20;

/// Bounds each statement (the cursor's fetches included).
const STATEMENT_TIMEOUT: &str = "60s";

const DECLARE: &str = "DECLARE statements NO SCROLL CURSOR FOR
SELECT '{\"rolname\": ' || coalesce(to_json(r.rolname)::text, 'null')
    || ', \"datname\": ' || coalesce(to_json(d.datname)::text, 'null')
    || ', ' || substr(to_json(s)::text, 2)
FROM pg_stat_statements s
LEFT JOIN pg_roles r ON r.oid = s.userid
LEFT JOIN pg_database d ON d.oid = s.dbid";

fn io(e: std::io::Error) -> WorkerError {
    WorkerError::Failed(format!("the client went away: {e}"))
}

/// What a PostgreSQL refusal means here: the extension missing in that
/// database (404, the 9.x text), the library not preloaded (404 with
/// PostgreSQL's message, where 9.0.1 answered a bare 500), or else its
/// message.
fn refusal(e: &postgres::Error, dbname: &str) -> WorkerError {
    let Some(db) = e.as_db_error() else {
        return WorkerError::Postgres(crate::pg::describe(e));
    };
    let msg = db.message();
    if msg.contains("relation \"pg_stat_statements\" does not exist") {
        WorkerError::NotFound(format!(
            "pg_stat_statements not enabled on database {dbname}"
        ))
    } else if msg.contains("shared_preload_libraries") {
        WorkerError::NotFound(format!(
            "{msg} (database {dbname}: add pg_stat_statements to shared_preload_libraries and restart PostgreSQL)"
        ))
    } else {
        WorkerError::Failed(format!("pg_stat_statements on database {dbname}: {msg}"))
    }
}

/// Streams the document to `out`.
pub fn snapshot(host: &ProbeHost, dbname: &str, out: &mut dyn Sink) -> Result<(), WorkerError> {
    let outcome = host.with_database(dbname, |conn| {
        if conn.version_num < 90600 {
            return Ok(Err(WorkerError::NotFound(format!(
                "pg_stat_statements not enabled on database {dbname}"
            ))));
        }
        let client = &mut conn.client;
        let snapshot = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S +0000")
            .to_string();
        client.batch_execute(&format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'; SET LOCAL lock_timeout = '5s'"
        ))?;
        if let Err(e) = client.batch_execute(DECLARE) {
            return Ok(Err(refusal(&e, dbname)));
        }
        let fetch = format!("FETCH {BATCH} FROM statements");
        let (mut head, mut any) = (false, false);
        loop {
            let rows = match client.query(fetch.as_str(), &[]) {
                Ok(r) => r,
                Err(e) if !head && e.as_db_error().is_some() => {
                    return Ok(Err(refusal(&e, dbname)))
                }
                Err(e) => return Err(e),
            };
            if !head {
                head = true;
                let text = format!("{{\"snapshot_datetime\": \"{snapshot}\", \"data\": [");
                if let Err(e) = out.write(text.as_bytes()) {
                    return Ok(Err(io(e)));
                }
            }
            for row in &rows {
                let text: Option<String> = row.get(0);
                let sep: &[u8] = if any { b", " } else { b"" };
                any = true;
                if let Err(e) = out
                    .write(sep)
                    .and_then(|()| out.write(text.as_deref().unwrap_or("null").as_bytes()))
                {
                    return Ok(Err(io(e)));
                }
            }
            if (rows.len() as i64) < BATCH {
                break;
            }
        }
        client.batch_execute("COMMIT")?;
        Ok(out.write(b"]}").map_err(io))
    })?;
    outcome
}
