//! The request bodies in flight: one budget of bytes for the whole worker,
//! and a share of it per peer address.
//!
//! Why: a body is read whole before its JSON is parsed (and, for a signed
//! 9.x request, before its signature can be checked: the signature covers
//! the body). Without a bound, stalled uploads from a few addresses hold
//! what the PostgreSQL host needs (300 connections × 1 MiB was 338 MiB).
//! What can be checked before the body is (route, session, token, key, the
//! 9.x headers and date); what is left is bounded here: past the budget a
//! request gets `503` with `Retry-After` before any byte of its body is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Most body bytes held by the worker at once.
pub const TOTAL: usize = 16 * 1024 * 1024;
/// Most body bytes one peer address may have in flight: a fourth of the
/// total, so one address cannot take it all.
pub const PER_PEER: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Held {
    total: usize,
    peers: HashMap<IpAddr, usize>,
}

/// The budget (cheap to share: one lock, taken twice a request with a body).
#[derive(Clone)]
pub struct BodyBudget {
    held: Arc<Mutex<Held>>,
    total: usize,
    per_peer: usize,
}

impl Default for BodyBudget {
    fn default() -> Self {
        BodyBudget::new(TOTAL, PER_PEER)
    }
}

/// Whose share a peer address draws on: an IPv4 address, or the /64 of an
/// IPv6 one (a single host is commonly given a whole /64, so keying on the
/// full address would give it as many shares as it likes). IPv4-mapped
/// IPv6 addresses count as their IPv4 address.
fn share_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Bytes reserved for one body, given back on drop.
pub struct Reservation {
    held: Arc<Mutex<Held>>,
    peer: IpAddr,
    len: usize,
}

impl BodyBudget {
    /// A budget of `total` bytes, `per_peer` of them for one address.
    pub fn new(total: usize, per_peer: usize) -> BodyBudget {
        BodyBudget {
            held: Arc::default(),
            total,
            per_peer,
        }
    }

    /// Reserves `len` bytes for a body from `peer`, or `None` when the
    /// worker's or the peer's share is in use.
    pub fn reserve(&self, peer: IpAddr, len: usize) -> Option<Reservation> {
        let peer = share_of(peer);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mine = held.peers.get(&peer).copied().unwrap_or(0);
        if held.total + len > self.total || mine + len > self.per_peer {
            return None;
        }
        held.total += len;
        held.peers.insert(peer, mine + len);
        Some(Reservation {
            held: Arc::clone(&self.held),
            peer,
            len,
        })
    }

    /// Bytes reserved now (for `/metrics` and tests).
    pub fn in_use(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.total -= self.len;
        if let Some(n) = held.peers.get_mut(&self.peer) {
            *n -= self.len;
            if *n == 0 {
                held.peers.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_its_share_and_the_total_holds() {
        let b = BodyBudget::new(10, 4);
        let (p1, p2, p3): (IpAddr, IpAddr, IpAddr) = (
            "127.0.0.1".parse().unwrap(),
            "127.0.0.2".parse().unwrap(),
            "::1".parse().unwrap(),
        );
        let a = b.reserve(p1, 3).unwrap();
        assert!(b.reserve(p1, 2).is_none(), "past the peer's share");
        let c = b.reserve(p1, 1).unwrap();
        let d = b.reserve(p2, 4).unwrap();
        assert!(b.reserve(p3, 3).is_none(), "past the total");
        let e = b.reserve(p3, 2).unwrap();
        assert_eq!(b.in_use(), 10);
        drop((a, c));
        assert_eq!(b.in_use(), 6);
        let f = b.reserve(p1, 4).unwrap();
        drop((d, e, f));
        assert_eq!(b.in_use(), 0);
        assert!(
            b.held.lock().unwrap().peers.is_empty(),
            "no peer left behind"
        );
    }

    #[test]
    fn one_ipv6_host_is_one_share() {
        let b = BodyBudget::new(100, 4);
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let _a = b.reserve(one, 4).unwrap();
        assert!(
            b.reserve(same_64, 1).is_none(),
            "the same /64 shares one budget"
        );
        assert!(b.reserve(other_64, 4).is_some());
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        let _m = b.reserve(mapped, 4).unwrap();
        assert!(b.reserve("127.0.0.2".parse().unwrap(), 1).is_none());
    }
}
