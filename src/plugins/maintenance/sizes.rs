//! The maintenance pages' figures (facts 9.1), read in the probe worker on
//! a pooled connection to the database shown: sizes from the data
//! directory ([`super::files`]; through `pg_*_relation_size` where it cannot
//! be read), bloat from `crate::pgbloat`'s estimates (bytes beyond what the
//! live rows need), kept per database until the statistics change, counts
//! and statistics. Every query runs under the section's `statement_timeout`
//! and `lock_timeout`, with names bound as parameters, never spliced into
//! the SQL.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use postgres::types::ToSql;
use postgres::{Row, Transaction};
use serde_json::{json, Map, Value};

use super::files::{self, Relation, Size, Unreadable};
use crate::api::ProbeHost;
use crate::ipc::messages::WorkerError;
use crate::pg::{self, Conn};

/// The bloat estimates of one database: bytes per table (heap) and per
/// btree index, the parameters `$4` and `$5` of the pages' SQL.
#[derive(Debug, Default)]
pub struct Bloat {
    oids: Vec<u32>,
    bytes: Vec<f64>,
}

/// What the probe worker keeps between pages.
#[derive(Debug, Default)]
pub struct Memory {
    /// Per database: the statistics' stamp and the estimates made from
    /// them. Why: the estimates read every column's statistics (0.11 s on
    /// 10,000 tables) and change only when the statistics or the catalog do.
    estimates: Mutex<HashMap<String, (String, Arc<Bloat>)>>,
    /// Whether the logs said already that sizes are read through SQL.
    warned: AtomicBool,
}

/// At most this many databases' estimates are kept (a larger instance
/// starts again from none).
const KEPT_DATABASES: usize = 256;

/// The inputs of a page's SQL: each relation's sizes (`$1` oids, `$2` main
/// fork bytes, `$3` bytes of all forks) and the bloat estimates (`$4`,
/// `$5`).
struct Inputs {
    oids: Vec<u32>,
    main: Vec<i64>,
    forks: Vec<i64>,
    bloat: Arc<Bloat>,
}

impl Inputs {
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.oids,
            &self.main,
            &self.forks,
            &self.bloat.oids,
            &self.bloat.bytes,
        ]
    }
}

/// The relations with storage of the database (of the schema `$1` and
/// TOAST, when given), where their files are.
const CATALOG: &str = "SELECT c.oid, pg_relation_filenode(c.oid), pg_relation_filepath(c.oid)
FROM pg_class c
WHERE c.relkind IN ('r', 'i', 't')
  AND ($1::text IS NULL OR c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ($1, 'pg_toast')))";

/// Sizes through SQL, for relations whose files could not be listed or
/// were rewritten meanwhile. A relation locked exclusively, or waited for
/// by such a lock (a VACUUM FULL or REINDEX running or queued, often the
/// agent's own task), is measured from the catalog instead (`relpages`, as
/// of its last VACUUM or ANALYZE): measuring its files would wait for the
/// lock, and the page would fail on `lock_timeout` for as long as the task
/// runs.
const SQL_SIZES: &str = "WITH busy AS (
  SELECT relation FROM pg_locks
  WHERE locktype = 'relation' AND mode = 'AccessExclusiveLock' AND relation IS NOT NULL
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT c.oid,
  CASE WHEN c.oid IN (SELECT relation FROM busy) THEN c.relpages * current_setting('block_size')::bigint
       ELSE pg_relation_size(c.oid) END,
  CASE WHEN c.oid IN (SELECT relation FROM busy) THEN c.relpages * current_setting('block_size')::bigint
       ELSE pg_relation_size(c.oid, 'main') + pg_relation_size(c.oid, 'fsm')
            + pg_relation_size(c.oid, 'vm') + pg_relation_size(c.oid, 'init') END
FROM pg_class c WHERE c.oid = ANY($1)";

/// Sizes of `oids` through SQL (see [`SQL_SIZES`]); a relation dropped
/// meanwhile is absent.
fn sql_sizes(tx: &mut Transaction<'_>, oids: &[u32]) -> Result<HashMap<u32, Size>, postgres::Error> {
    let oids = oids.to_vec();
    Ok(tx
        .query(SQL_SIZES, &[&oids])?
        .iter()
        .map(|r| {
            let size = Size {
                main: r.get::<_, Option<i64>>(1).unwrap_or(0),
                forks: r.get::<_, Option<i64>>(2).unwrap_or(0),
            };
            (r.get::<_, u32>(0), size)
        })
        .collect())
}

/// Each relation's sizes: from the data directory, then through SQL for
/// the relations rewritten between the catalog read and the listing (a
/// new filenode); all through SQL when the directory cannot be read (said
/// once in the logs).
fn measure(
    tx: &mut Transaction<'_>,
    memory: &Memory,
    schema: Option<&str>,
) -> Result<(Vec<u32>, Vec<i64>, Vec<i64>), postgres::Error> {
    let rels: Vec<Relation> = tx
        .query(CATALOG, &[&schema])?
        .iter()
        .filter_map(|r| {
            Some(Relation {
                oid: r.get(0),
                filenode: r.get::<_, Option<u32>>(1)?,
                path: r.get::<_, Option<String>>(2)?,
            })
        })
        .collect();
    let oids: Vec<u32> = rels.iter().map(|r| r.oid).collect();
    let place = tx.query_one(
        "SELECT (SELECT setting FROM pg_settings WHERE name = 'data_directory'),
                (SELECT system_identifier FROM pg_control_system())",
        &[],
    )?;
    let found = match place.get::<_, Option<String>>(0) {
        None => Err(Unreadable::Hidden),
        Some(dir) => files::same_cluster(Path::new(&dir), place.get(1))
            .and_then(|()| files::sizes(Path::new(&dir), &rels)),
    };
    let (mut sizes, recheck) = match found {
        Ok(sizes) => {
            let filenodes: Vec<u32> = rels.iter().map(|r| r.filenode).collect();
            let changed: Vec<u32> = tx
                .query(
                    "SELECT u.o FROM unnest($1::oid[], $2::oid[]) AS u(o, f)
                     WHERE pg_relation_filenode(u.o) IS DISTINCT FROM u.f",
                    &[&oids, &filenodes],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            (sizes, changed)
        }
        Err(why) => {
            if !memory.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "maintenance: sizes are read through SQL (slower on many relations): {why}"
                );
            }
            (vec![Size::default(); rels.len()], oids.clone())
        }
    };
    if !recheck.is_empty() {
        let by_sql = sql_sizes(tx, &recheck)?;
        for (i, r) in rels.iter().enumerate() {
            if recheck.contains(&r.oid) || by_sql.contains_key(&r.oid) {
                sizes[i] = by_sql.get(&r.oid).copied().unwrap_or_default();
            }
        }
    }
    Ok((
        oids,
        sizes.iter().map(|s| s.main).collect(),
        sizes.iter().map(|s| s.forks).collect(),
    ))
}

/// The database's bloat estimates, from memory while its statistics'
/// stamp is unchanged: the catalog's tables and indexes (pages, rows,
/// columns, options) and the statistics themselves (a superuser reads
/// `pg_statistic`'s row versions; another role the tables' last analyze
/// times).
fn estimates(
    tx: &mut Transaction<'_>,
    memory: &Memory,
    dbname: &str,
    version_num: i32,
) -> Result<Arc<Bloat>, postgres::Error> {
    let superuser = tx
        .query_one("SELECT current_setting('is_superuser') = 'on'", &[])?
        .get::<_, bool>(0);
    let analyzed = if superuser {
        "(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_statistic)"
    } else {
        "(SELECT coalesce(max(greatest(pg_stat_get_last_analyze_time(oid),
                                       pg_stat_get_last_autoanalyze_time(oid)))::text, '')
          FROM pg_class WHERE relkind = 'r')"
    };
    let stamp: String = tx
        .query_one(
            format!(
                "SELECT concat_ws('/', (SELECT count(*) || ':' || coalesce(sum(hashtext(concat_ws(':',
                   oid, relpages, reltuples, relnatts, reloptions))), 0)
                 FROM pg_class WHERE relkind IN ('r', 'i')), {analyzed})"
            )
            .as_str(),
            &[],
        )?
        .get(0);
    if let Ok(kept) = memory.estimates.lock() {
        if let Some((s, bloat)) = kept.get(dbname) {
            if *s == stamp {
                return Ok(bloat.clone());
            }
        }
    }
    let ctes = crate::pgbloat::ctes_as(superuser, version_num);
    let bytes = "(greatest(pages - needed, 0) * current_setting('block_size')::int)::float8";
    let rows = tx.query(
        format!(
            "WITH {ctes} SELECT oid, {bytes} FROM heap_need UNION ALL SELECT oid, {bytes} FROM btree_need"
        )
        .as_str(),
        &[],
    )?;
    let bloat = Arc::new(Bloat {
        oids: rows.iter().map(|r| r.get(0)).collect(),
        bytes: rows.iter().map(|r| r.get(1)).collect(),
    });
    if let Ok(mut kept) = memory.estimates.lock() {
        if kept.len() >= KEPT_DATABASES && !kept.contains_key(dbname) {
            kept.clear();
        }
        kept.insert(dbname.to_string(), (stamp, bloat.clone()));
    }
    Ok(bloat)
}

/// Per-relation sizes and bloat bytes, ending in `tbl`, `idx`, `heap` and
/// `btree`, from the [`Inputs`] (`$1` to `$5`). With `in_schema`, only the
/// relations of the schema named `$6`.
///
/// A table's main fork, its size with TOAST (`pg_table_size`: all its
/// forks, its TOAST table's and that one's index's), its TOAST
/// (`pg_total_relation_size` of the TOAST table), each index with all its
/// forks; totals are sums of those.
fn relations(in_schema: bool) -> String {
    let filter = if in_schema {
        "AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $6)"
    } else {
        ""
    };
    format!(
        "WITH sz AS (
  SELECT * FROM unnest($1::oid[], $2::bigint[], $3::bigint[]) AS sz(oid, main, forks)
), idx AS (
  SELECT i.indexrelid AS oid, c.relnamespace AS nsp, i.indrelid, coalesce(sz.forks, 0) AS bytes
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  LEFT JOIN sz ON sz.oid = i.indexrelid
  WHERE true {filter}
), toast AS (
  SELECT c.reltoastrelid AS oid, coalesce(max(ts.forks), 0) + coalesce(sum(xs.forks), 0) AS bytes
  FROM pg_class c
  LEFT JOIN sz ts ON ts.oid = c.reltoastrelid
  LEFT JOIN pg_index ti ON ti.indrelid = c.reltoastrelid
  LEFT JOIN sz xs ON xs.oid = ti.indexrelid
  WHERE c.relkind = 'r' AND c.reltoastrelid <> 0 {filter}
  GROUP BY c.reltoastrelid
), tbl AS (
  SELECT c.oid, c.relnamespace AS nsp, c.relname, c.reltuples, c.reloptions,
         coalesce(sz.main, 0) AS main_bytes,
         coalesce(sz.forks, 0) + coalesce(t.bytes, 0) + coalesce(ti.bytes, 0) AS total_bytes,
         coalesce(ti.bytes, 0) AS index_bytes, coalesce(ti.n, 0) AS n_indexes,
         coalesce(t.bytes, 0) AS toast_bytes
  FROM pg_class c
  LEFT JOIN sz ON sz.oid = c.oid
  LEFT JOIN toast t ON t.oid = c.reltoastrelid
  LEFT JOIN (SELECT indrelid, sum(bytes) AS bytes, count(*) AS n FROM idx GROUP BY indrelid) ti
         ON ti.indrelid = c.oid
  WHERE c.relkind = 'r' {filter}
), bl AS (
  SELECT * FROM unnest($4::oid[], $5::float8[]) AS bl(oid, bloat)
), heap AS (
  SELECT oid, bloat FROM bl
), btree AS (
  SELECT oid, bloat FROM bl
)"
    )
}

/// One row per schema (every namespace but temporary and TOAST ones).
fn schemas_sql() -> String {
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
        relations(false)
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
    f: impl Fn(&mut Transaction<'_>, i32) -> Result<T, postgres::Error>,
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
            f(tx, version)
        })
    })
    // A timeout or a refusal says what PostgreSQL said.
    .map_err(|e| match e {
        WorkerError::Postgres(m) => WorkerError::Failed(m),
        other => other,
    })
}

/// [`read`] with the sizes of the relations (of `schema` when given) and
/// the database's bloat estimates.
fn read_sized<T>(
    host: &ProbeHost,
    memory: &Memory,
    dbname: &str,
    schema: Option<&str>,
    f: impl Fn(&mut Transaction<'_>, &Inputs) -> Result<T, postgres::Error>,
) -> Result<T, WorkerError> {
    read(host, dbname, |tx, version| {
        let (oids, main, forks) = measure(tx, memory, schema)?;
        let bloat = estimates(tx, memory, dbname, version)?;
        let inputs = Inputs {
            oids,
            main,
            forks,
            bloat,
        };
        f(tx, &inputs)
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
pub fn instance(host: &ProbeHost, memory: &Memory) -> Result<Value, WorkerError> {
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
    let sums = format!(
        "{} SELECT sum(n_tables)::float8 AS n_tables, sum(tables_bytes)::float8 AS tables_bytes,
                   sum(n_indexes)::float8 AS n_indexes, sum(indexes_bytes)::float8 AS indexes_bytes,
                   sum(tables_bloat_bytes)::float8 AS tables_bloat_bytes,
                   sum(indexes_bloat_bytes)::float8 AS indexes_bloat_bytes,
                   sum(toast_bytes)::float8 AS toast_bytes,
                   {}, {}, {}, {}, {}
            FROM schemas",
        schemas_sql(),
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
        match read_sized(host, memory, &name, None, |tx, inputs| {
            tx.query_one(sums.as_str(), &inputs.params())
        }) {
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
pub fn database(host: &ProbeHost, memory: &Memory, dbname: &str) -> Result<Value, WorkerError> {
    let sql = format!(
        "{} SELECT *, {}, {}, {}, {}, {}, {} FROM schemas ORDER BY name",
        schemas_sql(),
        pretty("total_bytes", false) + " AS total_size",
        pretty("tables_bytes", false) + " AS tables_size",
        pretty("indexes_bytes", false) + " AS indexes_size",
        pretty("tables_bloat_bytes", true) + " AS tables_bloat_size",
        pretty("indexes_bloat_bytes", true) + " AS indexes_bloat_size",
        pretty("toast_bytes", true) + " AS toast_size",
    );
    read_sized(host, memory, dbname, None, |tx, inputs| {
        let size = tx.query_one(
            "SELECT pg_database_size(current_database())::bigint,
                    pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )?;
        let size = object(&size);
        let schemas: Vec<Value> = tx
            .query(sql.as_str(), &inputs.params())?
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
fn tables_sql() -> String {
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
WHERE tbl.nsp = (SELECT oid FROM pg_namespace WHERE nspname = $6)
  AND ($7::text IS NULL OR tbl.relname = $7)
ORDER BY tbl.relname",
        relations(true),
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
fn indexes_sql() -> String {
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
WHERE tc.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $6)
  AND ($7::text IS NULL OR tc.relname = $7)
ORDER BY tc.relname, ic.relname",
        relations(true),
        pretty("btree.bloat", false) + " AS bloat_size",
    )
}

/// `GET /maintenance/<db>/schema/<s>`.
pub fn schema(
    host: &ProbeHost,
    memory: &Memory,
    dbname: &str,
    schema: &str,
) -> Result<Value, WorkerError> {
    read_sized(host, memory, dbname, Some(schema), |tx, inputs| {
        let none: Option<&str> = None;
        let mut params = inputs.params();
        params.push(&schema);
        params.push(&none);
        let mut total: i64 = 0;
        let tables: Vec<Value> = tx
            .query(tables_sql().as_str(), &params)?
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
            .query(indexes_sql().as_str(), &params)?
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
pub fn table(
    host: &ProbeHost,
    memory: &Memory,
    dbname: &str,
    schema: &str,
    table: &str,
) -> Result<Value, WorkerError> {
    let found = read_sized(host, memory, dbname, Some(schema), |tx, inputs| {
        let one = Some(table);
        let mut params = inputs.params();
        params.push(&schema);
        params.push(&one);
        let Some(row) = tx.query_opt(tables_sql().as_str(), &params)? else {
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
            .query(indexes_sql().as_str(), &params)?
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
