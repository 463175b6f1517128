//! Restart policy for dead workers, as data: exponential backoff from
//! `initial` doubling to `max` while a role keeps dying young (a crash loop),
//! back to `initial` once a worker had stayed up `healthy_after`.
//!
//! `healthy_after` is 2 s, not the 60 s of the first design: a worker that
//! served for a while and was killed (OOM killer, an operator's `kill -9`)
//! must be back within the 100 ms + start time so the API answers again within
//! a second, every time; only deaths soon after start are a loop worth slowing
//! down.

use std::time::Duration;

/// Backoff parameters of a role.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// First delay.
    pub initial: Duration,
    /// Ceiling.
    pub max: Duration,
    /// Uptime after which the failure count is forgotten.
    pub healthy_after: Duration,
}

/// 100 ms doubling to 30 s, reset by 2 s of uptime.
pub const DEFAULT: Policy = Policy {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(30),
    healthy_after: Duration::from_secs(2),
};

/// Consecutive failures of one role.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a death after `uptime` and returns the delay before the next start.
    pub fn on_exit(&mut self, policy: &Policy, uptime: Duration) -> Duration {
        if uptime >= policy.healthy_after {
            self.failures = 0;
        }
        let factor = 1u32.checked_shl(self.failures.min(20)).unwrap_or(u32::MAX);
        self.failures = self.failures.saturating_add(1);
        policy.initial.saturating_mul(factor).min(policy.max)
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<u128> = (0..12)
            .map(|_| b.on_exit(&DEFAULT, quick).as_millis())
            .collect();
        assert_eq!(&delays[..5], &[100, 200, 400, 800, 1600]);
        assert_eq!(delays[11], 30_000);
        assert_eq!(b.failures(), 12);
        assert_eq!(b.on_exit(&DEFAULT, Duration::from_secs(3)).as_millis(), 100);
        // Killed again after serving a while: still the first delay.
        assert_eq!(b.on_exit(&DEFAULT, Duration::from_secs(3)).as_millis(), 100);
        assert_eq!(b.failures(), 1);
    }
}
