//! Login hardening: failed logins are answered after a fixed delay whatever
//! the reason, and an address that keeps failing is locked out for a while
//! (429). State changes are logged once, never each attempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// Every failed login is answered this long after it arrived.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);
/// Failures within [`WINDOW`] that lock an address out.
pub const MAX_FAILURES: u32 = 5;
/// Window counting failures.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Length of a lockout.
pub const LOCKOUT: Duration = Duration::from_secs(60);
/// Addresses tracked at most (oldest forgotten first).
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
struct Entry {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Per-address failure counters of this http worker.
#[derive(Debug, Default)]
pub struct LoginGuard {
    map: Mutex<HashMap<IpAddr, Entry>>,
}

impl LoginGuard {
    /// `Err(retry_after)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let Some(e) = map.get_mut(&ip) else {
            return Ok(());
        };
        match e.locked_until {
            Some(until) if until > now => Err(until - now),
            Some(_) => {
                info!("login lockout of {ip} lifted");
                map.remove(&ip);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records a failure; locks the address out at the threshold.
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, e| {
                e.locked_until.is_some_and(|u| u > now) || now - e.window_start < WINDOW
            });
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, e)| e.window_start)
                    .map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            locked_until: None,
        });
        if now - e.window_start > WINDOW {
            e.failures = 0;
            e.window_start = now;
        }
        e.failures += 1;
        if e.failures >= MAX_FAILURES && e.locked_until.is_none() {
            e.locked_until = Some(now + LOCKOUT);
            warn!(
                "{} failed logins from {ip}: locked out for {} s",
                e.failures,
                LOCKOUT.as_secs()
            );
        }
    }

    /// A success forgets the address's failures.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_threshold_and_success_resets() {
        let g = LoginGuard::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            g.failed(ip);
        }
        assert!(g.check(ip).is_ok());
        g.succeeded(ip);
        for _ in 0..MAX_FAILURES {
            g.failed(ip);
        }
        let wait = g.check(ip).unwrap_err();
        assert!(wait <= LOCKOUT && wait > LOCKOUT - Duration::from_secs(5));
        assert!(g.check(other).is_ok());
    }
}
