//! Setting values the way the 2.x pgconf plugin shows and checks them
//! (facts 11.1 and 11.3): unit conversion, JSON typing, and the parsing of
//! `postgresql.conf`-style files for `file_val` and `auto_val`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Bytes per memory unit, 1024-based.
fn memory_unit(u: &str) -> Option<f64> {
    Some(match u {
        "B" => 1.0,
        "kB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024f64.powi(3),
        "TB" => 1024f64.powi(4),
        _ => return None,
    })
}

/// Milliseconds per time unit.
fn time_unit(u: &str) -> Option<f64> {
    Some(match u {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    })
}

/// Splits a setting unit such as `8kB` into (8, "kB").
fn split_unit(unit: &str) -> (f64, &str) {
    let digits: String = unit.chars().take_while(|c| c.is_ascii_digit()).collect();
    let factor = digits.parse::<f64>().unwrap_or(1.0).max(1.0);
    (factor, &unit[digits.len()..])
}

/// Converts `value` (e.g. `"128MB"`, `"30s"`, `"42"`) to a number in the
/// setting's `unit` (e.g. `8kB`): `None` when it is not a number or its unit
/// does not fit. Unitless values are already in the setting's unit.
pub fn to_unit(value: &str, unit: Option<&str>) -> Option<f64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let suffix = suffix.trim();
    if suffix.is_empty() {
        return Some(n);
    }
    let (factor, base) = split_unit(unit?);
    if let (Some(from), Some(to)) = (memory_unit(suffix), memory_unit(base)) {
        return Some(n * from / (to * factor));
    }
    if let (Some(from), Some(to)) = (time_unit(suffix), time_unit(base)) {
        return Some(n * from / (to * factor));
    }
    None
}

/// Settings never converted (their text is octal).
pub fn never_formatted(name: &str) -> bool {
    matches!(name, "unix_socket_permissions" | "log_file_mode")
}

/// Whether a setting's value may hold a secret (a password in a conninfo,
/// a command line with credentials): its values are never recorded in a
/// notification, which the agent key alone can read.
pub fn may_hold_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("conninfo")
        || n.contains("password")
        || n.contains("passphrase")
        || n.contains("secret")
        || n.ends_with("_command")
}

/// Settings PostgreSQL declares `GUC_LIST_INPUT`, with whether it also
/// declares `GUC_LIST_QUOTE` (elements are identifiers, double-quoted when
/// needed). One table, documented in docs/api.md.
///
/// Why it matters: `ALTER SYSTEM SET x TO 'a,b'` gives a list setting *one*
/// element; for the `GUC_LIST_QUOTE` ones PostgreSQL then writes
/// `'"a,b"'`, and a server with `shared_preload_libraries` so written does
/// not start. Written element by element (`TO 'a', 'b'`) they round-trip.
/// `synchronous_standby_names` is list input too, but has its own grammar
/// (`FIRST 2 (s1, s2)`) that splitting at commas would break: it is written
/// as one string, which its parser reads the same.
pub const LIST_SETTINGS: &[(&str, bool)] = &[
    ("datestyle", false),
    ("debug_io_direct", false),
    ("listen_addresses", false),
    ("local_preload_libraries", true),
    ("log_destination", false),
    ("oauth_validator_libraries", true),
    ("restrict_nonsystem_relation_kind", false),
    ("search_path", true),
    ("session_preload_libraries", true),
    ("shared_preload_libraries", true),
    ("synchronized_standby_slots", false),
    ("temp_tablespaces", true),
    ("unix_socket_directories", true),
    ("wal_consistency_checking", false),
];

/// The elements of a value of a list setting, as `ALTER SYSTEM` must get
/// them; `None` for other settings. Elements are separated by commas outside
/// double quotes; for `GUC_LIST_QUOTE` settings, surrounding double quotes
/// are removed (`""` inside stands for one `"`), as PostgreSQL's own
/// splitting does.
pub fn list_elements(name: &str, value: &str) -> Option<Vec<String>> {
    let lower = name.to_ascii_lowercase();
    let (_, quoted) = LIST_SETTINGS.iter().find(|(n, _)| *n == lower)?;
    let mut out = vec![];
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
                if !quoted {
                    cur.push('"');
                }
            }
            '"' => {
                in_quotes = !in_quotes;
                if !quoted {
                    cur.push('"');
                }
            }
            ',' if !in_quotes => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    Some(
        out.into_iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect(),
    )
}

/// 2.x "formatting" of a value for JSON: integer → int after conversion to
/// the unit (integer division), real → float, others string; empty → null.
pub fn typed(name: &str, vartype: &str, unit: Option<&str>, raw: Option<&str>) -> Value {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Value::Null;
    };
    if never_formatted(name) {
        return json!(raw);
    }
    match vartype {
        "integer" => match to_unit(raw, unit) {
            Some(n) => json!(n.trunc() as i64),
            None => json!(raw),
        },
        "real" => match to_unit(raw, unit) {
            Some(n) => json!(n),
            None => json!(raw),
        },
        _ => json!(raw),
    }
}

/// One assignment found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Value with quotes removed (booleans `true`/`false` kept as written).
    pub value: String,
}

/// Parses `name = value [# comment]` lines (the `=` is optional, as in
/// PostgreSQL); later assignments win. Returns also the include directives.
pub fn parse_conf(text: &str) -> (HashMap<String, Assignment>, Vec<(String, String)>) {
    let mut values = HashMap::new();
    let mut includes = vec![];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = line[name_end..].trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut out = String::new();
            let mut chars = quoted.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\'' if chars.peek() == Some(&'\'') => {
                        out.push('\'');
                        chars.next();
                    }
                    '\'' => break,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    }
                    c => out.push(c),
                }
            }
            out
        } else {
            rest.split('#').next().unwrap_or("").trim().to_string()
        };
        match name {
            "include" | "include_if_exists" | "include_dir" => {
                includes.push((name.to_string(), value))
            }
            _ => {
                values.insert(name.to_string(), Assignment { value });
            }
        }
    }
    (values, includes)
}

/// Values of `config_file` and the files it includes (one level, as 2.x:
/// includes inside included files are not followed).
pub fn file_values(config_file: &Path) -> HashMap<String, Assignment> {
    let text = std::fs::read_to_string(config_file).unwrap_or_default();
    let (mut values, includes) = parse_conf(&text);
    let dir = config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };
    for (kind, target) in includes {
        let path = resolve(&target);
        let files: Vec<PathBuf> = if kind == "include_dir" {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&path)
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.extension().is_some_and(|x| x == "conf")
                                && !p
                                    .file_name()
                                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                        })
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        } else {
            vec![path]
        };
        for f in files {
            let (more, _) = parse_conf(&std::fs::read_to_string(&f).unwrap_or_default());
            values.extend(more);
        }
    }
    values
}

/// A boolean as PostgreSQL accepts it, normalized to `on`/`off`.
pub fn normalize_bool(v: &str) -> Option<&'static str> {
    match v.trim().to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" | "t" | "y" => Some("on"),
        "off" | "false" | "no" | "0" | "f" | "n" => Some("off"),
        _ => None,
    }
}

/// Removes one pair of surrounding quotes (`'x'` or `"x"`).
pub fn strip_outer_quotes(v: &str) -> &str {
    crate::config::layers::strip_quotes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_holding_settings() {
        for n in [
            "primary_conninfo",
            "ssl_passphrase_command",
            "archive_command",
            "restore_command",
            "archive_cleanup_command",
            "recovery_end_command",
        ] {
            assert!(may_hold_secret(n), "{n}");
        }
        for n in ["work_mem", "shared_preload_libraries", "search_path"] {
            assert!(!may_hold_secret(n), "{n}");
        }
    }

    #[test]
    fn list_settings_split_like_postgresql() {
        let l = |n: &str, v: &str| list_elements(n, v);
        assert_eq!(
            l(
                "shared_preload_libraries",
                "pg_stat_statements,auto_explain"
            ),
            Some(vec!["pg_stat_statements".into(), "auto_explain".into()])
        );
        assert_eq!(
            l("search_path", "\"$user\", public, \"a,\"\"b\""),
            Some(vec!["$user".into(), "public".into(), "a,\"b".into()])
        );
        assert_eq!(
            l("listen_addresses", "localhost, 10.0.0.1"),
            Some(vec!["localhost".into(), "10.0.0.1".into()])
        );
        assert_eq!(l("temp_tablespaces", ""), Some(vec![]));
        assert_eq!(l("synchronous_standby_names", "FIRST 2 (a, b)"), None);
        assert_eq!(l("work_mem", "4MB"), None);
    }

    #[test]
    fn units() {
        assert_eq!(to_unit("128MB", Some("8kB")), Some(16384.0));
        assert_eq!(to_unit("1GB", Some("MB")), Some(1024.0));
        assert_eq!(to_unit("4096", Some("8kB")), Some(4096.0));
        assert_eq!(to_unit("1min", Some("ms")), Some(60000.0));
        assert_eq!(to_unit("90s", Some("min")), Some(1.5));
        assert_eq!(to_unit("5min", Some("s")), Some(300.0));
        assert_eq!(to_unit("0.9", None), Some(0.9));
        assert_eq!(to_unit("12 MB", Some("kB")), Some(12288.0));
        assert_eq!(to_unit("lots", Some("kB")), None);
        assert_eq!(to_unit("1parsec", Some("kB")), None);
        assert_eq!(to_unit("1s", Some("kB")), None);
    }

    #[test]
    fn typing() {
        assert_eq!(
            typed("shared_buffers", "integer", Some("8kB"), Some("128MB")),
            json!(16384)
        );
        assert_eq!(
            typed("shared_buffers", "integer", Some("8kB"), Some("16384")),
            json!(16384)
        );
        assert_eq!(
            typed("checkpoint_timeout", "integer", Some("s"), Some("90s")),
            json!(90)
        );
        assert_eq!(
            typed("checkpoint_completion_target", "real", None, Some("0.9")),
            json!(0.9)
        );
        assert_eq!(typed("autovacuum", "bool", None, Some("on")), json!("on"));
        assert_eq!(
            typed("unix_socket_permissions", "integer", None, Some("0777")),
            json!("0777")
        );
        assert_eq!(
            typed("listen_addresses", "string", None, Some("")),
            Value::Null
        );
        assert_eq!(typed("x", "integer", None, None), Value::Null);
    }

    #[test]
    fn conf_files() {
        let (v, inc) = parse_conf(
            "# c\nshared_buffers = 128MB # comment\nwork_mem='4MB'\nsearch_path = '\"$user\", public'\nDateStyle 'iso, mdy'\nlisten_addresses = ''\ninclude_dir 'conf.d'\ninclude_if_exists = 'extra.conf'\nshared_buffers = 256MB\nmsg = 'it''s # not a comment'\n",
        );
        assert_eq!(v["shared_buffers"].value, "256MB");
        assert_eq!(v["work_mem"].value, "4MB");
        assert_eq!(v["search_path"].value, "\"$user\", public");
        assert_eq!(v["DateStyle"].value, "iso, mdy");
        assert!(
            !v.contains_key("datestyle"),
            "names are case-sensitive as in 2.x"
        );
        assert_eq!(v["listen_addresses"].value, "");
        assert_eq!(v["msg"].value, "it's # not a comment");
        assert_eq!(
            inc,
            vec![
                ("include_dir".into(), "conf.d".into()),
                ("include_if_exists".into(), "extra.conf".into())
            ]
        );
    }

    #[test]
    fn included_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(
            dir.path().join("postgresql.conf"),
            "work_mem = 1MB\ninclude_dir = 'conf.d'\ninclude 'more.conf'\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("conf.d/a.conf"), "work_mem = 2MB\n").unwrap();
        std::fs::write(dir.path().join("conf.d/.hidden.conf"), "work_mem = 9MB\n").unwrap();
        std::fs::write(
            dir.path().join("more.conf"),
            "maintenance_work_mem = 64MB\n",
        )
        .unwrap();
        let v = file_values(&dir.path().join("postgresql.conf"));
        assert_eq!(v["work_mem"].value, "2MB");
        assert_eq!(v["maintenance_work_mem"].value, "64MB");
    }

    #[test]
    fn booleans() {
        assert_eq!(normalize_bool("ON"), Some("on"));
        assert_eq!(normalize_bool("false"), Some("off"));
        assert_eq!(normalize_bool("maybe"), None);
    }
}
