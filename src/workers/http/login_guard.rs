//! Login hardening: failed logins are answered after a fixed delay whatever
//! the reason, and an address that keeps failing is locked out for a while
//! (429). State changes are logged once, never each attempt.
//!
//! An attempt is counted when it *starts* ([`LoginGuard::begin`]), under the
//! same lock as the check: an address has at most as many attempts in flight
//! as it may still fail, and further ones wait for one to settle. 200
//! concurrent wrong logins from one address get at most [`MAX_FAILURES`]
//! password checks (the rest see the lockout), while 50 concurrent right
//! ones all succeed, a few at a time.

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

/// How long an attempt waits for a place among its address's attempts in
/// flight before it is answered 429.
const WAIT_FOR_TURN: Duration = Duration::from_secs(10);

/// Per-address failure counters of this http worker.
#[derive(Debug, Default)]
pub struct LoginGuard {
    map: Mutex<HashMap<IpAddr, Entry>>,
    /// Woken whenever an attempt settles.
    settled: tokio::sync::Notify,
}

impl LoginGuard {
    /// Checks `ip` in for one attempt, or `Err(retry_after)` while it is
    /// locked out or already has as many attempts in flight as it may still
    /// fail. The returned [`Attempt`] must be settled with
    /// [`Attempt::failed`] or [`Attempt::succeeded`]; dropped otherwise (an
    /// internal error), it counts for nothing.
    pub async fn begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Duration> {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_TURN;
        loop {
            // Registered before the check, so a settle between the check and
            // the wait is not missed.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match self.try_begin(ip) {
                Ok(a) => return Ok(a),
                Err(Refusal::Locked(retry)) => return Err(retry),
                Err(Refusal::Busy) => {
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        return Err(FAILURE_DELAY);
                    }
                }
            }
        }
    }

    fn try_begin(&self, ip: IpAddr) -> Result<Attempt<'_>, Refusal> {
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
            Some(until) if until > now => return Err(Refusal::Locked(until - now)),
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
            return Err(Refusal::Busy);
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
        drop(map);
        self.settled.notify_waiters();
    }
}

/// Why an attempt cannot start now.
enum Refusal {
    /// Locked out for this long.
    Locked(Duration),
    /// As many attempts in flight as the address may still fail: wait.
    Busy,
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

    #[tokio::test]
    async fn locks_after_threshold_and_success_resets() {
        let g = LoginGuard::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            g.begin(ip).await.unwrap().failed();
        }
        g.begin(ip).await.unwrap().succeeded();
        for _ in 0..MAX_FAILURES {
            g.begin(ip).await.unwrap().failed();
        }
        let wait = g.begin(ip).await.unwrap_err();
        assert!(wait <= LOCKOUT && wait > LOCKOUT - Duration::from_secs(5));
        assert!(g.begin(other).await.is_ok());
    }

    #[tokio::test]
    async fn attempts_in_flight_count_before_they_fail() {
        let g = std::sync::Arc::new(LoginGuard::default());
        let ip: IpAddr = "10.0.0.3".parse().unwrap();
        let mut held = vec![];
        for _ in 0..MAX_FAILURES {
            held.push(g.try_begin(ip).ok().unwrap());
        }
        assert!(matches!(g.try_begin(ip), Err(Refusal::Busy)));
        // A waiting attempt proceeds once one settles...
        let waiter = {
            let g = std::sync::Arc::clone(&g);
            tokio::spawn(async move { g.begin(ip).await.map(|a| a.succeeded()).is_ok() })
        };
        held.pop().unwrap().succeeded();
        assert!(waiter.await.unwrap());
        drop(held);
        // ...and once the address has failed its limit, waiters see the lockout.
        let mut held = vec![];
        for _ in 0..MAX_FAILURES {
            held.push(g.try_begin(ip).ok().unwrap());
        }
        let waiter = {
            let g = std::sync::Arc::clone(&g);
            tokio::spawn(async move { g.begin(ip).await.err() })
        };
        for a in held {
            a.failed();
        }
        assert!(waiter.await.unwrap().unwrap() > FAILURE_DELAY);
    }
}
