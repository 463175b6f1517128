//! The monitoring plugin's probe catalogue: every probe, which run per
//! database, in one contract only, or on the host.

/// Every probe, as named by the 2.x agent (the one list: configuration
/// validation, collection and routes use it).
pub const PROBES: &[&str] = &[
    "sessions",
    "xacts",
    "locks",
    "blocks",
    "bgwriter",
    "db_size",
    "tblspc_size",
    "filesystems_size",
    "cpu",
    "process",
    "memory",
    "loadavg",
    "wal_files",
    "replication",
    "replication_lag",
    "temp_files_size_delta",
    "replication_connection",
    "heap_bloat",
    "btree_bloat",
];

/// Probes run once per database, each on a connection of its own (the
/// others run once, on the agent's connection, and cover every database
/// through the catalogs). They run apart from the collection, so a slow
/// estimate on a big database delays nothing else.
pub const PER_DATABASE: &[&str] = &["heap_bloat", "btree_bloat"];

/// Probes of the 2.x payload only (9.x dropped the broken `replication`).
pub const V2_ONLY: &[&str] = &["replication"];

/// Probes of the 9.x document only: the 2.x payload pushed to a 2.x
/// collector keeps exactly its probes.
pub const V9_ONLY: &[&str] = &[
    "replication_lag",
    "temp_files_size_delta",
    "replication_connection",
    "heap_bloat",
    "btree_bloat",
];

/// Probes computed from the host rather than PostgreSQL.
pub const HOST_PROBES: [&str; 5] = ["filesystems_size", "cpu", "process", "memory", "loadavg"];

/// Whether a probe runs in PostgreSQL (every probe not read from the host):
/// derived from the two lists, so a new probe cannot be left out of either.
pub fn is_sql_probe(name: &str) -> bool {
    PROBES.contains(&name) && !HOST_PROBES.contains(&name)
}

/// Agent time as 2.x writes it in host probes: `YYYY-MM-DD HH:MM:SS +0000` (UTC).
pub fn agent_datetime() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S +0000")
        .to_string()
}
