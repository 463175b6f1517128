//! `[administration]`: the control command template.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};

/// The keys of `[administration]`.
pub const KEYS: &[KeyDef] = &[
    k(
        "administration",
        "pg_ctl",
        None,
        "a command with one %s replaced by the action",
    ),
];

/// The validated `[administration]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Control command template with `%s`.
    pub pg_ctl: Option<String>,
}

/// Validates the section (the plugin's `settings` hook).
pub fn validate(c: &mut Values<'_>) -> Value {
    let pg_ctl = c.opt_str("administration", "pg_ctl");
    if let Some(t) = &pg_ctl {
        if t.matches("%s").count() > 1 {
            c.fail(
                "administration",
                "pg_ctl",
                format!("'{t}' has more than one %s"),
            );
        }
    }
    crate::api::section_value(&Settings { pg_ctl })
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("administration").unwrap_or_default()
}
