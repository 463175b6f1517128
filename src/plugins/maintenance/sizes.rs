//! The maintenance pages' figures (facts 9.1), read in the probe worker on
//! a pooled connection to the database shown: each relation's sizes and
//! bloat estimate from [`super::catalog`] (the data directory, the kept
//! estimates), added up here; names, counts and statistics from the
//! catalog. Every query runs under the section's `statement_timeout` and
//! `lock_timeout`, with names bound as parameters, never spliced into the
//! SQL.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::types::Type;
use postgres::Row;
use serde_json::{json, Map, Value};

use super::catalog::{self, sum_some, Catalog, Memory, Scope};
use crate::api::ProbeHost;
use crate::ipc::messages::WorkerError;
use crate::pg::{self, Cached, Conn};

/// `pg_size_pretty(bigint)` of PostgreSQL 15 and later (13 and 14 say the
/// same below 10 PB): bytes below 10 kB, then the unit under which the
/// value, half-rounded, stays below 20 × 1024.
pub fn size_pretty(size: i64) -> String {
    // (unit, limit, half-rounded, bits of the unit)
    const UNITS: [(&str, i64, bool, u32); 6] = [
        ("bytes", 10 * 1024, false, 0),
        ("kB", 20 * 1024 - 1, true, 10),
        ("MB", 20 * 1024 - 1, true, 20),
        ("GB", 20 * 1024 - 1, true, 30),
        ("TB", 20 * 1024 - 1, true, 40),
        ("PB", 20 * 1024 - 1, true, 50),
    ];
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    let mut size = size;
    for (i, (name, limit, round, bits)) in UNITS.iter().enumerate() {
        let last = i + 1 == UNITS.len();
        if last || size.unsigned_abs() < *limit as u64 {
            if *round {
                size = half_rounded(size);
            }
            return format!("{size} {name}");
        }
        let (_, _, next_round, next_bits) = UNITS[i + 1];
        let shift = next_bits - bits - u32::from(next_round) + u32::from(*round);
        size /= 1i64 << shift;
    }
    format!("{size} bytes")
}

/// `pg_size_pretty` of a float (a sum, an estimate) as SQL casts it to
/// bigint: rounded half to even.
fn pretty_f(bytes: f64) -> String {
    size_pretty(bytes.round_ties_even() as i64)
}

/// `pg_size_pretty` of an estimate or sum, null when it is null or 0.
fn pretty_nonzero(bytes: Option<f64>) -> Value {
    match bytes {
        Some(b) if b != 0.0 => json!(pretty_f(b)),
        _ => Value::Null,
    }
}

/// Runs one bounded read on a pooled connection to `dbname`; an unknown
/// database is a 404 naming it (9.x answered 200 with an empty body).
fn read<T>(
    host: &ProbeHost,
    dbname: &str,
    f: impl Fn(&mut Cached<'_>, i32) -> Result<T, postgres::Error>,
) -> Result<T, WorkerError> {
    let s = super::config::settings(&host.settings().config);
    let exists = host.with(|c| {
        c.query_opt_prepared(
            "SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn",
            &[(&dbname, Type::TEXT)],
        )
        .map(|r| r.is_some())
    })?;
    if !exists {
        return Err(WorkerError::NotFound(format!("Database {dbname} not found")));
    }
    host.with_in(dbname, |c: &mut Conn| {
        let version = c.version_num;
        pg::bounded_prepared(c, s.statement_timeout * 1000, s.lock_timeout * 1000, |tx| {
            f(tx, version)
        })
    })
    // A timeout or a refusal says what PostgreSQL said.
    .map_err(|e| match e {
        WorkerError::Postgres(m) => WorkerError::Failed(m),
        other => other,
    })
}

/// The sums of one schema (the database page) or of every schema (the
/// instance page).
#[derive(Debug, Default, Clone)]
struct Sums {
    n_tables: i64,
    total: i64,
    tables: i64,
    toast: i64,
    n_indexes: i64,
    indexes: i64,
    tables_bloat: Option<f64>,
    indexes_bloat: Option<f64>,
}

impl Sums {
    fn add(&mut self, other: &Sums) {
        self.n_tables += other.n_tables;
        self.total += other.total;
        self.tables += other.tables;
        self.toast += other.toast;
        self.n_indexes += other.n_indexes;
        self.indexes += other.indexes;
        self.tables_bloat = sum_some([self.tables_bloat, other.tables_bloat].into_iter());
        self.indexes_bloat = sum_some([self.indexes_bloat, other.indexes_bloat].into_iter());
    }
}

/// The schemas the pages list (every one but temporary and TOAST ones),
/// by name, with their sums: tables are ordinary tables, indexes every
/// index in the schema (partitioned ones included, of size 0).
fn schema_sums(tx: &mut Cached<'_>, cat: &Catalog) -> Result<Vec<(String, Sums)>, postgres::Error> {
    let mut by_nsp: std::collections::HashMap<u32, Sums> = std::collections::HashMap::new();
    for r in &cat.rels {
        match r.kind {
            b'r' => {
                let s = by_nsp.entry(r.nsp).or_default();
                s.n_tables += 1;
                s.total += cat.total_bytes(r.oid);
                s.tables += cat.size(r.oid).main;
                s.toast += cat.toast_bytes(r.oid);
                s.tables_bloat = sum_some([s.tables_bloat, cat.bloat(r.oid)].into_iter());
            }
            b'i' | b'I' => {
                let s = by_nsp.entry(r.nsp).or_default();
                s.n_indexes += 1;
                s.indexes += cat.size(r.oid).forks;
                s.indexes_bloat = sum_some([s.indexes_bloat, cat.bloat(r.oid)].into_iter());
            }
            _ => {}
        }
    }
    Ok(tx
        .query_prepared(
            "SELECT oid, nspname::text FROM pg_namespace
             WHERE nspname !~ '^pg_temp' AND nspname !~ '^pg_toast' ORDER BY nspname",
            &[],
        )?
        .iter()
        .map(|r| {
            let sums = by_nsp.remove(&r.get::<_, u32>(0)).unwrap_or_default();
            (r.get::<_, String>(1), sums)
        })
        .collect())
}

/// The database's size: from its directories when they were listed,
/// else PostgreSQL's.
fn database_bytes(tx: &mut Cached<'_>, cat: &Catalog) -> Result<i64, postgres::Error> {
    match cat.database_bytes {
        Some(b) => Ok(b),
        None => Ok(tx
            .query_one("SELECT pg_database_size(current_database())::bigint", &[])?
            .get(0)),
    }
}

/// [`read`] with the scope's relations, sizes and estimates.
fn read_catalog<T>(
    host: &ProbeHost,
    memory: &Memory,
    dbname: &str,
    scope: Scope<'_>,
    f: impl Fn(&mut Cached<'_>, &Catalog) -> Result<T, postgres::Error>,
) -> Result<T, WorkerError> {
    read(host, dbname, |tx, version| {
        let cat = catalog::read(tx, memory, version, dbname, scope)?;
        f(tx, &cat)
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

/// One database of the instance page: its size and sums.
type DbRead = Result<(i64, Sums), WorkerError>;

/// `GET /maintenance`: every non-template database with its sums.
pub fn instance(host: &ProbeHost, memory: &Memory) -> Result<Value, WorkerError> {
    let names: Vec<String> = host.with(|c| {
        Ok(c.client
            .query(
                "SELECT datname::text FROM pg_database
                 WHERE NOT datistemplate AND datallowconn ORDER BY datname",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    })?;
    // Two databases at a time (this thread and one more), each on a pooled
    // connection: never more than two of the pool's connections, whatever
    // the number of databases. Why two: a small database (`postgres`) is
    // read while a large one is, and the pool keeps room for other pages.
    let next = std::sync::Mutex::new(names.iter().enumerate());
    let reads: std::sync::Mutex<Vec<Option<DbRead>>> =
        std::sync::Mutex::new((0..names.len()).map(|_| None).collect());
    let work = || loop {
        let Some((i, name)) = next.lock().unwrap_or_else(|p| p.into_inner()).next() else {
            break;
        };
        let read = read_catalog(host, memory, name, Scope::Database, |tx, cat| {
            let bytes = database_bytes(tx, cat)?;
            let mut all = Sums::default();
            for (_, s) in schema_sums(tx, cat)? {
                all.add(&s);
            }
            Ok((bytes, all))
        });
        reads.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(read);
    };
    std::thread::scope(|s| {
        // A thread that cannot start: this one reads them all.
        let _other = std::thread::Builder::new()
            .name("maintenance-db".into())
            .spawn_scoped(s, work);
        work();
    });
    let reads = reads.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut total = 0.0;
    let mut databases = vec![];
    for (name, read) in names.into_iter().zip(reads) {
        let read = read.unwrap_or_else(|| Err(WorkerError::Internal("not read".into())));
        let mut db = Map::new();
        db.insert("datname".into(), json!(name));
        match read {
            Ok((bytes, s)) => {
                total += bytes as f64;
                db.insert("total_bytes".into(), json!(bytes));
                db.insert("total_size".into(), json!(size_pretty(bytes)));
                db.insert("n_tables".into(), json!(s.n_tables as f64));
                db.insert("tables_bytes".into(), json!(s.tables as f64));
                db.insert("n_indexes".into(), json!(s.n_indexes as f64));
                db.insert("indexes_bytes".into(), json!(s.indexes as f64));
                db.insert("tables_bloat_bytes".into(), json!(s.tables_bloat));
                db.insert("indexes_bloat_bytes".into(), json!(s.indexes_bloat));
                db.insert("toast_bytes".into(), json!(s.toast as f64));
                db.insert("tables_size".into(), json!(size_pretty(s.tables)));
                db.insert("indexes_size".into(), json!(size_pretty(s.indexes)));
                db.insert("tables_bloat_size".into(), pretty_nonzero(s.tables_bloat));
                db.insert("indexes_bloat_size".into(), pretty_nonzero(s.indexes_bloat));
                db.insert("toast_size".into(), pretty_nonzero(Some(s.toast as f64)));
            }
            // A database dropped meanwhile, or one we may not read: listed
            // with its size (null once dropped) and null figures.
            Err(e) => {
                tracing::debug!("maintenance: database {name}: {e}");
                let size = host.with(|c| {
                    c.client.query_one(
                        "SELECT (SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1)",
                        &[&name],
                    )
                });
                let bytes = size.ok().and_then(|r| r.get::<_, Option<i64>>(0));
                total += bytes.unwrap_or(0) as f64;
                db.insert("total_bytes".into(), json!(bytes));
                db.insert("total_size".into(), json!(bytes.map(size_pretty)));
                for key in SUM_KEYS {
                    db.insert(key.to_string(), Value::Null);
                }
            }
        }
        databases.push(Value::Object(db));
    }
    Ok(json!({
        "instance": {"total_bytes": total, "total_size": pretty_f(total)},
        "databases": databases,
    }))
}

/// `GET /maintenance/<db>`: the database's size and its schemas.
pub fn database(host: &ProbeHost, memory: &Memory, dbname: &str) -> Result<Value, WorkerError> {
    read_catalog(host, memory, dbname, Scope::Database, |tx, cat| {
        let bytes = database_bytes(tx, cat)?;
        let schemas: Vec<Value> = schema_sums(tx, cat)?
            .into_iter()
            .map(|(name, s)| {
                json!({
                    "name": name,
                    "total_bytes": s.total,
                    "n_tables": s.n_tables,
                    "tables_bytes": s.tables,
                    "n_indexes": s.n_indexes,
                    "indexes_bytes": s.indexes,
                    "tables_bloat_bytes": s.tables_bloat,
                    "indexes_bloat_bytes": s.indexes_bloat,
                    "toast_bytes": s.toast as f64,
                    "total_size": size_pretty(s.total),
                    "tables_size": size_pretty(s.tables),
                    "indexes_size": size_pretty(s.indexes),
                    "tables_bloat_size": pretty_nonzero(s.tables_bloat),
                    "indexes_bloat_size": pretty_nonzero(s.indexes_bloat),
                    "toast_size": pretty_nonzero(Some(s.toast as f64)),
                })
            })
            .collect();
        Ok(json!({
            "total_bytes": bytes,
            "total_size": size_pretty(bytes),
            "schemas": schemas,
        }))
    })
}

/// Tables of a schema (all, or with a filter on the table's name `$2`), as
/// the schema page lists them, without their sizes.
///
/// Why two texts, not one with `$2 IS NULL OR ...`: each is a statement
/// kept on the connection, and PostgreSQL's plan cache goes generic after
/// five runs; the generic plan of the schema's (a scan of `pg_class`) then
/// served a table's page (5 ms on 10,000 tables instead of an index scan).
macro_rules! tables {
    ($filter:literal) => {
        concat!(
            "SELECT c.oid, c.relname::text AS name, c.reltuples::float8 AS row_estimate,
       coalesce((SELECT o.option_value::int FROM pg_options_to_table(c.reloptions) o
                 WHERE o.option_name = 'fillfactor'), 100) AS fillfactor
FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
            $filter,
            "
ORDER BY c.relname"
        )
    };
}

/// The tables of the schema `$1`.
const TABLES: &str = tables!("");
/// The table `$1`.`$2`.
const TABLE: &str = tables!(" AND c.relname = $2");

/// A table as the schema and table pages show it, its keys in the order a
/// JSON object of them had (alphabetical; see [`IndexOut`]).
#[derive(serde::Serialize)]
struct TableOut {
    bloat_bytes: Option<f64>,
    bloat_size: Option<String>,
    /// On the table page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    fillfactor: Option<i32>,
    index_bloat_bytes: Option<f64>,
    index_bloat_size: Option<String>,
    index_bytes: i64,
    index_size: String,
    /// On the schema page only.
    #[serde(skip_serializing_if = "Option::is_none")]
    n_indexes: Option<i64>,
    name: Option<String>,
    row_estimate: Option<f64>,
    table_bytes: i64,
    table_size: String,
    toast_bytes: i64,
    toast_size: String,
    total_bytes: i64,
    total_size: String,
}

/// A table of the schema page (`fillfactor` false) or of the table page
/// (`fillfactor` true, no `n_indexes`): its row and its sizes.
fn table_object(cat: &Catalog, row: &Row, fillfactor: bool) -> TableOut {
    let oid: u32 = row.get(0);
    let total = cat.total_bytes(oid);
    let index = cat.index_bytes(oid);
    let toast = cat.toast_bytes(oid);
    let table = total - index - toast;
    let bloat = cat.bloat(oid);
    let index_bloat = cat.index_bloat(oid);
    TableOut {
        bloat_bytes: bloat,
        bloat_size: bloat.map(pretty_f),
        fillfactor: if fillfactor {
            row.try_get::<_, Option<i32>>("fillfactor").ok().flatten()
        } else {
            None
        },
        index_bloat_bytes: index_bloat,
        index_bloat_size: index_bloat.map(pretty_f),
        index_bytes: index,
        index_size: size_pretty(index),
        n_indexes: (!fillfactor).then(|| cat.n_indexes(oid)),
        name: row.try_get::<_, Option<String>>("name").ok().flatten(),
        row_estimate: row.try_get::<_, Option<f64>>("row_estimate").ok().flatten(),
        table_bytes: table,
        table_size: size_pretty(table),
        toast_bytes: toast,
        toast_size: size_pretty(toast),
        total_bytes: total,
        total_size: size_pretty(total),
    }
}

/// Every index of a schema's tables (all, or with a filter on the table's
/// name `$2`): decision 16, not only the btree indexes with statistics;
/// without their sizes. Two texts, as [`tables!`] says why.
macro_rules! indexes {
    ($filter:literal) => {
        concat!(
            "SELECT i.indexrelid AS oid, tc.relname::text AS tablename, ic.relname::text AS name,
       ts.spcname::text AS tablespace, i.indnatts::int AS number_of_columns,
       CASE WHEN st THEN pg_stat_get_numscans(i.indexrelid) END AS scans,
       CASE WHEN st THEN pg_stat_get_tuples_returned(i.indexrelid) END AS idx_tup_read,
       CASE WHEN st THEN pg_stat_get_tuples_fetched(i.indexrelid) END AS idx_tup_fetch,
       CASE WHEN st THEN ic.relname::text END AS indexrelname,
       i.indisunique, am.amname::text AS type,
       -- What the definition is made of: the index's, table's and
       -- schema's catalog rows and the table's columns (their row
       -- versions change with any rename or ALTER); the schema's read
       -- once, not per index.
       concat_ws(',', ic.xmin, tc.xmin, i.xmin, (SELECT n.xmin FROM pg_namespace n WHERE n.nspname = $1),
                 (SELECT sum(a.xmin::text::bigint) FROM pg_attribute a
                  WHERE a.attrelid = i.indrelid AND a.attnum > 0)) AS def_stamp
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class tc ON tc.oid = i.indrelid
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_tablespace ts ON ts.oid = ic.reltablespace
-- pg_stat_all_indexes' columns for the indexes it shows (of tables, TOAST
-- tables and materialized views), without its joins over every index.
CROSS JOIN LATERAL (SELECT tc.relkind IN ('r', 't', 'm') AS st) v
WHERE tc.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
            $filter,
            "
ORDER BY tc.relname, ic.relname"
        )
    };
}

/// The indexes of the schema `$1`'s tables.
const INDEXES: &str = indexes!("");
/// The indexes of the table `$1`.`$2`.
const TABLE_INDEXES: &str = indexes!(" AND tc.relname = $2");

/// An index as the schema and table pages show it: its keys in the order
/// a JSON object of them had (alphabetical), the same text byte for byte.
/// Why typed, not a JSON tree: on a 10,000-table schema page, building
/// 10,000 trees (30 allocations each) took 80 ms, writing these 10.
#[derive(serde::Serialize)]
pub struct IndexOut {
    bloat_bytes: Option<f64>,
    bloat_size: Option<String>,
    #[serde(serialize_with = "shared_text")]
    def: Option<Arc<str>>,
    idx_tup_fetch: Option<i64>,
    idx_tup_read: Option<i64>,
    indexrelname: Option<String>,
    indisunique: Option<bool>,
    name: Option<String>,
    number_of_columns: Option<i32>,
    scans: Option<i64>,
    tablename: Option<String>,
    tablespace: Option<String>,
    total_bytes: i64,
    total_size: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A kept definition as JSON text (serde writes `Arc<str>` only with its
/// `rc` feature, which would apply to every type of the agent).
fn shared_text<S: serde::Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&v.as_deref(), s)
}

/// The indexes of the schema or table page, with their sizes, estimates
/// (`bloat_bytes` null when the index is not estimable) and definitions
/// (kept in memory while what they are made of is unchanged).
fn indexes(
    tx: &mut Cached<'_>,
    cat: &Catalog,
    memory: &Memory,
    dbname: &str,
    schema: &str,
    table: Option<&str>,
) -> Result<Vec<IndexOut>, postgres::Error> {
    let rows = match &table {
        None => tx.query_prepared(INDEXES, &[(&schema, Type::TEXT)])?,
        Some(t) => tx.query_prepared(TABLE_INDEXES, &[(&schema, Type::TEXT), (t, Type::TEXT)])?,
    };
    let wanted: Vec<(u32, String)> = rows
        .iter()
        .map(|r| (r.get::<_, u32>("oid"), r.get::<_, String>("def_stamp")))
        .collect();
    let (mut defs, missing) = memory.defs(dbname, &wanted);
    if !missing.is_empty() {
        let read: HashMap<u32, Arc<str>> = tx
            .query(
                "SELECT u.oid, pg_get_indexdef(u.oid) FROM unnest($1::oid[]) AS u(oid)",
                &[&missing],
            )?
            .iter()
            .filter_map(|r| Some((r.get::<_, u32>(0), Arc::from(r.get::<_, Option<&str>>(1)?))))
            .collect();
        let stamps: HashMap<u32, &String> = wanted.iter().map(|(o, s)| (*o, s)).collect();
        memory.keep_defs(
            dbname,
            read.iter()
                .filter_map(|(o, d)| Some((*o, stamps.get(o)?.to_string(), d.clone()))),
        );
        defs.extend(read);
    }
    // `try_get`: a value this reader cannot decode is a null, never a
    // panic (which would cost the pool its connection slot).
    fn get<'a, T: postgres::types::FromSql<'a>>(r: &'a Row, column: &str) -> Option<T> {
        r.try_get::<_, Option<T>>(column).ok().flatten()
    }
    Ok(rows
        .iter()
        .map(|r| {
            let oid: u32 = r.get(0);
            let bytes = cat.size(oid).forks;
            let bloat = cat.bloat(oid);
            IndexOut {
                bloat_bytes: bloat,
                bloat_size: bloat.map(pretty_f),
                def: defs.get(&oid).cloned(),
                idx_tup_fetch: get(r, "idx_tup_fetch"),
                idx_tup_read: get(r, "idx_tup_read"),
                indexrelname: get(r, "indexrelname"),
                indisunique: get(r, "indisunique"),
                name: get(r, "name"),
                number_of_columns: get(r, "number_of_columns"),
                scans: get(r, "scans"),
                tablename: get(r, "tablename"),
                tablespace: get(r, "tablespace"),
                total_bytes: bytes,
                total_size: size_pretty(bytes),
                kind: get(r, "type"),
            }
        })
        .collect())
}

/// `GET /maintenance/<db>/schema/<s>`, as JSON text: each table and index
/// is serialized as it is read (no tree of the whole page: 7 MB of text for
/// 10,000 tables, several times that as a tree), then spooled and sent as
/// a stream. Not written to the spool row by row: the pool may run this
/// again on a new connection, and a spool once written to is committed.
pub fn schema(
    host: &ProbeHost,
    memory: &Memory,
    dbname: &str,
    schema: &str,
) -> Result<Vec<u8>, WorkerError> {
    read_catalog(host, memory, dbname, Scope::Schema(schema), |tx, cat| {
        let mut out = Vec::with_capacity(64 * 1024);
        let mut total: i64 = 0;
        let mut n = 0usize;
        out.extend_from_slice(b"{\"tables\": [");
        for r in tx.query_prepared(TABLES, &[(&schema, Type::TEXT)])? {
            let t = table_object(cat, &r, false);
            total += t.total_bytes;
            if n > 0 {
                out.extend_from_slice(b", ");
            }
            n += 1;
            write_json(&mut out, &t);
        }
        out.extend_from_slice(b"], \"indexes\": [");
        let ix = indexes(tx, cat, memory, dbname, schema, None)?;
        for (i, index) in ix.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            write_json(&mut out, index);
        }
        out.extend_from_slice(b"]");
        if n > 0 {
            out.extend_from_slice(b", \"size\": ");
            write_json(&mut out, &size_pretty(total));
            out.extend_from_slice(format!(", \"total_bytes\": {total}").as_bytes());
        }
        out.extend_from_slice(b"}");
        Ok(out)
    })
}

/// Appends a value's JSON text (serializing a JSON value into memory
/// cannot fail).
fn write_json(out: &mut Vec<u8>, v: &impl serde::Serialize) {
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.extend_from_slice(b"null");
    }
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
    let found = read_catalog(host, memory, dbname, Scope::Table(schema, table), |tx, cat| {
        let Some(row) = tx.query_opt_prepared(TABLE, &[(&schema, Type::TEXT), (&table, Type::TEXT)])? else {
            return Ok(None);
        };
        let oid: u32 = row.get(0);
        let Value::Object(mut t) = json!(table_object(cat, &row, true)) else {
            return Ok(None);
        };
        let stats = tx.query_opt_prepared(
            "SELECT to_jsonb(s)::text FROM pg_stat_all_tables s WHERE s.relid = $1",
            &[(&oid, Type::OID)],
        )?;
        let stats = stats.and_then(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).ok());
        if let Some(Value::Object(s)) = stats {
            for (k, v) in s {
                t.entry(k).or_insert(v);
            }
        }
        let indexes = indexes(tx, cat, memory, dbname, schema, Some(table))?;
        t.insert("indexes".into(), json!(indexes));
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
