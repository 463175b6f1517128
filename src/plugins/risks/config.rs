//! `[risks]`: how often the checks run and the thresholds they judge by,
//! each with a documented default (docs/configuration.md). Sizes are in
//! megabytes, durations in seconds, ages in transaction ids.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::keydef::{k, KeyDef};
use crate::config::{Config, Values};

/// One key: (name, default, lowest, highest).
type Key = (&'static str, u64, u64, u64);

/// 2^31: the transaction id (and multixact) distance at which PostgreSQL
/// would wrap around; it stops assigning ids 3 million before it.
pub const WRAP_LIMIT: u64 = 1 << 31;

/// Declares [`BOUNDS`] and [`KEYS`] from one table, so a key's default is
/// written once: (name, default, lowest, highest, what it allows).
macro_rules! risks_keys {
    ($(($name:ident, $default:literal, $min:expr, $max:expr, $allowed:literal)),* $(,)?) => {
        /// Every key of the section with its bounds, in the order documented.
        const BOUNDS: &[Key] = &[$((stringify!($name), $default, $min, $max)),*];

        /// The keys of `[risks]` (and `[patroni] url`, read with them).
        pub const KEYS: &[KeyDef] = &[
            $(k("risks", stringify!($name), Some(stringify!($default)), $allowed),)*
            k("patroni", "url", None, "Patroni's REST API: http:// to a loopback address, or https://"),
        ];
    };
}

risks_keys! {
    (interval, 60, 1, 86_400, "whole seconds, 1 to 86400"),
    (tables_interval, 3600, 1, 604_800, "whole seconds, 1 to 604800"),
    (statement_timeout, 30, 1, 3_600, "whole seconds, 1 to 3600"),
    (lock_timeout, 1, 1, 3_600, "whole seconds, 1 to 3600"),
    (tables_per_database, 50, 0, 10_000, "tables, 0 (none) to 10000"),
    (tables_in_all, 1000, 0, 100_000, "tables, 0 (none) to 100000"),
    (xid_age_warning, 500000000, 1, WRAP_LIMIT, "transaction ids, 1 to 2147483648"),
    (xid_age_critical, 1000000000, 1, WRAP_LIMIT, "transaction ids, 1 to 2147483648"),
    (slot_retained_warning_mb, 10240, 1, 1 << 40, "megabytes, 1 or more"),
    (slot_retained_critical_mb, 51200, 1, 1 << 40, "megabytes, 1 or more"),
    (slot_inactive_warning, 3600, 1, 31_536_000, "whole seconds, 1 or more"),
    (archive_failing_critical, 3600, 1, 31_536_000, "whole seconds, 1 or more"),
    (archive_ready_warning, 100, 1, 100_000_000, "a whole number of files, 1 or more"),
    (archive_ready_critical, 1000, 1, 100_000_000, "a whole number of files, 1 or more"),
    (replication_lag_warning, 60, 1, 31_536_000, "whole seconds, 1 or more"),
    (replication_lag_critical, 600, 1, 31_536_000, "whole seconds, 1 or more"),
    (replication_lag_warning_mb, 1024, 1, 1 << 40, "megabytes, 1 or more"),
    (replication_lag_critical_mb, 10240, 1, 1 << 40, "megabytes, 1 or more"),
    (standby_forget_after, 86400, 1, 31_536_000, "whole seconds, 1 or more"),
    (transaction_warning, 3600, 1, 31_536_000, "whole seconds, 1 or more"),
    (transaction_critical, 21600, 1, 31_536_000, "whole seconds, 1 or more"),
    (idle_in_transaction_warning, 300, 1, 31_536_000, "whole seconds, 1 or more"),
    (idle_in_transaction_critical, 3600, 1, 31_536_000, "whole seconds, 1 or more"),
    (prepared_warning, 300, 1, 31_536_000, "whole seconds, 1 or more"),
    (horizon_age_warning, 100000000, 1, WRAP_LIMIT, "transaction ids, 1 to 2147483648"),
    (horizon_age_critical, 500000000, 1, WRAP_LIMIT, "transaction ids, 1 to 2147483648"),
    (sequence_warning_percent, 75, 1, 100, "a percentage, 1 to 100"),
    (sequence_critical_percent, 90, 1, 100, "a percentage, 1 to 100"),
    (connections_warning_percent, 80, 1, 100, "a percentage, 1 to 100"),
    (connections_critical_percent, 95, 1, 100, "a percentage, 1 to 100"),
    (checkpoints_requested_warning_percent, 50, 1, 100, "a percentage, 1 to 100"),
    (disk_free_warning_percent, 15, 0, 100, "a percentage, 0 to 100"),
    (disk_free_critical_percent, 5, 0, 100, "a percentage, 0 to 100"),
    (disk_full_warning_hours, 24, 1, 8_760, "whole hours, 1 to 8760"),
    (disk_full_critical_hours, 4, 1, 8_760, "whole hours, 1 to 8760"),
}



/// The validated `[risks]` section: every key by name (the checks read
/// them through [`Settings::get`], so a key is declared once, in
/// [`BOUNDS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Values by key.
    pub values: std::collections::BTreeMap<String, u64>,
    /// `[patroni] url`.
    #[serde(default)]
    pub patroni_url: Option<String>,
}

impl Default for Settings {
    /// The documented defaults.
    fn default() -> Self {
        Settings {
            values: BOUNDS.iter().map(|(k, d, _, _)| (k.to_string(), *d)).collect(),
            patroni_url: None,
        }
    }
}

impl Settings {
    /// A key's value (its default when absent, which only a settings
    /// document of an older agent can be).
    pub fn get(&self, key: &str) -> u64 {
        self.values
            .get(key)
            .copied()
            .or_else(|| BOUNDS.iter().find(|(k, ..)| *k == key).map(|(_, d, ..)| *d))
            .unwrap_or(0)
    }

    /// A (warning, critical) pair.
    pub fn pair(&self, warning: &str, critical: &str) -> (u64, u64) {
        (self.get(warning), self.get(critical))
    }
}

/// Validates the section (the plugin's `settings` hook); a warning
/// threshold past its critical one is an error naming both.
pub fn validate(c: &mut Values<'_>) -> Value {
    let values: std::collections::BTreeMap<String, u64> = BOUNDS
        .iter()
        .map(|(key, _, min, max)| (key.to_string(), c.int("risks", key, *min, *max)))
        .collect();
    for (key, v) in &values {
        if !key.contains("_warning") {
            continue;
        }
        let critical = key.replacen("_warning", "_critical", 1);
        let Some(&c_value) = values.get(&critical) else {
            continue;
        };
        // Free space warns *above* its critical value, time to full too;
        // the other thresholds warn below it.
        let reversed = key.starts_with("disk_");
        if (reversed && *v < c_value) || (!reversed && *v > c_value) {
            let relation = if reversed { "at least" } else { "at most" };
            c.fail(
                "risks",
                key,
                format!("invalid value '{v}': expected {relation} {critical} ({c_value})"),
            );
        }
    }
    let patroni_url = c.opt_str("patroni", "url");
    if let Some(url) = &patroni_url {
        if let Err(e) = check_url(url) {
            c.fail("patroni", "url", format!("invalid value '{url}': {e}"));
        }
    }
    crate::api::section_value(&Settings { values, patroni_url })
}

/// The section in force.
pub fn settings(config: &Config) -> Settings {
    config.section("risks").unwrap_or_default()
}

/// Whether `[patroni] url` may be asked: https, or http to a loopback
/// address (Patroni's default), never plain http across a network.
pub fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        let authority = r.split(['/', '?']).next().unwrap_or_default();
        return if authority.is_empty() {
            Err("no host".into())
        } else if authority.contains('@') {
            Err("no credentials in the URL: they would show in findings and metrics".into())
        } else {
            Ok(())
        };
    } else if let Some(r) = url.strip_prefix("http://") {
        r
    } else {
        return Err("expected an http:// (loopback only) or https:// URL".into());
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("no credentials in the URL: they would show in findings and metrics".into());
    }
    let host = authority;
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "http:// only to a loopback address ({host} is not): use https:// for a remote Patroni"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_bounds_and_the_same_default() {
        let numbers: Vec<_> = KEYS.iter().filter(|k| k.section == "risks").collect();
        assert_eq!(numbers.len(), BOUNDS.len());
        for (def, (key, default, min, max)) in numbers.into_iter().zip(BOUNDS) {
            assert_eq!(def.key, *key);
            assert_eq!(def.default, Some(default.to_string().as_str()), "{key}");
            assert!((min..=max).contains(&default), "{key}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("http://127.0.0.1:8008").is_ok());
        assert!(check_url("http://localhost:8008/").is_ok());
        assert!(check_url("http://[::1]:8008").is_ok());
        assert!(check_url("https://db1.example.org:8008").is_ok());
        assert!(check_url("http://db1.example.org:8008").is_err());
        assert!(check_url("http://10.0.0.1:8008").is_err());
        assert!(check_url("ftp://127.0.0.1").is_err());
        assert!(check_url("https://admin:secret@db1.example.org:8008").is_err());
        assert!(check_url("http://admin:secret@127.0.0.1:8008").is_err());
    }
}
