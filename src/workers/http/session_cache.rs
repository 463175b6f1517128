//! Sessions the http worker checked a moment ago.
//!
//! Every authenticated request used to cost a trip to SQLite to check its
//! `X-Session`. The http worker is the only process that creates and ends
//! sessions (login, logout, the 1,000-session limit); the scheduler only
//! purges sessions idle past their TTL. So a session found valid in SQLite
//! stays valid for a short while, and the answer can be remembered: for half
//! of the refresh interval (`min(TTL/10, 10 s) / 2`), which is far shorter
//! than any TTL. SQLite stays the truth: the refresh of `last_seen` still
//! happens on the next check after that, and the cache is forgotten with the
//! worker.
//!
//! Coherence: entries are added and removed only inside the database
//! closures (under the connection's mutex), so a check racing a logout
//! either happened entirely before it (and the logout removes the entry) or
//! after it (and finds no session).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// More entries than the agent keeps sessions: cleared rather than grown.
const MAX_ENTRIES: usize = 2_000;

/// Session id → (user, when SQLite last said it was valid).
#[derive(Default)]
pub struct SessionCache {
    map: Mutex<HashMap<String, (String, Instant)>>,
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user of `id` if it was found valid less than `fresh_for` ago.
    pub fn get(&self, id: &str, fresh_for: Duration) -> Option<String> {
        self.lock()
            .get(id)
            .filter(|(_, at)| at.elapsed() < fresh_for)
            .map(|(user, _)| user.clone())
    }

    /// Records that SQLite just found `id` valid for `user`.
    pub fn put(&self, id: &str, user: &str) {
        let mut map = self.lock();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(id.to_string(), (user.to_string(), Instant::now()));
    }

    /// Forgets one session (logout).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Forgets everything (a login may have dropped the oldest session).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_the_given_time_and_forgets() {
        let c = SessionCache::default();
        c.put("a", "alice");
        assert_eq!(c.get("a", Duration::from_secs(5)).as_deref(), Some("alice"));
        assert_eq!(c.get("a", Duration::ZERO), None);
        assert_eq!(c.get("b", Duration::from_secs(5)), None);
        c.forget("a");
        assert_eq!(c.get("a", Duration::from_secs(5)), None);
        c.put("a", "alice");
        c.clear();
        assert_eq!(c.get("a", Duration::from_secs(5)), None);
    }
}
