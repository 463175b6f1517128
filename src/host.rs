//! Facts about the host read from the OS (/proc, uname), used by `/discover`
//! and later by the dashboard.

use std::ffi::{CStr, CString};

/// The system's fully qualified name, like `hostname --fqdn`: the host name,
/// canonicalized through the resolver when it has no dot. May block on DNS:
/// call it off the request path and cache it.
pub fn system_fqdn() -> String {
    let short = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string());
    if short.contains('.') {
        return short;
    }
    canonical_name(&short).unwrap_or(short)
}

fn canonical_name(name: &str) -> Option<String> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: all-zero is a valid addrinfo hints value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string and hints; `res` is freed below with freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: getaddrinfo succeeded, so `res` points to a valid list whose
    // first entry carries ai_canonname (possibly null) because of AI_CANONNAME.
    let canon = unsafe {
        let p = (*res).ai_canonname;
        let s = (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned());
        libc::freeaddrinfo(res);
        s
    };
    canon
}

/// The 2.x FQDN rule: at least one dot, labels of 1-63 letters, digits or
/// hyphens, a top-level label of 2-63 letters, 4-253 characters in all.
pub fn is_fqdn(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if !(4..=253).contains(&name.len()) || !name.contains('.') {
        return false;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    labels.iter().all(label_ok)
        && (2..=63).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Number of online CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// MemTotal in bytes (0 when /proc/meminfo is unreadable).
pub fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| parse_meminfo_total(&text))
        .unwrap_or(0)
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Aggregate CPU counters of /proc/stat (clock ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// `user` ticks.
    pub user: u64,
    /// `nice` ticks.
    pub nice: u64,
    /// `system` ticks.
    pub system: u64,
    /// `idle` ticks.
    pub idle: u64,
    /// `iowait` ticks.
    pub iowait: u64,
    /// `irq` ticks.
    pub irq: u64,
    /// `softirq` ticks.
    pub softirq: u64,
    /// `steal` ticks.
    pub steal: u64,
}

/// Parses the `cpu` line of /proc/stat.
pub fn parse_cpu(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
    })
}

/// The five 2.x CPU groups (user+nice, system+irq+softirq, idle, iowait,
/// steal) in clock ticks, for the monitoring `cpu` probe.
pub fn read_cpu_fields() -> Option<(u64, u64, u64, u64, u64)> {
    let t = read_cpu()?;
    Some((
        t.user + t.nice,
        t.system + t.irq + t.softirq,
        t.idle,
        t.iowait,
        t.steal,
    ))
}

/// Reads /proc/stat now.
pub fn read_cpu() -> Option<CpuTimes> {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_cpu(&t))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fqdn_rule() {
        for ok in [
            "agent.example.org",
            "db-1.prod.example.com",
            "a.io",
            "x.example.org.",
        ] {
            assert!(super::is_fqdn(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "a.b",
            "host.123",
            "-a.example.org",
            "a..example.org",
            "a_b.example.org",
            "",
        ] {
            assert!(!super::is_fqdn(bad), "{bad}");
        }
    }

    #[test]
    fn meminfo() {
        assert_eq!(
            super::parse_meminfo_total("MemTotal:       2048 kB\nMemFree: 1 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(super::parse_meminfo_total("nothing"), None);
    }
}
