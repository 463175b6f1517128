//! Bloat estimates of each table and each btree index of one database, from
//! the planner's statistics (no table is read or locked). Shared by the
//! monitoring probes (a ratio per database) and the maintenance pages
//! (bytes per table and per index), so both tell the same story.
//!
//! [`ctes`] gives the SQL common table expressions: `col_stats` (the
//! statistics of each column), then `heap_need` and `btree_need`, each a
//! relation with `oid`, `pages` (`relpages`, as of the last VACUUM or
//! ANALYZE) and `needed` (the pages the live rows would fill at the
//! relation's fillfactor); callers add `WITH` and their own `SELECT`. The
//! reclaimable space is `greatest(pages - needed, 0)` pages. A CTE no
//! `SELECT` reads is never run.

use postgres::GenericClient;

/// The statistics of each column, `(relid, attnum, null_frac, avg_width)`.
///
/// Why two forms: `pg_stats` checks the caller's privilege on every column
/// of every table before it joins `pg_statistic` — 0.3 s on a database of
/// 10,000 tables, twice (tables and indexes). A superuser reads
/// `pg_statistic` itself (what the view shows it anyway) by oid, in a few
/// milliseconds; another role goes through the view once, materialized.
fn col_stats(superuser: bool, version_num: i32, scoped: bool) -> String {
    let materialized = if version_num >= 120_000 {
        "MATERIALIZED "
    } else {
        ""
    };
    if superuser {
        format!(
            "col_stats AS {materialized}(
  SELECT starelid AS relid, staattnum AS attnum, stanullfrac AS null_frac, stawidth AS avg_width
  FROM pg_statistic WHERE NOT stainherit{}
)",
            if scoped {
                " AND starelid IN (SELECT oid FROM scope)"
            } else {
                ""
            }
        )
    } else {
        format!(
            "col_stats AS {materialized}(
  SELECT c.oid AS relid, a.attnum, s.null_frac, s.avg_width
  FROM pg_stats s
  JOIN pg_namespace n ON n.nspname = s.schemaname
  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname
  WHERE NOT s.inherited{}
)",
            if scoped {
                " AND c.oid IN (SELECT oid FROM scope)"
            } else {
                ""
            }
        )
    }
}

/// The CTEs of the estimates for the role `client` is connected as
/// (`col_stats`, then [`HEAP_NEED`] and [`BTREE_NEED`]), without `WITH`.
pub fn ctes(client: &mut impl GenericClient, version_num: i32) -> Result<String, postgres::Error> {
    let superuser = client
        .query_one("SELECT current_setting('is_superuser') = 'on'", &[])?
        .get::<_, bool>(0);
    Ok(ctes_as(superuser, version_num, false))
}

/// The CTEs of the estimates for a role known to be a superuser or not
/// (for callers that asked already). With `scoped`, only the tables (and
/// their indexes) whose oids a CTE `scope(oid)` the caller puts first
/// holds: why, a page about one table or one schema reads only their
/// statistics.
pub fn ctes_as(superuser: bool, version_num: i32, scoped: bool) -> String {
    let (heap, btree) = if scoped {
        (
            "JOIN scope ON scope.oid = c.oid",
            "JOIN scope ON scope.oid = i.indrelid",
        )
    } else {
        ("", "")
    };
    format!(
        "{}, {}, {}",
        col_stats(superuser, version_num, scoped),
        HEAP_NEED.replace("{scope}", heap),
        BTREE_NEED.replace("{scope}", btree)
    )
}

/// Tables: for each ordinary table whose columns all have statistics, the
/// pages its live rows need — tuple header (23 bytes, plus the null bitmap
/// when a column has nulls, aligned to 8), the average width of each column
/// weighted by its non-null fraction (aligned to 8), a 4-byte line pointer,
/// pages of 8 KiB less their 24-byte header filled to the table's
/// fillfactor. Temporary and TOAST tables are left out. Ends in `heap_need`;
/// needs `col_stats`.
const HEAP_NEED: &str = "
heap_cols AS (
  SELECT c.oid, count(*) AS ncols, count(s.relid) AS with_stats,
         sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width,
         bool_or(coalesce(s.null_frac, 0) > 0) AS has_nulls
  FROM pg_class c {scope}
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN col_stats s ON s.relid = c.oid AND s.attnum = a.attnum
  WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND n.nspname <> 'pg_toast'
  GROUP BY c.oid
), heap_est AS (
  SELECT c.oid, c.relpages::float8 AS pages, greatest(c.reltuples, 0)::float8 AS tuples,
         coalesce((SELECT o.option_value::int FROM pg_options_to_table(c.reloptions) o
                   WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
         8 * ceil((23 + CASE WHEN heap_cols.has_nulls THEN ceil(heap_cols.ncols / 8.0) ELSE 0 END) / 8.0)
           + 8 * ceil(heap_cols.data_width / 8.0) + 4 AS tuple_bytes
  FROM heap_cols JOIN pg_class c ON c.oid = heap_cols.oid
  WHERE heap_cols.with_stats = heap_cols.ncols
), heap_need AS (
  SELECT oid, pages, ceil(tuples / greatest(floor((current_setting('block_size')::int - 24)
           * fillfactor / 100.0 / tuple_bytes), 1)) AS needed
  FROM heap_est
)";

/// Btree indexes: for each btree index whose key and included columns are
/// plain columns with statistics, the leaf pages its entries need — 8-byte
/// index tuple header (plus a 4-byte null bitmap when a column has nulls),
/// the columns' average widths, aligned to 8, a 4-byte line pointer, pages
/// less their 24-byte header and 16-byte btree special space filled to the
/// index's fillfactor (90 by default), plus the metapage. Expression
/// indexes and columns without statistics are not estimable (no row).
/// Ends in `btree_need`; needs `col_stats`.
const BTREE_NEED: &str = "
btree_keys AS (
  SELECT i.indexrelid, i.indrelid, k.attnum
  FROM pg_index i {scope}
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
  JOIN pg_class tc ON tc.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = tc.relnamespace
  CROSS JOIN LATERAL unnest(i.indkey::int2[]) AS k(attnum)
  WHERE tc.relpersistence <> 't' AND n.nspname <> 'pg_toast'
), btree_cols AS (
  SELECT btree_keys.indexrelid, count(*) AS ncols, count(s.relid) AS with_stats,
         sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width,
         bool_or(coalesce(s.null_frac, 0) > 0) AS has_nulls
  FROM btree_keys
  LEFT JOIN col_stats s ON s.relid = btree_keys.indrelid AND s.attnum = btree_keys.attnum
                       AND btree_keys.attnum > 0
  GROUP BY btree_keys.indexrelid
), btree_est AS (
  SELECT ic.oid, ic.relpages::float8 AS pages, greatest(ic.reltuples, 0)::float8 AS tuples,
         coalesce((SELECT o.option_value::int FROM pg_options_to_table(ic.reloptions) o
                   WHERE o.option_name = 'fillfactor'), 90) AS fillfactor,
         8 * ceil((8 + CASE WHEN btree_cols.has_nulls THEN 4 ELSE 0 END + btree_cols.data_width) / 8.0) + 4
           AS tuple_bytes
  FROM btree_cols JOIN pg_class ic ON ic.oid = btree_cols.indexrelid
  WHERE btree_cols.with_stats = btree_cols.ncols AND ic.relpages > 0
), btree_need AS (
  SELECT oid, pages, 1 + ceil(tuples / greatest(floor((current_setting('block_size')::int - 24 - 16)
           * fillfactor / 100.0 / tuple_bytes), 1)) AS needed
  FROM btree_est
)";

/// The ratio of a `*_need` relation: 100 × the pages beyond the need over
/// all pages of its estimable relations; null when none is.
pub fn ratio_query(ctes: &str, relation: &str) -> String {
    format!(
        "WITH {ctes}
SELECT (100 * sum(greatest(pages - needed, 0)) / nullif(sum(pages), 0))::float8 FROM {relation}"
    )
}
