//! PostgreSQL part of the dashboard set (facts 9.2) in one statement, so a
//! collection every 2 s costs one round trip.

use serde_json::{json, Value};

use crate::pg::Conn;

const SQL: &str = "
SELECT
  (SELECT buffers_alloc FROM pg_stat_bgwriter)::bigint,
  extract(epoch FROM clock_timestamp())::float8,
  (SELECT trunc(100 * sum(blks_hit) / nullif(sum(blks_hit + blks_read), 0))::float8 FROM pg_stat_database),
  (SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle')::bigint,
  current_setting('max_connections')::int,
  (SELECT count(*) FROM pg_database WHERE NOT datistemplate)::bigint,
  (SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database WHERE NOT datistemplate),
  to_char(now(), 'HH24:MI'),
  (SELECT coalesce(sum(s.xact_commit), 0) FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid WHERE NOT d.datistemplate)::bigint,
  (SELECT coalesce(sum(s.xact_rollback), 0) FROM pg_stat_database s JOIN pg_database d ON d.oid = s.datid WHERE NOT d.datistemplate)::bigint,
  date_trunc('seconds', now() - pg_postmaster_start_time())::text,
  version(),
  current_setting('data_directory'),
  current_setting('port'),
  (SELECT sum(pg_database_size(oid)) FROM pg_database WHERE NOT datistemplate)::bigint";

/// The key of the 9.x-only database size in bytes, which the 2.x answers
/// leave out (see [`split_v9`]).
pub const TOTAL_SIZE_BYTES: &str = "total_size_bytes";

/// The PostgreSQL fields of the dashboard, in their 2.x JSON types, plus
/// [`TOTAL_SIZE_BYTES`] for the 9.x sample (the same scan of
/// `pg_database_size`).
pub fn collect(conn: &mut Conn) -> Result<Value, postgres::Error> {
    let r = conn.client.query_one(SQL, &[])?;
    let now: f64 = r.get(1);
    Ok(json!({
        "buffers": { "nb": r.get::<_, Option<i64>>(0).unwrap_or(0), "time": now },
        "hitratio": r.get::<_, Option<f64>>(2),
        "active_backends": { "nb": r.get::<_, i64>(3), "time": now },
        "max_connections": r.get::<_, i32>(4),
        "databases": {
            "databases": r.get::<_, i64>(5),
            "total_size": r.get::<_, Option<String>>(6),
            "time": r.get::<_, String>(7),
            "total_commit": r.get::<_, i64>(8),
            "total_rollback": r.get::<_, i64>(9),
            "timestamp": now,
        },
        "pg_uptime": r.get::<_, String>(10),
        "pg_version": r.get::<_, String>(11),
        "pg_data": r.get::<_, String>(12),
        "pg_port": r.get::<_, String>(13),
        TOTAL_SIZE_BYTES: r.get::<_, Option<i64>>(14),
    }))
}
