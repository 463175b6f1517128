//! The maintenance pages' figures (facts 9.1), read in the probe worker on
//! a pooled connection to the database shown: sizes from
//! `pg_*_relation_size`, bloat from `crate::pgbloat`'s estimates (bytes
//! beyond what the live rows need), counts and statistics. Every query runs
//! under the section's `statement_timeout` and `lock_timeout`, with names
//! bound as parameters, never spliced into the SQL.

use postgres::Row;
use serde_json::{json, Map, Value};

use crate::ipc::messages::WorkerError;
use crate::pg::{self, Conn};
use crate::api::ProbeHost;

/// Per-relation sizes and bloat bytes, ending in `tbl`, `idx`, `heap` and
/// `btree`; the estimates are the monitoring probes' (see `pgbloat`). With
/// `in_schema`, only the relations of the schema named `$1`.
///
/// Each relation is measured once (each size function opens the relation
/// and reads its files' sizes: on 10,000 tables, these calls are most of
/// the page's time): a table's main fork, its size with TOAST
/// (`pg_table_size`), its TOAST (`pg_total_relation_size` of the TOAST
/// table), each index with all its forks; totals are sums of those.
///
/// A relation locked exclusively, or waited for by such a lock (a VACUUM
/// FULL or REINDEX running or queued, often the agent's own task), is
/// measured from the catalog instead (`relpages`, as of its last VACUUM or
/// ANALYZE): measuring its files would wait for the lock, and the page
/// would fail on `lock_timeout` for as long as the task runs.
fn relations(ctes: &str, in_schema: bool) -> String {
    let filter = if in_schema {
        "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)"
    } else {
        ""
    };
    let size = |oid: &str, exact: &str, pages: &str| {
        format!(
            "CASE WHEN {oid} IN (SELECT relation FROM busy) THEN {pages} * current_setting('block_size')::bigint ELSE {exact} END"
        )
    };
    let index_bytes = size(
        "i.indexrelid",
        "pg_total_relation_size(i.indexrelid)",
        "c.relpages",
    );
    let main_bytes = size("c.oid", "pg_relation_size(c.oid)", "c.relpages");
    let toast_bytes = format!(
        "CASE WHEN c.reltoastrelid = 0 THEN 0 ELSE {} END",
        size(
            "c.reltoastrelid",
            "pg_total_relation_size(c.reltoastrelid)",
            "coalesce((SELECT t.relpages FROM pg_class t WHERE t.oid = c.reltoastrelid), 0)",
        )
    );
    let table_bytes = format!(
        "CASE WHEN c.oid IN (SELECT relation FROM busy) OR c.reltoastrelid IN (SELECT relation FROM busy)
              THEN ({main_bytes}) + ({toast_bytes}) ELSE pg_table_size(c.oid) END"
    );
    format!(
        "WITH {ctes},
busy AS (
  SELECT relation FROM pg_locks
  WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND relation IS NOT NULL
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
), idx AS (
  SELECT i.indexrelid AS oid, c.relnamespace AS nsp, i.indrelid, {index_bytes} AS bytes
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  WHERE true {filter}
), tbl AS (
  SELECT c.oid, c.relnamespace AS nsp, c.relname, c.reltuples, c.reloptions,
         {main_bytes} AS main_bytes,
         {table_bytes} + coalesce(ti.bytes, 0) AS total_bytes,
         coalesce(ti.bytes, 0) AS index_bytes, coalesce(ti.n, 0) AS n_indexes,
         {toast_bytes} AS toast_bytes
  FROM pg_class c
  LEFT JOIN (SELECT indrelid, sum(bytes) AS bytes, count(*) AS n FROM idx GROUP BY indrelid) ti
         ON ti.indrelid = c.oid
  WHERE c.relkind = 'r' {filter}
), heap AS (
  SELECT oid, greatest(pages - needed, 0) * current_setting('block_size')::int AS bloat FROM heap_need
), btree AS (
  SELECT oid, greatest(pages - needed, 0) * current_setting('block_size')::int AS bloat FROM btree_need
)"
    )
}

/// One row per schema (every namespace but temporary and TOAST ones).
fn schemas_sql(ctes: &str) -> String {
    format!(
        "{}, schemas AS (
  SELECT n.nspname::text AS name,
         coalesce(t.total, 0)::bigint AS total_bytes, coalesce(t.n, 0)::bigint AS n_tables,
         coalesce(t.main, 0)::bigint AS tables_bytes, coalesce(i.n, 0)::bigint AS n_indexes,
         coalesce(i.bytes, 0)::bigint AS indexes_bytes, t.bloat::float8 AS tables_bloat_bytes,
         i.bloat::float8 AS indexes_bloat_bytes, coalesce(t.toast, 0)::float8 AS toast_bytes
  FROM pg_namespace n
  LEFT JOIN (SELECT nsp, count(*) AS n, sum(total_bytes) AS total, sum(main_bytes) AS main,
                    sum(toast_bytes) AS toast, sum(heap.bloat) AS bloat
             FROM tbl LEFT JOIN heap USING (oid) GROUP BY nsp) t ON t.nsp = n.oid
  LEFT JOIN (SELECT nsp, count(*) AS n, sum(bytes) AS bytes, sum(btree.bloat) AS bloat
             FROM idx LEFT JOIN btree USING (oid) GROUP BY nsp) i ON i.nsp = n.oid
  WHERE n.nspname !~ '^pg_temp' AND n.nspname !~ '^pg_toast'
)",
        relations(ctes, false)
    )
}

/// `pg_size_pretty` of an expression, null when it is null (or 0 when
/// `zero_null`).
fn pretty(expr: &str, zero_null: bool) -> String {
    if zero_null {
        format!("CASE WHEN coalesce(({expr}), 0) = 0 THEN NULL ELSE pg_size_pretty(({expr})::bigint) END")
    } else {
        format!("pg_size_pretty(({expr})::bigint)")
    }
}

/// The JSON object of a row: each column under its name, with the type
/// the facts give (ints, floats, strings, booleans, null).
fn object(row: &Row) -> Map<String, Value> {
    use postgres::types::Type;
    let mut m = Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        // `try_get`: a type this reader does not know is a null, never a
        // panic (which would cost the pool its connection slot).
        let v = match *col.type_() {
            Type::INT8 => json!(row.try_get::<_, Option<i64>>(i).ok().flatten()),
            Type::INT4 => json!(row.try_get::<_, Option<i32>>(i).ok().flatten()),
            Type::INT2 => json!(row.try_get::<_, Option<i16>>(i).ok().flatten()),
            Type::FLOAT8 => json!(row.try_get::<_, Option<f64>>(i).ok().flatten()),
            Type::FLOAT4 => json!(row
                .try_get::<_, Option<f32>>(i)
                .ok()
                .flatten()
                .map(f64::from)),
            Type::BOOL => json!(row.try_get::<_, Option<bool>>(i).ok().flatten()),
            _ => json!(row.try_get::<_, Option<String>>(i).ok().flatten()),
        };
        m.insert(col.name().to_string(), v);
    }
    m
}

/// Runs one bounded read on a pooled connection to `dbname`; an unknown
/// database is a 404 naming it (9.x answered 200 with an empty body).
fn read<T>(
    host: &ProbeHost,
    dbname: &str,
    f: impl Fn(&mut postgres::Transaction<'_>, &str) -> Result<T, postgres::Error>,
) -> Result<T, WorkerError> {
    let s = super::config::settings(&host.settings().config);
    let exists = host.with(|c| {
        c.client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn",
                &[&dbname],
            )
            .map(|r| r.is_some())
    })?;
    if !exists {
        return Err(WorkerError::NotFound(format!("Database {dbname} not found")));
    }
    host.with_in(dbname, |c: &mut Conn| {
        let version = c.version_num;
        pg::bounded(c, s.statement_timeout * 1000, s.lock_timeout * 1000, |tx| {
            // The estimates' statistics source depends on the role.
            let ctes = crate::pgbloat::ctes(tx, version)?;
            f(tx, &ctes)
        })
    })
    // A timeout or a refusal says what PostgreSQL said.
    .map_err(|e| match e {
        WorkerError::Postgres(m) => WorkerError::Failed(m),
        other => other,
    })
}

/// The figures of a database on the instance page, beside its size.
const SUM_KEYS: [&str; 12] = [
    "n_tables",
    "tables_bytes",
    "n_indexes",
    "indexes_bytes",
    "tables_bloat_bytes",
    "indexes_bloat_bytes",
    "toast_bytes",
    "tables_size",
    "indexes_size",
    "tables_bloat_size",
    "indexes_bloat_size",
    "toast_size",
];

/// `GET /maintenance`: every non-template database with its sums.
pub fn instance(host: &ProbeHost) -> Result<Value, WorkerError> {
    let (dbs, total) = host.with(|c| {
        let dbs = c.client.query(
            "SELECT datname::text, pg_database_size(oid)::bigint AS total_bytes,
                    pg_size_pretty(pg_database_size(oid)) AS total_size
             FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname",
            &[],
        )?;
        // A database dropped meanwhile has no size (null).
        let total: f64 = dbs
            .iter()
            .filter_map(|r| r.try_get::<_, Option<i64>>(1).ok().flatten())
            .map(|b| b as f64)
            .sum();
        Ok((dbs.iter().map(object).collect::<Vec<_>>(), total))
    })?;
    let sums = |ctes: &str| format!(
        "{} SELECT sum(n_tables)::float8 AS n_tables, sum(tables_bytes)::float8 AS tables_bytes,
                   sum(n_indexes)::float8 AS n_indexes, sum(indexes_bytes)::float8 AS indexes_bytes,
                   sum(tables_bloat_bytes)::float8 AS tables_bloat_bytes,
                   sum(indexes_bloat_bytes)::float8 AS indexes_bloat_bytes,
                   sum(toast_bytes)::float8 AS toast_bytes,
                   {}, {}, {}, {}, {}
            FROM schemas",
        schemas_sql(ctes),
        pretty("sum(tables_bytes)", false) + " AS tables_size",
        pretty("sum(indexes_bytes)", false) + " AS indexes_size",
        pretty("sum(tables_bloat_bytes)", true) + " AS tables_bloat_size",
        pretty("sum(indexes_bloat_bytes)", true) + " AS indexes_bloat_size",
        pretty("sum(toast_bytes)", true) + " AS toast_size",
    );
    let mut databases = vec![];
    for mut db in dbs {
        let name = db
            .get("datname")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        // One database at a time, on the pool: never more connections than
        // the agent's share, whatever the number of databases.
        match read(host, &name, |tx, ctes| tx.query_one(sums(ctes).as_str(), &[])) {
            Ok(row) => db.extend(object(&row)),
            // A database dropped meanwhile, or one we may not read: listed
            // with its size and null figures.
            Err(e) => {
                tracing::debug!("maintenance: database {name}: {e}");
                for key in SUM_KEYS {
                    db.insert(key.to_string(), Value::Null);
                }
            }
        }
        databases.push(Value::Object(db));
    }
    let total_size = host.with(|c| {
        c.client
            .query_one("SELECT pg_size_pretty($1::float8::bigint)", &[&total])
            .map(|r| r.get::<_, String>(0))
    })?;
    Ok(json!({
        "instance": {"total_bytes": total, "total_size": total_size},
        "databases": databases,
    }))
}

/// `GET /maintenance/<db>`: the database's size and its schemas.
pub fn database(host: &ProbeHost, dbname: &str) -> Result<Value, WorkerError> {
    let sql = |ctes: &str| format!(
        "{} SELECT *, {}, {}, {}, {}, {}, {} FROM schemas ORDER BY name",
        schemas_sql(ctes),
        pretty("total_bytes", false) + " AS total_size",
        pretty("tables_bytes", false) + " AS tables_size",
        pretty("indexes_bytes", false) + " AS indexes_size",
        pretty("tables_bloat_bytes", true) + " AS tables_bloat_size",
        pretty("indexes_bloat_bytes", true) + " AS indexes_bloat_size",
        pretty("toast_bytes", true) + " AS toast_size",
    );
    read(host, dbname, |tx, ctes| {
        let size = tx.query_one(
            "SELECT pg_database_size(current_database())::bigint,
                    pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )?;
        let size = object(&size);
        let schemas: Vec<Value> = tx
            .query(sql(ctes).as_str(), &[])?
            .iter()
            .map(|r| Value::Object(object(r)))
            .collect();
        Ok(json!({
            "total_bytes": size.get("pg_database_size").cloned().unwrap_or(Value::Null),
            "total_size": size.get("pg_size_pretty").cloned().unwrap_or(Value::Null),
            "schemas": schemas,
        }))
    })
}

/// Tables of a schema (all, or the one named `$2`), as the schema page
/// lists them.
fn tables_sql(ctes: &str) -> String {
    format!(
        "{}, ib AS (
  SELECT idx.indrelid, sum(btree.bloat) AS bloat
  FROM idx LEFT JOIN btree USING (oid) GROUP BY idx.indrelid
)
SELECT tbl.relname::text AS name, tbl.total_bytes::bigint, tbl.index_bytes::bigint,
       tbl.toast_bytes::bigint, (tbl.total_bytes - tbl.index_bytes - tbl.toast_bytes)::bigint AS table_bytes,
       tbl.n_indexes::bigint,
       {}, {}, {}, {},
       heap.bloat::float8 AS bloat_bytes, {},
       ib.bloat::float8 AS index_bloat_bytes, {},
       tbl.reltuples::float8 AS row_estimate,
       tbl.oid::bigint AS oid,
       coalesce((SELECT o.option_value::int FROM pg_options_to_table(tbl.reloptions) o
                 WHERE o.option_name = 'fillfactor'), 100) AS fillfactor
FROM tbl
LEFT JOIN heap USING (oid)
LEFT JOIN ib ON ib.indrelid = tbl.oid
WHERE tbl.nsp = (SELECT oid FROM pg_namespace WHERE nspname = $1)
  AND ($2::text IS NULL OR tbl.relname = $2)
ORDER BY tbl.relname",
        relations(ctes, true),
        pretty("tbl.total_bytes", false) + " AS total_size",
        pretty("tbl.index_bytes", false) + " AS index_size",
        pretty("tbl.toast_bytes", false) + " AS toast_size",
        pretty("tbl.total_bytes - tbl.index_bytes - tbl.toast_bytes", false) + " AS table_size",
        pretty("heap.bloat", false) + " AS bloat_size",
        pretty("ib.bloat", false) + " AS index_bloat_size",
    )
}

/// Every index of a schema's tables (all, or of the table `$2`): decision
/// 16, not only the btree indexes with statistics; `bloat_bytes` is null
/// when the index is not estimable.
fn indexes_sql(ctes: &str) -> String {
    format!(
        "{}
SELECT tc.relname::text AS tablename, ic.relname::text AS name, ts.spcname::text AS tablespace,
       i.indnatts::int AS number_of_columns, s.idx_scan AS scans, s.idx_tup_read, s.idx_tup_fetch,
       s.indexrelname::text AS indexrelname, i.indisunique, pg_get_indexdef(i.indexrelid) AS def,
       coalesce(idx.bytes, 0)::bigint AS total_bytes,
       pg_size_pretty(coalesce(idx.bytes, 0)::bigint) AS total_size, am.amname::text AS type,
       btree.bloat::float8 AS bloat_bytes, {}
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
LEFT JOIN btree ON btree.oid = i.indexrelid
LEFT JOIN idx ON idx.oid = i.indexrelid
WHERE tc.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
  AND ($2::text IS NULL OR tc.relname = $2)
ORDER BY tc.relname, ic.relname",
        relations(ctes, true),
        pretty("btree.bloat", false) + " AS bloat_size",
    )
}

/// `GET /maintenance/<db>/schema/<s>`.
pub fn schema(host: &ProbeHost, dbname: &str, schema: &str) -> Result<Value, WorkerError> {
    read(host, dbname, |tx, ctes| {
        let none: Option<&str> = None;
        let mut total: i64 = 0;
        let tables: Vec<Value> = tx
            .query(tables_sql(ctes).as_str(), &[&schema, &none])?
            .iter()
            .map(|r| {
                let mut t = object(r);
                total += t.get("total_bytes").and_then(Value::as_i64).unwrap_or(0);
                t.remove("oid");
                t.remove("fillfactor");
                Value::Object(t)
            })
            .collect();
        let indexes: Vec<Value> = tx
            .query(indexes_sql(ctes).as_str(), &[&schema, &none])?
            .iter()
            .map(|r| Value::Object(object(r)))
            .collect();
        let mut doc = json!({"tables": tables, "indexes": indexes});
        if !tables.is_empty() {
            let size = tx
                .query_one("SELECT pg_size_pretty($1::bigint)", &[&total])?
                .get::<_, String>(0);
            doc["size"] = json!(size);
            doc["total_bytes"] = json!(total);
        }
        Ok(doc)
    })
}

/// `GET /maintenance/<db>/schema/<s>/table/<t>`: the table's sizes, its
/// `pg_stat_all_tables` row, its fillfactor and its indexes.
pub fn table(host: &ProbeHost, dbname: &str, schema: &str, table: &str) -> Result<Value, WorkerError> {
    let found = read(host, dbname, |tx, ctes| {
        let Some(row) = tx.query_opt(tables_sql(ctes).as_str(), &[&schema, &Some(table)])? else {
            return Ok(None);
        };
        let mut t = object(&row);
        let oid = t.remove("oid").and_then(|v| v.as_i64()).unwrap_or(0);
        t.remove("n_indexes");
        let stats = tx.query_opt(
            "SELECT to_jsonb(s)::text FROM pg_stat_all_tables s WHERE s.relid = $1::bigint::oid",
            &[&oid],
        )?;
        let stats = stats.and_then(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).ok());
        if let Some(Value::Object(s)) = stats {
            for (k, v) in s {
                t.entry(k).or_insert(v);
            }
        }
        let indexes: Vec<Value> = tx
            .query(indexes_sql(ctes).as_str(), &[&schema, &Some(table)])?
            .iter()
            .map(|r| Value::Object(object(r)))
            .collect();
        t.insert("indexes".into(), Value::Array(indexes));
        Ok(Some(Value::Object(t)))
    })?;
    found.ok_or_else(|| WorkerError::NotFound(format!("Table {schema}.{table} not found")))
}

/// Whether the target of a task exists: 404 `Table <s>.<t> not found` /
/// `Index <s>.<i> not found` (decision 13) otherwise; `Ok` for the
/// database itself.
pub fn check(
    host: &ProbeHost,
    dbname: &str,
    schema: Option<&str>,
    table: Option<&str>,
    index: Option<&str>,
) -> Result<(), WorkerError> {
    let (kinds, name, what) = match (table, index) {
        (Some(t), _) => (vec!["r", "m", "p"], t, "Table"),
        (None, Some(i)) => (vec!["i", "I"], i, "Index"),
        (None, None) => return read(host, dbname, |_, _| Ok(())),
    };
    let schema = schema.unwrap_or_default();
    let kinds: Vec<i8> = kinds.iter().map(|k| k.as_bytes()[0] as i8).collect();
    let found = read(host, dbname, |tx, _| {
        tx.query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = ANY($3)",
            &[&schema, &name, &kinds],
        )
        .map(|r| r.is_some())
    })?;
    if found {
        Ok(())
    } else {
        Err(WorkerError::NotFound(format!("{what} {schema}.{name} not found")))
    }
}
