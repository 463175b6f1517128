//! Per-process metrics of PostgreSQL backends from /proc, as the 2.x activity
//! plugin shows them (facts 7.2): cpu %, memory %, read/write rates, I/O wait.
//!
//! Rates need two samples. The last sample of every backend is kept, so a
//! request usually computes its rates from the previous request's samples
//! without waiting; only backends with no usable previous sample cost one
//! shared 0.1 s pause per request (never one per row).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Pause used when no previous sample exists (the 2.x interval).
pub const SAMPLE_GAP: Duration = Duration::from_millis(100);
/// A previous sample older than this is not used for a rate.
const MAX_AGE: Duration = Duration::from_secs(10);
/// Samples kept at most.
const MAX_KEPT: usize = 20_000;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    at: Instant,
    stat: Option<Stat>,
    io: Option<(u64, u64)>,
}

/// Fields of /proc/<pid>/stat we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Process state letter (`D` = uninterruptible I/O wait).
    pub state: char,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub ticks: u64,
    /// Start time, to detect a reused pid.
    pub start: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses /proc/<pid>/stat text (the command may contain spaces and parentheses).
pub fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let ticks = [14, 15, 16, 17]
        .iter()
        .map(|&n| num(n).map(|v| v.max(0) as u64))
        .sum::<Option<u64>>()?;
    Some(Stat {
        state: f.first()?.chars().next()?,
        ticks,
        start: num(22)? as u64,
        rss_pages: num(24)?.max(0) as u64,
    })
}

/// Parses /proc/<pid>/io: (read_bytes, write_bytes).
pub fn parse_io(text: &str) -> Option<(u64, u64)> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((get("read_bytes:")?, get("write_bytes:")?))
}

/// Reads a process now.
pub fn sample(pid: i32) -> Sample {
    Sample {
        at: Instant::now(),
        stat: std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t)),
        io: std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|t| parse_io(&t)),
    }
}

/// 2.x `bytes2human`: 1024-based, two decimals, `B` below 1 KiB.
pub fn bytes2human(n: f64) -> String {
    const SYMBOLS: [&str; 8] = ["K", "M", "G", "T", "P", "E", "Z", "Y"];
    for (i, s) in SYMBOLS.iter().enumerate().rev() {
        let unit = 2f64.powi(10 * (i as i32 + 1));
        if n >= unit {
            return format!("{:.2}{s}", n / unit);
        }
    }
    format!("{n:.2}B")
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Host constants needed for the percentages.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// sysconf(_SC_CLK_TCK).
    pub clock_ticks: f64,
    /// Page size in bytes.
    pub page_size: f64,
    /// MemTotal in bytes.
    pub mem_total: f64,
}

impl Host {
    /// Reads them from the OS.
    pub fn read() -> Host {
        // SAFETY: sysconf has no memory-safety preconditions.
        let (tck, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Host {
            clock_ticks: if tck > 0 { tck as f64 } else { 100.0 },
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            mem_total: crate::host::memory_bytes() as f64,
        }
    }
}

/// The metrics of one row from two samples of the same process.
pub fn metrics(host: &Host, before: &Sample, after: &Sample) -> Value {
    let na = || json!("N/A");
    let secs = after.at.saturating_duration_since(before.at).as_secs_f64();
    let (cpu, memory, iow) = match (before.stat, after.stat) {
        (Some(b), Some(a)) if b.start == a.start && secs > 0.0 => (
            json!(round2(
                a.ticks.saturating_sub(b.ticks) as f64 / host.clock_ticks / secs * 100.0
            )),
            if host.mem_total > 0.0 {
                json!(round2(
                    a.rss_pages as f64 * host.page_size / host.mem_total * 100.0
                ))
            } else {
                na()
            },
            json!(if a.state == 'D' { "Y" } else { "N" }),
        ),
        _ => (na(), na(), na()),
    };
    let (read_s, write_s) = match (before.io, after.io) {
        (Some((br, bw)), Some((ar, aw))) if secs > 0.0 => (
            json!(bytes2human(ar.saturating_sub(br) as f64 / secs)),
            json!(bytes2human(aw.saturating_sub(bw) as f64 / secs)),
        ),
        _ => (na(), na()),
    };
    json!({ "cpu": cpu, "memory": memory, "read_s": read_s, "write_s": write_s, "iow": iow })
}

/// The cumulative figures of one backend (9.x `/activity/sessions`):
/// `cpu_time` (clock ticks), `memory` (RSS bytes), `proc_state`,
/// `proc_read`/`proc_write` (bytes); null when /proc cannot be read. One
/// reading, no pause.
pub fn cumulative(host: &Host, pid: i32) -> Value {
    let s = sample(pid);
    let (cpu_time, memory, state) = match s.stat {
        Some(st) => (
            json!(st.ticks),
            json!((st.rss_pages as f64 * host.page_size) as u64),
            json!(st.state.to_string()),
        ),
        None => (Value::Null, Value::Null, Value::Null),
    };
    let (read, write) = match s.io {
        Some((r, w)) => (json!(r), json!(w)),
        None => (Value::Null, Value::Null),
    };
    json!({"cpu_time": cpu_time, "memory": memory, "proc_state": state, "proc_read": read, "proc_write": write})
}

/// Keeps the last sample of each backend between requests.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Mutex<HashMap<i32, Sample>>,
    pauses: std::sync::atomic::AtomicU64,
}

impl Sampler {
    /// How many requests had to pause for a second sample.
    pub fn pauses(&self) -> u64 {
        self.pauses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Metrics for each pid, at most one 0.1 s pause in all. With `complete`
    /// (the pids are every backend), samples of gone backends are forgotten.
    pub fn metrics(&self, host: &Host, pids: &[i32], complete: bool) -> HashMap<i32, Value> {
        let previous: HashMap<i32, Sample> = {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            pids.iter()
                .filter_map(|p| last.get(p).map(|s| (*p, *s)))
                .collect()
        };
        let mut now: HashMap<i32, Sample> = pids.iter().map(|p| (*p, sample(*p))).collect();
        let usable = |p: &i32, cur: &Sample| {
            previous.get(p).is_some_and(|prev| {
                let age = cur.at.saturating_duration_since(prev.at);
                age <= MAX_AGE
                    && age > Duration::ZERO
                    && matches!((prev.stat, cur.stat), (Some(a), Some(b)) if a.start == b.start)
            })
        };
        let mut base: HashMap<i32, Sample> = HashMap::new();
        // Unreadable processes (gone, or another user's) give "N/A" with no pause.
        let missing: Vec<i32> = now
            .iter()
            .filter(|(p, s)| s.stat.is_some() && !usable(p, s))
            .map(|(p, _)| *p)
            .collect();
        for (p, s) in &now {
            match previous.get(p) {
                Some(prev) if usable(p, s) => {
                    base.insert(*p, *prev);
                }
                _ => {
                    base.insert(*p, *s);
                }
            }
        }
        if !missing.is_empty() {
            for p in &missing {
                base.insert(*p, now[p]);
            }
            self.pauses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(SAMPLE_GAP);
            for p in &missing {
                now.insert(*p, sample(*p));
            }
        }
        let out = pids
            .iter()
            .map(|p| (*p, metrics(host, &base[p], &now[p])))
            .collect();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if complete {
            last.retain(|p, _| now.contains_key(p));
        }
        for (p, s) in now {
            // Keep the older base while it is recent, so rates from rapid
            // requests cover at least the 0.1 s of 2.x.
            let keep_old = base.get(&p).is_some_and(|b| {
                s.at.saturating_duration_since(b.at) < SAMPLE_GAP && last.contains_key(&p)
            });
            if !keep_old {
                last.insert(p, s);
            }
        }
        if last.len() > MAX_KEPT {
            last.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text = "1234 (postgres: a (b) c) S 1 2 3 4 5 6 7 8 9 10 100 20 3 4 20 0 1 0 5555 1000000 250 18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ticks, 127);
        assert_eq!(s.start, 5555);
        assert_eq!(s.rss_pages, 250);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn parses_io() {
        let text = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(parse_io(text), Some((4096, 8192)));
        assert_eq!(parse_io("rchar: 1\n"), None);
    }

    #[test]
    fn human_sizes_like_2x() {
        assert_eq!(bytes2human(0.0), "0.00B");
        assert_eq!(bytes2human(1023.0), "1023.00B");
        assert_eq!(bytes2human(1536.0), "1.50K");
        assert_eq!(bytes2human(12.0 * 1024.0 * 1024.0), "12.00M");
        assert_eq!(bytes2human(3.0 * 1024f64.powi(3)), "3.00G");
    }

    #[test]
    fn metrics_from_two_samples() {
        let host = Host {
            clock_ticks: 100.0,
            page_size: 4096.0,
            mem_total: 4096.0 * 1000.0,
        };
        let t0 = Instant::now();
        let st = |ticks, state| {
            Some(Stat {
                state,
                ticks,
                start: 7,
                rss_pages: 10,
            })
        };
        let a = Sample {
            at: t0,
            stat: st(100, 'S'),
            io: Some((0, 0)),
        };
        let b = Sample {
            at: t0 + Duration::from_millis(500),
            stat: st(125, 'D'),
            io: Some((1024, 2048 * 1024)),
        };
        let m = metrics(&host, &a, &b);
        assert_eq!(m["cpu"], 50.0);
        assert_eq!(m["memory"], 1.0);
        assert_eq!(m["read_s"], "2.00K");
        assert_eq!(m["write_s"], "4.00M");
        assert_eq!(m["iow"], "Y");
        let gone = Sample {
            at: b.at,
            stat: None,
            io: None,
        };
        let m = metrics(&host, &a, &gone);
        assert_eq!(m["cpu"], "N/A");
        assert_eq!(m["read_s"], "N/A");
        assert_eq!(m["iow"], "N/A");
    }

    #[test]
    fn second_request_needs_no_pause() {
        let host = Host::read();
        let me = std::process::id() as i32;
        let s = Sampler::default();
        let first = s.metrics(&host, &[me, i32::MAX], true);
        assert_eq!(
            s.pauses(),
            1,
            "one pause for all rows (none for a gone pid)"
        );
        assert!(first[&me]["cpu"].is_number());
        assert_eq!(first[&i32::MAX]["cpu"], "N/A");
        std::thread::sleep(Duration::from_millis(120));
        let second = s.metrics(&host, &[me], true);
        assert_eq!(s.pauses(), 1, "paused although a previous sample existed");
        assert!(second[&me]["memory"].as_f64().unwrap() > 0.0);
    }
}
