//! The temBoard 9.x discover document (facts 9.x 3.1) and its ETag, built
//! the same way by the http worker (`GET /discover`) and the `discover`
//! command, so both give the UI the same ETag.

use chrono::{TimeZone, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The version the 9.x UI is told: the contract this agent speaks, with our
/// own version as build metadata. The UI compares `agent_version` as a
/// string (its Prometheus configuration skips agents below `"8"`), so our
/// `0.x` alone would exclude the agent.
pub fn agent_version() -> String {
    format!("9.0.1+rs.{}", env!("CARGO_PKG_VERSION"))
}

/// The document from its `postgres` section, with its ETag: the SHA-256 of
/// its JSON text (serde_json's maps are sorted by key, so the text is
/// canonical and the ETag changes exactly when the document does).
pub fn document(postgres: Value, fqdn: &str, config: &Config) -> (Value, String) {
    let mut temboard = json!({
        "agent_version": agent_version(),
        "bin": std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        "configfile": config.configfile.display().to_string(),
        "plugins": config.temboard.plugins,
    });
    // What the agent is made of, as `<name>_version` like the Python agent's
    // `psycopg2_version`/`libpq_version`. No `python_version`: the UI's
    // About page would print "Python n/a"; without it the row is left out.
    for (name, version) in crate::build_info::components() {
        temboard[format!("{name}_version")] = json!(version);
    }
    let doc = json!({
        "postgres": postgres,
        "system": system(fqdn),
        "temboard": temboard,
    });
    let tag = crate::users::hex(&Sha256::digest(doc.to_string().as_bytes()));
    (doc, tag)
}

/// The `system` section (facts 3.1), from `/proc`, `/etc/os-release` and
/// `uname`.
pub fn system(fqdn: &str) -> Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |name: &str| {
        release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.trim_matches('"').to_string())
    };
    let distribution = match (field("NAME"), field("VERSION")) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        (Some(n), None) => format!("{n} n/a"),
        _ => "n/a".into(),
    };
    // The kernel's own boot time (`btime`), not now − uptime, which jitters
    // by a second from one call to the next and would change the ETag.
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<i64>().ok())
        })
        .and_then(|b| Utc.timestamp_opt(b, 0).single())
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string());
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    let uname = nix::sys::utsname::uname().ok();
    let un = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut m = Map::new();
    m.insert("fqdn".into(), json!(fqdn));
    m.insert("distribution".into(), json!(distribution));
    m.insert("cpu_count".into(), json!(crate::host::cpu_count()));
    if let Some(model) = cpu_model {
        m.insert("cpu_model".into(), json!(model));
    }
    m.insert("memory".into(), json!(kib("MemTotal")));
    m.insert("swap".into(), json!(kib("SwapTotal")));
    m.insert("hugepage".into(), json!(kib("Hugepagesize")));
    m.insert("os".into(), json!(un(|u| u.sysname())));
    m.insert("os_version".into(), json!(un(|u| u.release())));
    m.insert("arch".into(), json!(un(|u| u.machine())));
    m.insert(
        "hostname".into(),
        json!(nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default()),
    );
    m.insert("start_time".into(), json!(boot));
    Value::Object(m)
}
