//! One database's relations as the maintenance pages need them: each
//! relation with storage (tables, TOAST tables, indexes), its sizes and
//! its bloat estimate, read once per page in a few catalog queries that
//! open no relation; the pages add them up in Rust.
//!
//! Why not in SQL: on 10,000 tables, joining 40,000 sizes to the catalog
//! and grouping them took PostgreSQL 110 ms a page; the same sums here take
//! a few milliseconds.
//!
//! - Sizes come from the data directory ([`super::files`]): one listing
//!   per directory. A relation rewritten between the catalog read and the
//!   listing (VACUUM FULL, TRUNCATE, CLUSTER: a new filenode) is measured
//!   again through SQL; everything is, where the directory cannot be read
//!   (said once in the logs).
//! - Bloat estimates ([`crate::pgbloat`]) of a database (shared by its
//!   schemas' pages) or of a table are kept until the catalog's pages,
//!   rows, columns or options of its tables and indexes, or their
//!   statistics, change.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::types::{ToSql, Type};

use crate::pg::Cached;

use super::files::{self, Database, FastMap, Relation, Size, Unreadable};

/// What a page is about, hence how much of the catalog it reads.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every relation of the database.
    Database,
    /// The relations of a schema, with every TOAST table and its index.
    Schema(&'a str),
    /// A table (schema, name), its TOAST table and their indexes.
    Table(&'a str, &'a str),
}

impl Scope<'_> {
    /// The SQL that picks the scope's relations (`c` is `pg_class`,
    /// `i` its `pg_index` row), with a `WITH` to put first.
    fn sql(&self) -> (&'static str, &'static str) {
        match self {
            Scope::Database => ("", "true"),
            // The whole database's, the schema's picked in Rust (see
            // [`Scope::namespace`]): `pg_class` has no index on the
            // schema, so a filter in SQL reads every row anyway and
            // took 20 ms more on 40,000 relations.
            Scope::Schema(_) => ("", "true"),
            Scope::Table(..) => (
                "WITH t AS (
  SELECT c2.oid, c2.reltoastrelid FROM pg_class c2
  WHERE c2.relkind = 'r' AND c2.relname = $2
    AND c2.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
), own AS (
  SELECT oid FROM t UNION ALL SELECT reltoastrelid FROM t
) ",
                "c.oid IN (SELECT oid FROM own UNION ALL
                   SELECT x.indexrelid FROM pg_index x WHERE x.indrelid IN (SELECT oid FROM own))",
            ),
        }
    }

    /// The catalog query's last column: the schema's oid (null when there
    /// is none of that name) for a schema, else 0.
    fn namespace(&self) -> &'static str {
        match self {
            Scope::Schema(_) => "(SELECT oid FROM pg_namespace WHERE nspname = $1)",
            _ => "0::oid",
        }
    }

    /// Its parameters (`$1` schema, `$2` table), typed: sent with the
    /// query in one round trip, without a separate prepare.
    fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        match self {
            Scope::Database => vec![],
            Scope::Schema(s) => vec![(s as &(dyn ToSql + Sync), Type::TEXT)],
            Scope::Table(s, t) => vec![
                (s as &(dyn ToSql + Sync), Type::TEXT),
                (t as &(dyn ToSql + Sync), Type::TEXT),
            ],
        }
    }

    /// The key of its estimates in memory.
    fn key(&self, dbname: &str) -> String {
        match self {
            // A schema's estimates are its database's.
            Scope::Database | Scope::Schema(_) => format!("{dbname}\0"),
            Scope::Table(s, t) => format!("{dbname}\0{s}\0{t}"),
        }
    }
}

/// One relation with storage, or a partitioned index (no storage, counted
/// among a schema's indexes).
#[derive(Debug, Clone)]
pub struct Rel {
    /// Its oid.
    pub oid: u32,
    /// `relkind`: `r`, `t`, `i` or `I`.
    pub kind: u8,
    /// Its schema.
    pub nsp: u32,
    /// Its TOAST table (0: none).
    pub toast: u32,
    /// For an index, its table (0 otherwise).
    pub table: u32,
    /// For a table or an index, a hash of what its estimate is made of
    /// besides statistics (pages, rows, columns, options); 0 otherwise.
    shape: i32,
}

/// The bloat estimates of a scope: bytes beyond the live rows' need per
/// table (heap) and per btree index.
pub type Bloat = FastMap<u32, f64>;

/// What the probe worker keeps between pages.
#[derive(Debug, Default)]
pub struct Memory {
    /// Per database (its schemas' too) or table: the stamp of the estimates' inputs,
    /// the estimates and when they were made. Why: they read every
    /// column's statistics (0.11 s on 10,000 tables) and change only when
    /// those inputs do.
    estimates: Mutex<HashMap<String, KeptBloat>>,
    /// Whether the logs said already that sizes are read through SQL.
    warned: AtomicBool,
    /// Per database, per index: the stamp of what its definition is made
    /// of, the definition (`pg_get_indexdef`), and when it was read. Why:
    /// `pg_get_indexdef` costs PostgreSQL about 10 µs an index, 0.1 s of a
    /// 10,000-table schema page, for text that changes only with DDL.
    defs: Mutex<HashMap<String, HashMap<u32, KeptDef>>>,
}

/// Kept estimates.
#[derive(Debug)]
struct KeptBloat {
    /// The stamp of their inputs.
    stamp: u64,
    /// The estimates.
    bloat: Arc<Bloat>,
    /// When they were made.
    at: Instant,
    /// A database's: the stamp each of its tables had then, as a table's
    /// page computes it. Why: a table's page then takes the table's
    /// estimates from its database's when its stamp is unchanged, instead
    /// of making them (planning the estimates' query alone took 5 ms).
    tables: FastMap<u32, u64>,
}

/// Kept estimates are made again after this long, whatever their stamp
/// says (a dropped column, for a role that sees no `pg_statistic`).
const BLOAT_AGE: Duration = Duration::from_secs(600);

/// A kept index definition: its stamp, the text, when it was read.
type KeptDef = (String, Arc<str>, Instant);

/// At most this many index definitions are kept (more start from none).
const KEPT_DEFS: usize = 100_000;

/// A kept definition is read again after this long, whatever its stamp
/// says (a renamed operator class or function shows then).
const DEF_AGE: Duration = Duration::from_secs(600);

impl Memory {
    /// The kept definitions of `wanted` (index, stamp) that are still
    /// good, and the indexes whose definition must be read.
    pub fn defs(&self, db: &str, wanted: &[(u32, String)]) -> (HashMap<u32, Arc<str>>, Vec<u32>) {
        let mut good = HashMap::with_capacity(wanted.len());
        let mut missing = vec![];
        let kept = self.defs.lock().ok();
        let of_db = kept.as_ref().and_then(|k| k.get(db));
        for (oid, stamp) in wanted {
            match of_db.and_then(|d| d.get(oid)) {
                Some((s, def, at)) if s == stamp && at.elapsed() < DEF_AGE => {
                    good.insert(*oid, def.clone());
                }
                _ => missing.push(*oid),
            }
        }
        (good, missing)
    }

    /// Keeps definitions just read (index, stamp, definition).
    pub fn keep_defs(&self, db: &str, read: impl Iterator<Item = (u32, String, Arc<str>)>) {
        let Ok(mut kept) = self.defs.lock() else {
            return;
        };
        let now = Instant::now();
        let read: Vec<_> = read.collect();
        let held: usize = kept.values().map(HashMap::len).sum();
        if held + read.len() > KEPT_DEFS {
            kept.clear();
        }
        let of_db = kept.entry(db.to_string()).or_default();
        for (oid, stamp, def) in read {
            of_db.insert(oid, (stamp, def, now));
        }
    }
}

/// At most this many estimates are kept, all scopes together (about 5 MB;
/// more start again from none): memory stays bounded whatever the number
/// of relations, schemas or tables shown.
const KEPT: usize = 200_000;

/// The relations of a scope with their sizes and estimates.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The relations.
    pub rels: Vec<Rel>,
    /// Their sizes, in the same order.
    sizes: Vec<Size>,
    /// Position of each relation in `rels`.
    by_oid: FastMap<u32, usize>,
    /// The indexes of each table (positions in `rels`).
    indexes_of: FastMap<u32, Vec<usize>>,
    /// The estimates.
    bloat: Arc<Bloat>,
    /// The database's size as `pg_database_size` counts it, when its
    /// directories were listed (the database scope, from the files).
    pub database_bytes: Option<i64>,
}

impl Catalog {
    /// A relation's sizes (nothing for one not read).
    pub fn size(&self, oid: u32) -> Size {
        self.by_oid
            .get(&oid)
            .map(|&i| self.sizes[i])
            .unwrap_or_default()
    }

    fn indexes(&self, table: u32) -> impl Iterator<Item = &Rel> {
        self.indexes_of
            .get(&table)
            .into_iter()
            .flatten()
            .map(|&i| &self.rels[i])
    }

    /// Bytes of a table's indexes, every fork (`pg_indexes_size`).
    pub fn index_bytes(&self, table: u32) -> i64 {
        self.indexes(table).map(|r| self.size(r.oid).forks).sum()
    }

    /// How many indexes a table has.
    pub fn n_indexes(&self, table: u32) -> i64 {
        self.indexes(table).count() as i64
    }

    /// Bytes of a table's TOAST table with its index
    /// (`pg_total_relation_size` of the TOAST table).
    pub fn toast_bytes(&self, table: u32) -> i64 {
        let toast = self.by_oid.get(&table).map(|&i| self.rels[i].toast).unwrap_or(0);
        if toast == 0 {
            return 0;
        }
        self.size(toast).forks + self.index_bytes(toast)
    }

    /// `pg_total_relation_size` of a table.
    pub fn total_bytes(&self, table: u32) -> i64 {
        self.size(table).forks + self.toast_bytes(table) + self.index_bytes(table)
    }

    /// A table's or btree index's bloat estimate (none when the
    /// statistics do not allow one).
    pub fn bloat(&self, oid: u32) -> Option<f64> {
        self.bloat.get(&oid).copied()
    }

    /// The sum of the estimates of a table's btree indexes (none when none
    /// has one).
    pub fn index_bloat(&self, table: u32) -> Option<f64> {
        sum_some(self.indexes(table).map(|r| self.bloat(r.oid)))
    }
}

/// The sum of the values that are there, as SQL's `sum` (none of none).
pub fn sum_some(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    values.flatten().fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// A relation's filenode (`pg_relation_filenode` for a mapped catalog),
/// null for a temporary relation (another session's: its files carry that
/// session's backend id, so it is measured through SQL) or one without
/// storage.
macro_rules! filenode {
    () => {
        "CASE WHEN c.relpersistence = 't' THEN NULL WHEN c.relfilenode <> 0 THEN c.relfilenode
              ELSE pg_relation_filenode(c.oid) END"
    };
}

/// From this many rows in `pg_class` (its estimate), a schema page lists
/// the database's directories while the catalog is read, as the database
/// page does; below, it looks up its relations' files once it knows them.
const AHEAD: usize = 2_000;

/// The catalog query: each relation of the scope with where its files are,
/// as one row of arrays (on 40,000 relations, half the time of as many
/// rows), and for tables and indexes a hash of their estimates' inputs
/// (pages, rows, columns, options).
const CATALOG: &str = concat!(
    "SELECT array_agg(c.oid), array_agg(c.relkind), array_agg(c.relnamespace), array_agg(c.reltoastrelid),
       array_agg(coalesce(i.indrelid, 0::oid)), array_agg(",
    filenode!(),
    "), array_agg(c.reltablespace),
       array_agg(CASE WHEN c.relkind IN ('r', 'i') THEN hashint8(c.oid::bigint) # hashint4(c.relpages)
                      # hashfloat8(c.reltuples) # hashint4(c.relnatts)
                      # coalesce(hashtext(c.reloptions::text), 0) ELSE 0 END), "
);

/// The catalog query's end, after [`Scope::namespace`].
const CATALOG_FROM: &str = "
FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.relkind IN ('r', 't', 'i', 'I') AND ";

/// The same relations' count and a checksum of their filenodes, read again
/// after the listing: a difference means a rewrite (or a new or dropped
/// relation) meanwhile. [`checksum`] computes the same from the first read.
const RECHECK: &str = concat!(
    "SELECT count(*)::bigint, coalesce(sum(((c.oid::bigint * 1000003 + (",
    filenode!(),
    ")::bigint) % 2147483647)::int), 0)::bigint
FROM pg_class c
WHERE c.relkind IN ('r', 't', 'i', 'I') AND "
);

/// What [`RECHECK`] computes, from the rows of the first read.
fn checksum(oids: &[u32], filenodes: &[Option<u32>]) -> (i64, i64) {
    let sum = oids
        .iter()
        .zip(filenodes)
        .filter_map(|(oid, f)| f.map(|f| (i64::from(*oid) * 1_000_003 + i64::from(f)) % 2_147_483_647))
        .sum();
    (oids.len() as i64, sum)
}

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
FROM pg_class c JOIN unnest($1::oid[]) AS u(oid) ON u.oid = c.oid";

/// Sizes of `oids` through SQL (see [`SQL_SIZES`]); a relation dropped
/// meanwhile is absent.
fn sql_sizes(tx: &mut Cached<'_>, oids: Vec<u32>) -> Result<HashMap<u32, Size>, postgres::Error> {
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

/// What the connected role and database say of where the files are.
struct Facts {
    superuser: bool,
    /// `data_directory`, where the role may read it and `pg_control_system()`.
    datadir: Option<String>,
    /// The cluster's (0 when unknown).
    system_identifier: i64,
    db: Database,
    /// `pg_class`'s row estimate (its `reltuples`).
    pg_class_rows: f32,
}

/// Reads [`Facts`]: two queries where the role may read the control file.
fn facts(tx: &mut Cached<'_>, version_num: i32) -> Result<Facts, postgres::Error> {
    let facts = tx.query_one_prepared(
        "SELECT current_setting('is_superuser') = 'on',
                CASE WHEN current_setting('is_superuser') = 'on'
                       OR pg_has_role('pg_read_all_settings', 'USAGE')
                     THEN current_setting('data_directory') END,
                has_function_privilege('pg_control_system()', 'EXECUTE'),
                d.oid, d.dattablespace,
                (SELECT reltuples FROM pg_class WHERE oid = 'pg_class'::regclass)
         FROM pg_database d WHERE d.datname = current_database()",
        &[],
    )?;
    let mut datadir: Option<String> = facts.get(1);
    // The cluster's identity and catalog version (a tablespace's directory
    // is named after it), where the role may read them (a hardened
    // cluster may revoke it: then sizes come through SQL).
    let control: Option<(i64, i32)> = if datadir.is_some() && facts.get::<_, bool>(2) {
        let r = tx.query_one_prepared(
            "SELECT system_identifier, catalog_version_no FROM pg_control_system()",
            &[],
        )?;
        Some((r.get(0), r.get(1)))
    } else {
        None
    };
    if control.is_none() {
        datadir = None;
    }
    let (system_identifier, catalog_version) = control.unwrap_or_default();
    Ok(Facts {
        superuser: facts.get(0),
        datadir,
        system_identifier,
        db: Database {
            oid: facts.get(3),
            tablespace: facts.get(4),
            version_dir: format!("PG_{}_{catalog_version}", version_num / 10_000),
        },
        pg_class_rows: facts.get(5),
    })
}

/// The catalog query's rows, and the listing made meanwhile (none when
/// its thread could not start: the caller lists).
type Beside = (
    Result<Vec<postgres::Row>, postgres::Error>,
    Option<Result<files::Listing, Unreadable>>,
);

/// Runs the catalog query while `dirs` are listed in a thread of its own.
fn read_beside_listing(
    tx: &mut Cached<'_>,
    query: &str,
    params: &crate::pg::Typed<'_>,
    datadir: &Path,
    dirs: &[String],
) -> Result<Beside, postgres::Error> {
    let (types, values) = crate::pg::split_typed(params);
    let statement = tx.statement(query, &types)?;
    // Bound, the query holds its snapshot (PostgreSQL takes it at Bind):
    // what it reads was committed before the listing starts, which the
    // re-check after the listing relies on.
    let portal = tx.bind(&statement, &values)?;
    Ok(std::thread::scope(|s| {
        let lister = std::thread::Builder::new()
            .name("maintenance-list".into())
            .spawn_scoped(s, move || files::list(datadir, dirs))
            .ok();
        let rows = tx.query_portal(&portal, 0);
        let listing = lister.map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Unreadable::Io(
                    "the data directory".into(),
                    std::io::Error::other("the listing thread failed"),
                ))
            })
        });
        (rows, listing)
    }))
}

/// Reads the scope's relations, their sizes and their estimates.
pub fn read(
    tx: &mut Cached<'_>,
    memory: &Memory,
    version_num: i32,
    dbname: &str,
    scope: Scope<'_>,
) -> Result<Catalog, postgres::Error> {
    let started = std::time::Instant::now();
    let Facts {
        superuser,
        datadir,
        system_identifier,
        db,
        pg_class_rows,
    } = facts(tx, version_num)?;
    let dir: Result<&Path, Unreadable> = match &datadir {
        None => Err(Unreadable::Hidden),
        Some(d) => files::same_cluster(Path::new(d), system_identifier).map(|()| Path::new(d.as_str())),
    };
    // The directories listed while PostgreSQL reads the catalog: the whole
    // database's (what its size counts), also for a schema of a large
    // database (its relations are there; a few files too many `stat`ed
    // beside the query cost no time).
    let ahead: Result<Vec<String>, Unreadable> = match (&dir, scope) {
        (Ok(d), Scope::Database) => files::database_dirs(d, &db),
        (Ok(d), Scope::Schema(_)) if pg_class_rows >= AHEAD as f32 => files::database_dirs(d, &db),
        _ => Ok(vec![]),
    };
    let whole: Vec<String> = match (&ahead, scope) {
        (Ok(dirs), Scope::Database) => dirs.clone(),
        _ => vec![],
    };
    let (with, filter) = scope.sql();
    let params = scope.params();
    // The re-check reads what the catalog query read: for a schema, the
    // whole database, without the schema's name.
    let recheck_params = match scope {
        Scope::Schema(_) => vec![],
        _ => scope.params(),
    };
    let query = format!(
        "{with}{CATALOG}{}{CATALOG_FROM}{filter}",
        scope.namespace()
    );
    let (rows, listing) = match (&dir, &ahead) {
        (Ok(d), Ok(dirs)) if !dirs.is_empty() => read_beside_listing(tx, &query, &params, d, dirs)?,
        // Nothing to list beforehand: one round trip.
        _ => (tx.query_prepared(query.as_str(), &params), None),
    };
    let rows = rows?;
    let Some(row) = rows.first() else {
        return Ok(Catalog::default());
    };
    let column = |i: usize| -> Vec<u32> { row.get::<_, Option<Vec<u32>>>(i).unwrap_or_default() };
    let oids = column(0);
    let kinds: Vec<i8> = row.get::<_, Option<Vec<i8>>>(1).unwrap_or_default();
    let (nsps, toasts, tables) = (column(2), column(3), column(4));
    let nodes: Vec<Option<u32>> = row.get::<_, Option<Vec<Option<u32>>>>(5).unwrap_or_default();
    let spcs = column(6);
    let shapes: Vec<i32> = row.get::<_, Option<Vec<i32>>>(7).unwrap_or_default();
    let schema: Option<u32> = row.get(8);
    let n = oids.len();
    let fetched = started.elapsed();
    if [kinds.len(), nsps.len(), toasts.len(), tables.len(), nodes.len(), spcs.len(), shapes.len()]
        .iter()
        .any(|&l| l != n)
    {
        return Ok(Catalog::default());
    }
    // A schema's: its relations, its tables' TOAST tables (in `pg_toast`,
    // or `pg_toast_temp_N` for temporary ones) and their indexes.
    let keep: Option<Vec<bool>> = matches!(scope, Scope::Schema(_)).then(|| {
        let toast: std::collections::HashSet<u32> = (0..n)
            .filter(|&i| Some(nsps[i]) == schema && toasts[i] != 0)
            .map(|i| toasts[i])
            .collect();
        (0..n)
            .map(|i| Some(nsps[i]) == schema || toast.contains(&oids[i]) || toast.contains(&tables[i]))
            .collect()
    });
    let mut rels = Vec::with_capacity(n);
    // The relations with files, where they are.
    let mut with_storage = Vec::with_capacity(n);
    // Temporary relations (no filenode here), measured through SQL.
    let mut temporary = vec![];
    for i in 0..n {
        if keep.as_ref().is_some_and(|k| !k[i]) {
            continue;
        }
        let (oid, filenode) = (oids[i], nodes[i]);
        rels.push(Rel {
            oid,
            kind: kinds[i] as u8,
            nsp: nsps[i],
            toast: toasts[i],
            table: tables[i],
            shape: shapes[i],
        });
        match filenode {
            Some(f) => with_storage.push(Relation {
                oid,
                filenode: f,
                path: files::relation_path(&db, spcs[i], f),
            }),
            None if kinds[i] as u8 != b'I' => temporary.push(oid),
            None => {}
        }
    }

    let found = dir.and_then(|dir| {
        // A listing that failed is the cue to measure through SQL.
        let listing = listing.transpose()?;
        ahead?;
        let (sizes, total) = files::sizes(dir, &with_storage, &whole, listing.as_ref())?;
        Ok((sizes, matches!(scope, Scope::Database).then_some(total)))
    });
    let listed = started.elapsed();
    let mut by_oid: FastMap<u32, usize> = FastMap::with_capacity_and_hasher(rels.len(), Default::default());
    for (i, r) in rels.iter().enumerate() {
        by_oid.insert(r.oid, i);
    }
    let mut sizes = vec![Size::default(); rels.len()];
    let (database_bytes, again) = match found {
        Ok((measured, total)) => {
            for (rel, size) in with_storage.iter().zip(measured) {
                if let Some(&i) = by_oid.get(&rel.oid) {
                    sizes[i] = size;
                }
            }
            let now = tx.query_one_prepared(format!("{with}{RECHECK}{filter}").as_str(), &recheck_params)?;
            let changed = (now.get::<_, i64>(0), now.get::<_, i64>(1)) != checksum(&oids, &nodes);
            let mut again: Vec<u32> = if changed {
                // Which ones: rare, so the arrays are sent only then.
                let oids: Vec<u32> = with_storage.iter().map(|r| r.oid).collect();
                let nodes: Vec<u32> = with_storage.iter().map(|r| r.filenode).collect();
                tx.query(
                    "SELECT u.o FROM unnest($1::oid[], $2::oid[]) AS u(o, f)
                     WHERE pg_relation_filenode(u.o) IS DISTINCT FROM u.f",
                    &[&oids, &nodes],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect()
            } else {
                vec![]
            };
            again.extend(&temporary);
            // A rewrite changes the database's size too: PostgreSQL's
            // count then.
            (total.filter(|_| !changed), again)
        }
        Err(why) => {
            if !memory.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "maintenance: sizes are read through SQL (slower on many relations): {why}"
                );
            }
            let mut all: Vec<u32> = with_storage.iter().map(|r| r.oid).collect();
            all.extend(&temporary);
            (None, all)
        }
    };
    if !again.is_empty() {
        let measured = sql_sizes(tx, again.clone())?;
        // One dropped meanwhile has no size any more.
        for oid in &again {
            if let Some(&i) = by_oid.get(oid) {
                sizes[i] = measured.get(oid).copied().unwrap_or_default();
            }
        }
    }

    let mut indexes_of: FastMap<u32, Vec<usize>> = FastMap::default();
    for (i, r) in rels.iter().enumerate() {
        if r.table != 0 {
            indexes_of.entry(r.table).or_default().push(i);
        }
    }
    let checked = started.elapsed();
    let (bloat, origin) = estimates(
        tx,
        memory,
        (version_num, superuser),
        dbname,
        scope,
        &rels,
        shapes.iter().map(|&h| i64::from(h)).sum(),
    )?;
    tracing::debug!(
        "maintenance: {dbname} {scope:?}: {n} relations, catalog read in {fetched:?}, files listed at {listed:?}, \
         checked at {checked:?}, estimates ({origin}) at {:?}",
        started.elapsed()
    );
    Ok(Catalog {
        rels,
        sizes,
        by_oid,
        indexes_of,
        bloat,
        database_bytes,
    })
}

/// The scope's estimates: from memory while the stamp of their inputs is
/// unchanged; with where they come from (made, kept, its database's).
fn estimates(
    tx: &mut Cached<'_>,
    memory: &Memory,
    (version_num, superuser): (i32, bool),
    dbname: &str,
    scope: Scope<'_>,
    rels: &[Rel],
    shape: i64,
) -> Result<(Arc<Bloat>, &'static str), postgres::Error> {
    // A schema's page read the whole database's catalog (`shape` is the
    // database's): its estimates are the database's, made and kept once
    // for the instance, database and schema pages.
    let scope = match scope {
        Scope::Schema(_) => Scope::Database,
        other => other,
    };
    let key = scope.key(dbname);
    let scoped = !matches!(scope, Scope::Database);
    let tables: Vec<u32> = rels.iter().filter(|r| r.kind == b'r').map(|r| r.oid).collect();
    // A table's stamp is the one a database's estimates keep for each of
    // its tables (one formula, [`table_stamps`]); a database's stamp is
    // what ANALYZE changed anywhere, and its relations' hashes.
    let stamp = if scoped {
        let each = table_stamps(rels, &analyzed_each(tx, superuser, &tables)?);
        tables.first().and_then(|t| each.get(t)).copied().unwrap_or_default()
    } else {
        let all: String = tx.query_one_prepared(analyzed_all(superuser), &[])?.get(0);
        stamp_of(&all, shape)
    };
    if let Some(kept) = memory.kept_estimates(&key, stamp, dbname, scope, rels) {
        return Ok(kept);
    }
    // Each table's stamp before the estimates are made: an ANALYZE between
    // the two makes the estimates newer than their stamp, never older.
    let of_tables = if scoped {
        FastMap::default()
    } else {
        table_stamps(rels, &analyzed_each(tx, superuser, &tables)?)
    };
    let ctes = crate::pgbloat::ctes_as(superuser, version_num, scoped);
    let bytes = "(greatest(pages - needed, 0) * current_setting('block_size')::int)::float8";
    let tail = format!("SELECT oid, {bytes} FROM heap_need UNION ALL SELECT oid, {bytes} FROM btree_need");
    let rows = if scoped {
        tx.query(
            format!("WITH scope AS (SELECT unnest($1::oid[]) AS oid), {ctes} {tail}").as_str(),
            &[&tables],
        )?
    } else {
        tx.query(format!("WITH {ctes} {tail}").as_str(), &[])?
    };
    let bloat: Arc<Bloat> = Arc::new(rows.iter().map(|r| (r.get(0), r.get(1))).collect());
    memory.keep_estimates(
        key,
        KeptBloat {
            stamp,
            bloat: bloat.clone(),
            at: Instant::now(),
            tables: of_tables,
        },
    );
    Ok((bloat, "made"))
}

/// What an ANALYZE changed in any table: as a superuser sees it, new row
/// versions of `pg_statistic` (`count:sum of xmin`); as another role, the
/// last analyze time.
fn analyzed_all(superuser: bool) -> &'static str {
    if superuser {
        "SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_statistic"
    } else {
        "SELECT coalesce(max(greatest(pg_stat_get_last_analyze_time(oid),
                                      pg_stat_get_last_autoanalyze_time(oid)))::text, '')
         FROM pg_class WHERE relkind = 'r'"
    }
}

/// The same per table of `tables` (a table absent has none: never
/// analyzed, or gone).
fn analyzed_each(
    tx: &mut Cached<'_>,
    superuser: bool,
    tables: &[u32],
) -> Result<FastMap<u32, String>, postgres::Error> {
    let sql = if superuser {
        "SELECT starelid, count(*) || ':' || sum(xmin::text::bigint) FROM pg_statistic
         WHERE starelid IN (SELECT unnest($1::oid[])) GROUP BY starelid"
    } else {
        "SELECT oid, greatest(pg_stat_get_last_analyze_time(oid), pg_stat_get_last_autoanalyze_time(oid))::text
         FROM pg_class WHERE relkind = 'r' AND oid IN (SELECT unnest($1::oid[]))"
    };
    Ok(tx
        .query_prepared(sql, &[(&tables, Type::OID_ARRAY)])?
        .iter()
        .filter_map(|r| Some((r.get(0), r.get::<_, Option<String>>(1)?)))
        .collect())
}

/// A stamp of estimates: what ANALYZE changed, and the hashes of the
/// tables' and indexes' catalog rows.
fn stamp_of(analyzed: &str, shape: i64) -> u64 {
    let mut stamp = DefaultHasher::new();
    analyzed.hash(&mut stamp);
    shape.hash(&mut stamp);
    stamp.finish()
}

/// Each table's stamp: what ANALYZE changed in it ([`analyzed_each`]), and
/// the hashes of the table, its indexes and its TOAST table's indexes.
fn table_stamps(rels: &[Rel], analyzed: &FastMap<u32, String>) -> FastMap<u32, u64> {
    let mut of_indexes: FastMap<u32, i64> = FastMap::default();
    for r in rels.iter().filter(|r| r.table != 0) {
        *of_indexes.entry(r.table).or_default() += i64::from(r.shape);
    }
    let indexes = |t: u32| of_indexes.get(&t).copied().unwrap_or(0);
    rels.iter()
        .filter(|r| r.kind == b'r')
        .map(|r| {
            let shape = i64::from(r.shape) + indexes(r.oid) + if r.toast != 0 { indexes(r.toast) } else { 0 };
            let analyzed = analyzed.get(&r.oid).map_or("", String::as_str);
            (r.oid, stamp_of(analyzed, shape))
        })
        .collect()
}

impl Memory {
    /// The kept estimates of `key` if made from inputs of this `stamp`; for
    /// a table's page, also its database's when the table's stamp is the
    /// one it had when they were made (the table's and its indexes' only).
    fn kept_estimates(
        &self,
        key: &str,
        stamp: u64,
        dbname: &str,
        scope: Scope<'_>,
        rels: &[Rel],
    ) -> Option<(Arc<Bloat>, &'static str)> {
        let kept = self.estimates.lock().ok()?;
        let fresh = |k: &&KeptBloat| k.at.elapsed() < BLOAT_AGE;
        if let Some(k) = kept.get(key).filter(fresh).filter(|k| k.stamp == stamp) {
            return Some((k.bloat.clone(), "kept"));
        }
        let Scope::Table(..) = scope else {
            return None;
        };
        let table = rels.iter().find(|r| r.kind == b'r')?;
        let db = kept
            .get(&Scope::Database.key(dbname))
            .filter(fresh)
            .filter(|k| k.tables.get(&table.oid) == Some(&stamp))?;
        let own = rels
            .iter()
            .filter_map(|r| Some((r.oid, *db.bloat.get(&r.oid)?)))
            .collect();
        Some((Arc::new(own), "its database's"))
    }

    /// Keeps estimates just made, within [`KEPT`].
    fn keep_estimates(&self, key: String, made: KeptBloat) {
        let Ok(mut kept) = self.estimates.lock() else {
            return;
        };
        let size = |k: &KeptBloat| k.bloat.len() + k.tables.len() + 1;
        let held: usize = kept.values().map(size).sum();
        if held + size(&made) > KEPT {
            kept.clear();
        }
        kept.insert(key, made);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_of_nothing_are_null_as_in_sql() {
        assert_eq!(sum_some([None, None].into_iter()), None);
        assert_eq!(sum_some(std::iter::empty()), None);
        assert_eq!(sum_some([None, Some(2.0), Some(0.5)].into_iter()), Some(2.5));
    }

    #[test]
    fn the_checksum_is_the_one_recheck_computes() {
        // (16384 * 1000003 + 16390) % 2147483647, plus 0 for no storage.
        assert_eq!(
            checksum(&[16384, 16400], &[Some(16390), None]),
            (2, (16384i64 * 1_000_003 + 16390) % 2_147_483_647)
        );
    }
}
