//! `[monitoring]`: the keys, their defaults and their validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::schema::{k, KeyDef};
use crate::config::{Config, Values};

/// The keys of `[monitoring]`.
pub const KEYS: &[KeyDef] = &[
    k(
        "monitoring",
        "dbnames",
        Some("*"),
        "* or a comma separated list of database names",
    ),
    k(
        "monitoring",
        "collector_url",
        None,
        "an http:// or https:// URL",
    ),
    k(
        "monitoring",
        "probes",
        Some("*"),
        "* or a comma separated list of probe names",
    ),
    k(
        "monitoring",
        "scheduler_interval",
        Some("60"),
        "whole seconds, 1 or more",
    ),
    k(
        "monitoring",
        "queue_max_messages",
        Some("1440"),
        "payloads kept while the collector is away, 1 or more",
    ),
    k(
        "monitoring",
        "queue_max_age",
        Some("86400"),
        "seconds a payload is kept while the collector is away, 60 or more",
    ),
    k(
        "monitoring",
        "probe_intervals",
        Some("heap_bloat:3600, btree_bloat:3600"),
        "comma separated probe:seconds pairs; other probes run every scheduler_interval",
    ),
    k(
        "monitoring",
        "statement_timeout",
        Some("30"),
        "seconds any probe query may run, 1 or more",
    ),
    k(
        "monitoring",
        "lock_timeout",
        Some("5"),
        "seconds any probe query may wait for a lock, 1 or more",
    ),
    k(
        "monitoring",
        "history_retention",
        Some("21600"),
        "seconds a temBoard 9.x history document is kept (GET /monitoring/history, signed), 60 or more",
    ),
    k(
        "monitoring",
        "ssl_ca_cert_file",
        None,
        "path of an existing PEM file",
    ),
];

/// The validated `[monitoring]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `None` = all databases.
    pub dbnames: Option<Vec<String>>,
    /// Collector URL; no push when unset.
    pub collector_url: Option<String>,
    /// `None` = all probes.
    pub probes: Option<Vec<String>>,
    /// Seconds between runs.
    pub scheduler_interval: u64,
    /// CA file to verify the collector.
    pub ssl_ca_cert_file: Option<PathBuf>,
    /// Payloads kept at most (queue and pull history).
    pub queue_max_messages: u64,
    /// Seconds a payload is kept at most.
    pub queue_max_age: u64,
    /// Seconds a 9.x history document is kept.
    #[serde(default = "default_history_retention")]
    pub history_retention: u64,
    /// Seconds between two runs of a probe, for the probes that do not run
    /// every `scheduler_interval`.
    #[serde(default = "default_probe_intervals")]
    pub probe_intervals: Vec<(String, u64)>,
    /// `statement_timeout` of every probe query, seconds.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout: u64,
    /// `lock_timeout` of every probe query, seconds.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout: u64,
}

fn default_probe_intervals() -> Vec<(String, u64)> {
    vec![("heap_bloat".into(), 3600), ("btree_bloat".into(), 3600)]
}

fn default_statement_timeout() -> u64 {
    crate::config::schema::default_number(KEYS, "statement_timeout")
}

fn default_lock_timeout() -> u64 {
    crate::config::schema::default_number(KEYS, "lock_timeout")
}

impl Settings {
    /// Seconds between two runs of `probe`.
    pub fn interval_of(&self, probe: &str) -> u64 {
        self.probe_intervals
            .iter()
            .find(|(p, _)| p == probe)
            .map(|(_, s)| *s)
            .unwrap_or(self.scheduler_interval)
    }
}

fn default_history_retention() -> u64 {
    crate::config::schema::default_number(KEYS, "history_retention")
}

impl Default for Settings {
    /// The documented defaults.
    fn default() -> Self {
        let default = |key| crate::config::schema::default_number(KEYS, key);
        Settings {
            dbnames: None,
            collector_url: None,
            probes: None,
            scheduler_interval: default("scheduler_interval"),
            ssl_ca_cert_file: None,
            queue_max_messages: default("queue_max_messages"),
            queue_max_age: default("queue_max_age"),
            history_retention: default("history_retention"),
            probe_intervals: default_probe_intervals(),
            statement_timeout: default("statement_timeout"),
            lock_timeout: default("lock_timeout"),
        }
    }
}

/// Validates the section (the plugin's `settings` hook).
pub fn validate(c: &mut Values<'_>) -> Value {
    let collector_url = c.opt_str("monitoring", "collector_url");
    if let Some(u) = &collector_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            c.fail(
                "monitoring",
                "collector_url",
                format!("invalid URL '{u}': expected an http:// or https:// URL"),
            );
        }
    }
    crate::api::section_value(&Settings {
        dbnames: c.list_or_all("monitoring", "dbnames", None),
        collector_url,
        probes: c.list_or_all("monitoring", "probes", Some(super::probes::PROBES)),
        scheduler_interval: c.int("monitoring", "scheduler_interval", 1, 86_400),
        ssl_ca_cert_file: c.existing_file("monitoring", "ssl_ca_cert_file", false),
        queue_max_messages: c.int("monitoring", "queue_max_messages", 1, 10_000_000),
        queue_max_age: c.int("monitoring", "queue_max_age", 60, 366 * 86_400),
        history_retention: c.int("monitoring", "history_retention", 60, 31 * 86_400),
        probe_intervals: probe_intervals(c),
        statement_timeout: c.int("monitoring", "statement_timeout", 1, 86_400),
        lock_timeout: c.int("monitoring", "lock_timeout", 1, 86_400),
    })
}

/// `probe_intervals`: `name:seconds` pairs of known probes, seconds from 1
/// to a day.
fn probe_intervals(c: &mut Values<'_>) -> Vec<(String, u64)> {
    let text = c.string("monitoring", "probe_intervals");
    let mut out = vec![];
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once(':').and_then(|(p, s)| {
            let p = p.trim();
            let s = s.trim().parse::<u64>().ok().filter(|s| (1..=86_400).contains(s))?;
            super::probes::PROBES.contains(&p).then(|| (p.to_string(), s))
        });
        match parsed {
            Some(pair) => out.push(pair),
            None => c.fail(
                "monitoring",
                "probe_intervals",
                format!(
                    "invalid item '{item}': expected probe:seconds (1 to 86400) with a probe among {}",
                    super::probes::PROBES.join(", ")
                ),
            ),
        }
    }
    out
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("monitoring").unwrap_or_default()
}
