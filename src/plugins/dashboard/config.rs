//! `[dashboard]`: the keys, their defaults and their validation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};

/// The keys of `[dashboard]`.
pub const KEYS: &[KeyDef] = &[
    k(
        "dashboard",
        "scheduler_interval",
        Some("2"),
        "whole seconds, 1 or more",
    ),
    k(
        "dashboard",
        "history_length",
        Some("150"),
        "a whole number, 1 or more",
    ),
];

/// The validated `[dashboard]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Seconds between collections.
    pub scheduler_interval: u64,
    /// Stored entries.
    pub history_length: u64,
}

impl Default for Settings {
    /// The documented defaults.
    fn default() -> Self {
        let default = |key| crate::config::schema::default_number(KEYS, key);
        Settings {
            scheduler_interval: default("scheduler_interval"),
            history_length: default("history_length"),
        }
    }
}

/// Validates the section (the plugin's `settings` hook).
pub fn validate(c: &mut Values<'_>) -> Value {
    crate::api::section_value(&Settings {
        scheduler_interval: c.int("dashboard", "scheduler_interval", 1, 86_400),
        history_length: c.int("dashboard", "history_length", 1, 1_000_000),
    })
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("dashboard").unwrap_or_default()
}
