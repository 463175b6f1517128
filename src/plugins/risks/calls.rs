//! The risks plugin's calls to the probe worker and what they observe: raw
//! facts read from PostgreSQL and the file systems, judged against the
//! thresholds by the scheduler ([`super::judge`]), never in the worker
//! that holds the connections.

use serde::{Deserialize, Serialize};

use crate::api::{PluginCall, Worker};

/// Calls of the risks plugin to the probe worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RisksCall {
    /// The instance-wide checks (cheap: catalog views, one connection).
    Instance {
        /// Per-query bounds, in seconds.
        statement_timeout: u64,
        /// Lock wait bound, in seconds.
        lock_timeout: u64,
    },
    /// The per-database scans (oldest tables, sequences, invalid
    /// indexes), one database at a time within the pool's cap.
    Databases {
        /// Per-query bounds, in seconds.
        statement_timeout: u64,
        /// Lock wait bound, in seconds.
        lock_timeout: u64,
        /// Tables per database whose statistics are sampled for
        /// `/metrics` (the largest; 0: none).
        #[serde(default)]
        tables_per_database: u64,
        /// Tables sampled in all databases together, at most (databases
        /// by name: the first ones get theirs).
        #[serde(default)]
        tables_in_all: u64,
    },
}

impl PluginCall for RisksCall {
    const PLUGIN: &'static str = "risks";
    const WORKER: Worker = Worker::Probe;
    type Reply = Observed;
}

/// What a call observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observed {
    /// The instance-wide checks' facts.
    Instance(Box<Instance>),
    /// Each database's scan, and the databases that could not be read.
    Databases {
        /// One per database read.
        scans: Vec<DatabaseScan>,
        /// What could not be read.
        failed: Vec<Failed>,
    },
}

/// One `/metrics` sample: family, labels, value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample(pub String, pub Vec<(String, String)>, pub f64);

/// A part that could not be read, and why (a permission, a timeout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failed {
    /// The check (`archiving`, `sequences`...).
    pub check: String,
    /// The database, for per-database scans.
    pub database: Option<String>,
    /// PostgreSQL's or the system's message.
    pub error: String,
}

/// What the instance-wide checks read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// `server_version_num`.
    pub version_num: i32,
    /// Whether the server is a standby.
    pub in_recovery: bool,
    /// `autovacuum_freeze_max_age`.
    pub freeze_max_age: i64,
    /// `autovacuum_multixact_freeze_max_age`.
    pub multixact_freeze_max_age: i64,
    /// `max_connections`.
    pub max_connections: i64,
    /// `superuser_reserved_connections` plus `reserved_connections` (16+).
    pub reserved_connections: i64,
    /// Client backends connected.
    pub client_backends: i64,
    /// `archive_mode`.
    pub archive_mode: String,
    /// Every database's ages.
    pub databases: Vec<DatabaseAge>,
    /// Every replication slot.
    pub slots: Vec<Slot>,
    /// `pg_stat_archiver`, when archiving is on.
    pub archiver: Option<Archiver>,
    /// On a primary, every connected standby.
    pub standbys: Vec<Standby>,
    /// On a standby, its WAL receiver (`None` on a primary).
    pub receiver: Option<Receiver>,
    /// Client transactions, oldest first (at most 10).
    pub transactions: Vec<Transaction>,
    /// Sessions idle in a transaction, longest idle first (at most 10).
    pub idle: Vec<Transaction>,
    /// Prepared transactions, oldest first (at most 10).
    pub prepared: Vec<Prepared>,
    /// The backend holding the horizon furthest back (its `backend_xmin`
    /// or `backend_xid`; walsenders of standbys with `hot_standby_feedback`
    /// included).
    pub oldest_xmin: Option<Transaction>,
    /// Checkpoints since the statistics were reset.
    pub checkpoints: Option<Checkpoints>,
    /// The file systems of the data directory, the WAL and tablespaces.
    pub disks: Vec<Disk>,
    /// What could not be read.
    pub failed: Vec<Failed>,
    /// The statistics views' samples for `/metrics`.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A database's transaction id and multixact ages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseAge {
    /// `datname`.
    pub datname: String,
    /// `age(datfrozenxid)`.
    pub xid_age: i64,
    /// `mxid_age(datminmxid)`.
    pub mxid_age: i64,
}

/// One replication slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// `slot_name`.
    pub slot_name: String,
    /// `physical` or `logical`.
    pub slot_type: String,
    /// The database of a logical slot.
    pub database: Option<String>,
    /// Whether a client streams from it now.
    pub active: bool,
    /// `wal_status`: `reserved`, `extended`, `unreserved`, `lost`.
    pub wal_status: Option<String>,
    /// `safe_wal_size` (bytes before the slot is lost; null without
    /// `max_slot_wal_keep_size`).
    pub safe_wal_size: Option<i64>,
    /// WAL bytes kept for it (from `restart_lsn` to now).
    pub retained_bytes: Option<i64>,
    /// `age(xmin)`.
    pub xmin_age: Option<i64>,
    /// `age(catalog_xmin)`.
    pub catalog_xmin_age: Option<i64>,
    /// Seconds since it became inactive (`inactive_since`, 17+).
    pub inactive_seconds: Option<f64>,
}

/// `pg_stat_archiver` and the segments waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Archiver {
    /// `archived_count`.
    pub archived_count: i64,
    /// `last_archived_wal`.
    pub last_archived_wal: Option<String>,
    /// Seconds since `last_archived_time`.
    pub last_archived_seconds: Option<f64>,
    /// `failed_count`.
    pub failed_count: i64,
    /// `last_failed_wal`.
    pub last_failed_wal: Option<String>,
    /// Seconds since `last_failed_time`.
    pub last_failed_seconds: Option<f64>,
    /// `.ready` files in `pg_wal/archive_status` (`None`: the role may not
    /// list it: superuser or `pg_monitor`).
    pub ready: Option<i64>,
}

/// A standby as its primary sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standby {
    /// `application_name`.
    pub application_name: String,
    /// `client_addr` (null over a UNIX socket).
    pub client_addr: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `sync_state`.
    pub sync_state: Option<String>,
    /// Bytes not yet written, flushed, replayed by the standby.
    pub write_lag_bytes: Option<i64>,
    /// Bytes not yet flushed.
    pub flush_lag_bytes: Option<i64>,
    /// Bytes not yet replayed.
    pub replay_lag_bytes: Option<i64>,
    /// `write_lag`, seconds.
    pub write_lag_seconds: Option<f64>,
    /// `flush_lag`, seconds.
    pub flush_lag_seconds: Option<f64>,
    /// `replay_lag`, seconds.
    pub replay_lag_seconds: Option<f64>,
}

/// A standby's WAL receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receiver {
    /// Whether a WAL receiver runs.
    pub running: bool,
    /// `status` (`streaming`, `waiting`...); null without a receiver or
    /// for a role without pg_read_all_stats.
    pub status: Option<String>,
    /// Seconds since the last message from the primary.
    pub last_message_seconds: Option<f64>,
    /// Seconds since the last replayed transaction's commit.
    pub replay_delay_seconds: Option<f64>,
    /// Whether `primary_conninfo` is set (null: hidden from the role): a
    /// standby without it restores from the archive only, by design.
    pub primary_conninfo_set: Option<bool>,
}

/// A backend holding a transaction (or the horizon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// `pid`.
    pub pid: i32,
    /// `datname`.
    pub datname: Option<String>,
    /// `usename`.
    pub usename: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `backend_type`.
    pub backend_type: Option<String>,
    /// Seconds since `xact_start`.
    pub xact_seconds: Option<f64>,
    /// Seconds since `state_change`.
    pub state_seconds: Option<f64>,
    /// How far back it holds VACUUM's horizon: the older of
    /// `age(backend_xmin)` and `age(backend_xid)` (a transaction that
    /// wrote holds it by its id even while idle, without a snapshot).
    pub xmin_age: Option<i64>,
}

/// A prepared transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    /// `gid`.
    pub gid: String,
    /// `database`.
    pub database: String,
    /// `owner`.
    pub owner: String,
    /// Seconds since it was prepared.
    pub seconds: f64,
    /// `age(transaction)`.
    pub xid_age: i64,
}

/// Checkpoint counters (`pg_stat_checkpointer` on 17+, `pg_stat_bgwriter`
/// before).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoints {
    /// Checkpoints started by `checkpoint_timeout`.
    pub timed: i64,
    /// Checkpoints requested (WAL volume past `max_wal_size`, commands).
    pub requested: i64,
    /// Which view they come from.
    pub source: String,
}

/// One file system holding PostgreSQL's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// What it holds (`data_directory`, `pg_wal`, `tablespace <name>`),
    /// several when they share the file system.
    pub holds: Vec<String>,
    /// The first path of what it holds.
    pub path: String,
    /// Size, bytes.
    pub total_bytes: i64,
    /// Free for PostgreSQL's user, bytes (`f_bavail`).
    pub free_bytes: i64,
}

/// What one database's scan read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseScan {
    /// `datname`.
    pub datname: String,
    /// The tables with the oldest `relfrozenxid` (at most 5).
    pub oldest_tables: Vec<OldTable>,
    /// Sequences by share used, highest first (at most 10).
    pub sequences: Vec<Sequence>,
    /// Sequences without a value to judge: never used, or the role may
    /// not read them (`pg_sequences` shows both as null).
    pub sequences_without_value: i64,
    /// Invalid indexes (at most 20) and their count.
    pub invalid_indexes: Vec<String>,
    /// Number of invalid indexes.
    pub invalid_count: i64,
    /// Its largest tables' statistics for `/metrics`.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A table and its ages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OldTable {
    /// Qualified name.
    pub name: String,
    /// `age(relfrozenxid)`.
    pub xid_age: i64,
    /// `mxid_age(relminmxid)`.
    pub mxid_age: i64,
}

/// A sequence and how much of its range is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Qualified name.
    pub name: String,
    /// `last_value`.
    pub last_value: i64,
    /// The highest value it may reach: its own `max_value`, or less when
    /// the column it feeds is narrower (`int4` fed by a `bigint` sequence).
    pub limit: i64,
    /// The column it feeds, when owned by one.
    pub column: Option<String>,
    /// Share of the range used, percent.
    pub percent: f64,
}
