//! Login hardening: failed logins are answered after a fixed delay whatever
//! the reason, and an address that keeps failing is locked out for a while
//! (429). State changes are logged once, never each attempt.
//!
//! An attempt is counted when it *starts* ([`LoginGuard::begin`]), under the
//! same lock as the check: 200 concurrent wrong logins from one address get
//! at most [`MAX_FAILURES`] password checks, not as many as arrive before
//! the first failure is recorded.

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
    /// Attempts checked in but not yet answered.
    in_flight: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Per-address failure counters of this http worker.
#[derive(Debug, Default)]
pub struct LoginGuard {
    map: Mutex<HashMap<IpAddr, Entry>>,
}

impl LoginGuard {
    /// Checks `ip` in for one attempt, or `Err(retry_after)` while it is
    /// locked out or already has as many attempts in flight as it may still
    /// fail. The returned [`Attempt`] must be settled with
    /// [`Attempt::failed`] or [`Attempt::succeeded`]; dropped otherwise (an
    /// internal error), it counts for nothing.
    pub fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        self.make_room(&mut map, ip, now);
        let e = map.entry(ip).or_insert(Entry {
            failures: 0,
            in_flight: 0,
            window_start: now,
            locked_until: None,
        });
        match e.locked_until {
            Some(until) if until > now => return Err(until - now),
            Some(_) => {
                info!("login lockout of {ip} lifted");
                *e = Entry {
                    failures: 0,
                    in_flight: e.in_flight,
                    window_start: now,
                    locked_until: None,
                };
            }
            None => {}
        }
        if now - e.window_start > WINDOW {
            e.failures = 0;
            e.window_start = now;
        }
        if e.failures + e.in_flight >= MAX_FAILURES {
            return Err(FAILURE_DELAY);
        }
        e.in_flight += 1;
        Ok(Attempt {
            guard: self,
            ip,
            settled: false,
        })
    }

    /// Forgets idle addresses when the table is full.
    fn make_room(&self, map: &mut HashMap<IpAddr, Entry>, ip: IpAddr, now: Instant) {
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            map.retain(|_, e| {
                e.in_flight > 0
                    || e.locked_until.is_some_and(|u| u > now)
                    || now - e.window_start < WINDOW
            });
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map
                    .iter()
                    .filter(|(_, e)| e.in_flight == 0)
                    .min_by_key(|(_, e)| e.window_start)
                    .map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
        }
    }

    /// Settles an attempt: a failure is recorded (and locks the address out
    /// at the threshold), a success forgets the address's failures.
    fn settle(&self, ip: IpAddr, failed: Option<bool>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let Some(e) = map.get_mut(&ip) else {
            return;
        };
        e.in_flight = e.in_flight.saturating_sub(1);
        match failed {
            Some(false) => {
                if e.in_flight == 0 {
                    map.remove(&ip);
                } else {
                    e.failures = 0;
                }
            }
            Some(true) => {
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
            None => {}
        }
    }
}

/// One login attempt checked in with [`LoginGuard::begin`].
#[derive(Debug)]
pub struct Attempt<'a> {
    guard: &'a LoginGuard,
    ip: IpAddr,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong.
    pub fn failed(mut self) {
        self.settled = true;
        self.guard.settle(self.ip, Some(true));
    }

    /// The password was right.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.guard.settle(self.ip, Some(false));
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.guard.settle(self.ip, None);
        }
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
            g.begin(ip).unwrap().failed();
        }
        g.begin(ip).unwrap().succeeded();
        for _ in 0..MAX_FAILURES {
            g.begin(ip).unwrap().failed();
        }
        let wait = g.begin(ip).unwrap_err();
        assert!(wait <= LOCKOUT && wait > LOCKOUT - Duration::from_secs(5));
        assert!(g.begin(other).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        let g = LoginGuard::default();
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        let held: Vec<_> = (0..MAX_FAILURES).map(|_| g.begin(ip).unwrap()).collect();
        assert_eq!(g.begin(ip).unwrap_err(), FAILURE_DELAY);
        drop(held);
        // Dropped unsettled (internal errors): nothing counted.
        let held: Vec<_> = (0..MAX_FAILURES).map(|_| g.begin(ip).unwrap()).collect();
        for a in held {
            a.failed();
        }
        assert!(g.begin(ip).unwrap_err() > FAILURE_DELAY);
    }
}
