//! Host probes (facts 10.1) and the `hostinfo` of the payload (facts 10.4),
//! read from /proc and system calls: never by running `df`, and a hung mount
//! cannot block a run (each statvfs has a deadline).

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::probes::agent_datetime;

/// A mounted filesystem worth reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Device (source).
    pub device: String,
    /// Mount point.
    pub mount_point: String,
}

/// Filesystems of /proc/mounts backed by a device (pseudo filesystems left
/// out, and whatever is mounted under /dev, /proc, /run and /sys: `/dev/shm`,
/// `/sys/fs/cgroup`, `/run/user/…` hold no PostgreSQL data, and the Python
/// agent leaves them out too). tmpfs and overlay elsewhere stay: a
/// container's `/`, a data directory on tmpfs.
pub fn mounts() -> Vec<Mount> {
    let text = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    parse_mounts(&text)
}

/// Parses /proc/mounts text.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = vec![];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let (device, mount_point, fstype) = (f[0], f[1].replace("\\040", " "), f[2]);
        let real = device.starts_with('/')
            || matches!(
                fstype,
                "nfs" | "nfs4" | "cifs" | "zfs" | "btrfs" | "tmpfs" | "overlay"
            );
        if !real
            || matches!(
                fstype,
                "proc"
                    | "sysfs"
                    | "cgroup"
                    | "cgroup2"
                    | "devpts"
                    | "mqueue"
                    | "debugfs"
                    | "securityfs"
            )
        {
            continue;
        }
        let pseudo_place = ["/dev", "/proc", "/run", "/sys"]
            .iter()
            .any(|p| mount_point == *p || mount_point.starts_with(&format!("{p}/")));
        if pseudo_place || out.iter().any(|m| m.mount_point == mount_point) {
            continue;
        }
        out.push(Mount {
            device: device.to_string(),
            mount_point,
        });
    }
    out
}

/// (total, used) bytes of a mount point, or `None` after `deadline`.
pub fn usage(mount_point: &str, deadline: Duration) -> Option<(u64, u64)> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let path = mount_point.to_string();
    // A thread per call: a hung NFS mount blocks only that thread.
    std::thread::Builder::new()
        .name("statvfs".into())
        .spawn(move || {
            let r = nix::sys::statvfs::statvfs(path.as_str()).ok().map(|s| {
                let frag = s.fragment_size();
                let total = s.blocks() * frag;
                let free = s.blocks_free() * frag;
                (total, total.saturating_sub(free))
            });
            let _ = tx.send(r);
        })
        .ok()?;
    rx.recv_timeout(deadline).ok().flatten()
}

/// `filesystems_size` rows (and the hostinfo `filesystems` list without datetime).
pub fn filesystems(with_datetime: bool) -> Vec<Value> {
    let now = agent_datetime();
    mounts()
        .into_iter()
        .filter_map(|m| {
            let (total, used) = usage(&m.mount_point, Duration::from_secs(2))?;
            if total == 0 {
                return None;
            }
            let mut v = json!({ "mount_point": m.mount_point, "device": m.device, "total": total, "used": used });
            if with_datetime {
                v["datetime"] = json!(now);
            }
            Some(v)
        })
        .collect()
}

/// Raw cumulative CPU times in ms (the delta is taken by the caller).
pub fn cpu_raw() -> Option<Value> {
    let t = crate::host::read_cpu_fields()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    };
    let ms = |ticks: u64| ticks * 1000 / hz;
    Some(json!({
        "cpu": "global",
        "time_user": ms(t.0),
        "time_system": ms(t.1),
        "time_idle": ms(t.2),
        "time_iowait": ms(t.3),
        "time_steal": ms(t.4),
        "datetime": agent_datetime(),
    }))
}

/// Raw process counters (ctxt and processes cumulative; running, blocked, total instant).
pub fn process_raw() -> Option<Value> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let field = |k: &str| {
        stat.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let total = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| {
            l.split_whitespace()
                .nth(3)
                .and_then(|f| f.split('/').nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    Some(json!({
        "context_switches": field("ctxt "),
        "forks": field("processes "),
        "procs_running": field("procs_running "),
        "procs_blocked": field("procs_blocked "),
        "procs_total": total,
        "datetime": agent_datetime(),
    }))
}

/// `memory` row, bytes.
pub fn memory() -> Value {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let b = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let (total, free, swap_total, swap_free) = (
        b("MemTotal:"),
        b("MemFree:"),
        b("SwapTotal:"),
        b("SwapFree:"),
    );
    json!({
        "mem_total": total,
        "mem_used": total.saturating_sub(free),
        "mem_free": free,
        "mem_buffers": b("Buffers:"),
        "mem_cached": b("Cached:"),
        "swap_total": swap_total,
        "swap_used": swap_total.saturating_sub(swap_free),
        "datetime": agent_datetime(),
    })
}

/// `loadavg` row (strings, as 2.x).
pub fn loadavg() -> Value {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let f: Vec<&str> = text.split_whitespace().collect();
    let at = |i: usize| f.get(i).copied().unwrap_or("0.00").to_string();
    json!({ "load1": at(0), "load5": at(1), "load15": at(2), "datetime": agent_datetime() })
}

fn cpus() -> Vec<Value> {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.split("\n\n")
        .filter(|b| b.contains("processor"))
        .map(|block| {
            let get = |k: &str| {
                block
                    .lines()
                    .find_map(|l| {
                        l.split_once(':')
                            .filter(|(key, _)| key.trim() == k)
                            .map(|(_, v)| v.trim().to_string())
                    })
                    .unwrap_or_default()
            };
            json!({
                "processor": get("processor"),
                "core_id": get("core id"),
                "cpu_mhz": get("cpu MHz"),
                "model_name": get("model name"),
                "cache_size": get("cache size"),
            })
        })
        .collect()
}

fn ip_addresses() -> Vec<String> {
    let mut out = vec![];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                out.push(v4.ip().to_string());
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let ip = v6.ip();
                if !(ip.is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80) {
                    out.push(ip.to_string());
                }
            }
        }
    }
    out.dedup();
    out
}

fn os_flavor() -> String {
    if let Ok(r) = std::fs::read_to_string("/etc/redhat-release") {
        return r.lines().next().unwrap_or("").to_string();
    }
    if let Ok(d) = std::fs::read_to_string("/etc/debian_version") {
        return format!("Debian {}", d.trim());
    }
    "Unknown".into()
}

/// The payload's `hostinfo`.
pub fn hostinfo(hostname: &str) -> Value {
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut m = Map::new();
    m.insert("hostname".into(), json!(hostname));
    m.insert("os".into(), json!(field(|u| u.sysname())));
    m.insert("os_version".into(), json!(field(|u| u.release())));
    m.insert("cpu_arch".into(), json!(field(|u| u.machine())));
    m.insert("cpus".into(), json!(cpus()));
    m.insert("cpu_count".into(), json!(crate::host::cpu_count()));
    m.insert("memory_size".into(), json!(crate::host::memory_bytes()));
    m.insert("ip_addresses".into(), json!(ip_addresses()));
    m.insert("filesystems".into(), json!(filesystems(false)));
    m.insert("os_flavor".into(), json!(os_flavor()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_keep_real_filesystems() {
        let m = parse_mounts(
            "proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\nsysfs /sys sysfs rw 0 0\n/dev/vdb /srv/my\\040data xfs rw 0 0\nserver:/x /mnt/nfs nfs4 rw 0 0\n/dev/vda / ext4 rw 0 0\n\
             shm /dev/shm tmpfs rw 0 0\ntmpfs /sys/fs/cgroup tmpfs ro 0 0\ntmpfs /run tmpfs rw 0 0\ntmpfs /run/user/0 tmpfs rw 0 0\n\
             tmpfs /var/lib/postgresql/ram tmpfs rw 0 0\n/dev/loop0 /runner ext4 rw 0 0\n",
        );
        let points: Vec<&str> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(
            points,
            vec!["/", "/srv/my data", "/mnt/nfs", "/var/lib/postgresql/ram", "/runner"]
        );
    }

    #[test]
    fn host_rows_have_their_types() {
        assert!(usage("/", Duration::from_secs(2)).unwrap().0 > 0);
        let c = cpu_raw().unwrap();
        assert!(c["time_idle"].is_u64() && c["cpu"] == "global");
        let p = process_raw().unwrap();
        assert!(p["procs_total"].is_string() && p["context_switches"].is_i64());
        let l = loadavg();
        assert!(l["load1"].is_string());
        assert!(memory()["mem_total"].as_u64().unwrap() > 0);
        let h = hostinfo("h.example.org");
        assert!(
            h["cpu_count"].as_u64().unwrap() >= 1
                && h["ip_addresses"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("127.0.0.1"))
        );
    }
}
