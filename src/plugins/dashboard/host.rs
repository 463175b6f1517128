//! The dashboard metric set (facts 9.2): host metrics read from /proc and the
//! OS here, PostgreSQL metrics from the probe worker; assembled in the 2.x
//! shape. Used by the scheduler (periodic collection) and by the http worker
//! (live routes). Never connects to PostgreSQL itself.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub use crate::host::{parse_cpu, read_cpu, CpuTimes};

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// CPU use between two readings, as 2.x: user = user+nice, system =
/// system+irq+softirq, idle, iowait, steal; percentages of their sum, 1 dp.
pub fn cpu_percent(a: &CpuTimes, b: &CpuTimes) -> Value {
    let d = |x: u64, y: u64| y.saturating_sub(x) as f64;
    let user = d(a.user + a.nice, b.user + b.nice);
    let system = d(a.system + a.irq + a.softirq, b.system + b.irq + b.softirq);
    let idle = d(a.idle, b.idle);
    let iowait = d(a.iowait, b.iowait);
    let steal = d(a.steal, b.steal);
    let total = user + system + idle + iowait + steal;
    let pct = |x: f64| {
        if total > 0.0 {
            round1(x / total * 100.0)
        } else {
            0.0
        }
    };
    json!({ "user": pct(user), "system": pct(system), "idle": pct(idle), "iowait": pct(iowait), "steal": pct(steal) })
}

/// CPU use over a 0.1 s sample (live routes, first collection).
pub fn cpu_sampled() -> Value {
    let a = read_cpu().unwrap_or_default();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let b = read_cpu().unwrap_or_default();
    cpu_percent(&a, &b)
}

/// 1-minute load average.
pub fn loadaverage() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// A `/proc/meminfo` field in kB (0 when absent).
fn meminfo_kb(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Parses /proc/meminfo into the 2.x memory object.
pub fn parse_memory(meminfo: &str) -> Value {
    let kb = |key: &str| meminfo_kb(meminfo, key);
    let total = kb("MemTotal:");
    let free = kb("MemFree:");
    let cached = kb("Cached:");
    let active = total.saturating_sub(free).saturating_sub(cached);
    let pct = |x: u64| {
        if total > 0 {
            round1(x as f64 / total as f64 * 100.0)
        } else {
            0.0
        }
    };
    json!({ "total": total, "free": pct(free), "active": pct(active), "cached": pct(cached) })
}

/// The 9.x `memory.*_bytes`: the same three amounts as [`parse_memory`],
/// in bytes (9.0.1 sent kB under these names, facts 14.22).
pub fn parse_memory_bytes(meminfo: &str) -> Value {
    let kb = |key: &str| meminfo_kb(meminfo, key);
    let (total, free, cached) = (kb("MemTotal:"), kb("MemFree:"), kb("Cached:"));
    let active = total.saturating_sub(free).saturating_sub(cached);
    json!({ "free_bytes": free * 1024, "active_bytes": active * 1024, "cached_bytes": cached * 1024 })
}

/// Memory of the host now.
pub fn memory() -> Value {
    parse_memory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

/// Kernel release (`platform.release()`).
pub fn os_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `"<system> <release>"`, as the single-metric route of 2.x shows it.
pub fn os_version_full() -> String {
    let system = nix::sys::utsname::uname()
        .map(|u| u.sysname().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "Linux".into());
    format!("{system} {}", os_release())
}

/// Distribution name and version, like 2.x (`"debian 12.11"`).
pub fn linux_distribution() -> String {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        os.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let id = field("ID");
    let version = match std::fs::read_to_string("/etc/debian_version") {
        Ok(v) if id == "debian" => v.trim().to_string(),
        _ => field("VERSION_ID"),
    };
    format!("{id} {version}").trim().to_string()
}

/// `{model name: count}` from /proc/cpuinfo.
pub fn cpu_models() -> Value {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut models: BTreeMap<String, u64> = BTreeMap::new();
    for l in text.lines() {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim() == "model name" {
                *models.entry(v.trim().to_string()).or_default() += 1;
            }
        }
    }
    json!(models)
}

/// Host part of the full set; `cpu` is computed by the caller (from the
/// previous reading when there is one).
pub fn host_set(hostname: &str, cpu: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("cpu".into(), cpu);
    m.insert("loadaverage".into(), json!(loadaverage()));
    m.insert("memory".into(), memory());
    m.insert("hostname".into(), json!(hostname));
    m.insert("os_version".into(), json!(os_release()));
    m.insert("linux_distribution".into(), json!(linux_distribution()));
    m.insert("cpu_models".into(), cpu_models());
    m.insert("n_cpu".into(), json!(crate::host::cpu_count()));
    m
}

/// Keys the PostgreSQL part brings.
pub const PG_KEYS: [&str; 9] = [
    "buffers",
    "hitratio",
    "active_backends",
    "max_connections",
    "databases",
    "pg_uptime",
    "pg_version",
    "pg_data",
    "pg_port",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_like_2x() {
        let a = parse_cpu("cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse_cpu("cpu  130 10 60 890 20 5 5 0 0 0\n").unwrap();
        let p = cpu_percent(&a, &b);
        // user 40, system 20, idle 90, iowait 10, steal 0 -> total 160
        assert_eq!(
            p,
            json!({"user": 25.0, "system": 12.5, "idle": 56.3, "iowait": 6.3, "steal": 0.0})
        );
        assert_eq!(cpu_percent(&a, &a)["idle"], 0.0);
    }

    #[test]
    fn memory_like_2x() {
        let m = parse_memory(
            "MemTotal: 1000 kB\nMemFree: 250 kB\nBuffers: 1 kB\nCached: 500 kB\nSwapCached: 9 kB\n",
        );
        assert_eq!(
            m,
            json!({"total": 1000, "free": 25.0, "active": 25.0, "cached": 50.0})
        );
    }

    #[test]
    fn host_set_shape() {
        let m = host_set("h.example.org", cpu_sampled());
        for k in [
            "cpu",
            "loadaverage",
            "memory",
            "hostname",
            "os_version",
            "linux_distribution",
            "cpu_models",
            "n_cpu",
        ] {
            assert!(m.contains_key(k), "{k}");
        }
        assert!(m["n_cpu"].as_u64().unwrap() >= 1);
        assert!(m["memory"]["total"].as_u64().unwrap() > 0);
        assert!(!os_version_full().is_empty() && os_version_full().ends_with(&os_release()));
    }
}
