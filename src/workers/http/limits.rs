//! Connection admission: how many connections one client address may hold,
//! and a reserve of descriptors no client can take.
//!
//! Why: 21,000 idle connections from one address once took the http worker
//! to its open-files limit, and `/health` then took 4.4 s. With a cap per
//! address and a reserve kept below the limit, one client (or one attacker)
//! cannot starve the others: what is over is closed at once, before any TLS
//! work.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tracing::warn;

/// Descriptors kept free below the open-files limit (SQLite, IPC sockets,
/// `/proc` reads, the requests of clients under their cap).
pub const RESERVE: usize = 64;

#[derive(Debug, Default)]
struct Entry {
    open: usize,
    /// Whether the cap was reported since the address was last under it.
    warned: bool,
}

/// Open connections, per address and in all.
#[derive(Debug)]
pub struct Limits {
    by_address: Mutex<HashMap<IpAddr, Entry>>,
    total: Mutex<usize>,
    max_total: usize,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Limits {
    /// Limits for a worker whose open-files soft limit is `nofile`.
    pub fn new(nofile: u64) -> Arc<Limits> {
        let max_total = usize::try_from(nofile)
            .unwrap_or(usize::MAX)
            .saturating_sub(RESERVE)
            .max(1);
        Arc::new(Limits {
            by_address: Mutex::default(),
            total: Mutex::new(0),
            max_total,
        })
    }

    /// The worker's limits from its own open-files soft limit.
    pub fn from_rlimit() -> Arc<Limits> {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        Limits::new(soft)
    }

    /// A place for a new connection from `ip`, or `None` when it must be
    /// closed (the address holds `per_client` already, or the reserve is
    /// reached).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, per_client: usize) -> Option<Admitted> {
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(ip).or_default();
        if e.open >= per_client {
            if !e.warned {
                e.warned = true;
                warn!("{ip} holds {} connections (max_connections_per_client): closing new ones until it holds fewer", e.open);
            }
            return None;
        }
        if *total >= self.max_total {
            if !e.warned {
                e.warned = true;
                warn!("{} connections open, {RESERVE} descriptors kept in reserve: closing new ones from {ip}", *total);
            }
            if e.open == 0 {
                map.remove(&ip);
            }
            return None;
        }
        e.open += 1;
        *total += 1;
        Some(Admitted {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut total = self.limits.total.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(1);
        let mut map = self
            .limits
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&self.ip) {
            e.open = e.open.saturating_sub(1);
            if e.open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_keeps_the_reserve() {
        let l = Limits::new(RESERVE as u64 + 5);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| l.admit(a, 3).unwrap()).collect();
        assert!(l.admit(a, 3).is_none(), "over the per-address cap");
        let more: Vec<_> = (0..2).map(|_| l.admit(b, 3).unwrap()).collect();
        assert!(l.admit(b, 3).is_none(), "into the reserve");
        drop(held);
        assert!(l.admit(a, 3).is_some(), "places given back");
        drop(more);
        assert!(l.by_address.lock().unwrap().len() <= 1);
    }
}
