//! The maintenance plugin's `[maintenance]` section.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};

/// The keys of `[maintenance]`.
pub const KEYS: &[KeyDef] = &[
    k(
        "maintenance",
        "max_tasks",
        Some("2"),
        "maintenance tasks running at once in all databases (one per database at most), 1 to 64",
    ),
    k(
        "maintenance",
        "task_lock_timeout",
        Some("60"),
        "seconds a task may wait for its lock before it fails (0: wait for ever)",
    ),
    k(
        "maintenance",
        "statement_timeout",
        Some("30"),
        "seconds a query of the maintenance pages may run, 1 or more",
    ),
    k(
        "maintenance",
        "lock_timeout",
        Some("5"),
        "seconds a query of the maintenance pages may wait for a lock, 1 or more",
    ),
];

/// The validated `[maintenance]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Tasks running at once.
    pub max_tasks: u64,
    /// Seconds a task waits for its lock.
    pub task_lock_timeout: u64,
    /// Seconds a page query may run.
    pub statement_timeout: u64,
    /// Seconds a page query may wait for a lock.
    pub lock_timeout: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let default = |key| crate::config::schema::default_number(KEYS, key);
        Settings {
            max_tasks: default("max_tasks"),
            task_lock_timeout: default("task_lock_timeout"),
            statement_timeout: default("statement_timeout"),
            lock_timeout: default("lock_timeout"),
        }
    }
}

/// Validates `[maintenance]` into [`Settings`], serialized.
pub fn validate(c: &mut Values<'_>) -> Value {
    let s = Settings {
        max_tasks: c.int("maintenance", "max_tasks", 1, 64),
        task_lock_timeout: c.int("maintenance", "task_lock_timeout", 0, 86_400),
        statement_timeout: c.int("maintenance", "statement_timeout", 1, 86_400),
        lock_timeout: c.int("maintenance", "lock_timeout", 1, 86_400),
    };
    crate::api::section_value(&s)
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("maintenance").unwrap_or_default()
}
