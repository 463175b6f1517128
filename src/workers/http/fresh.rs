//! A value computed at most once per interval, by one caller at a time
//! (single flight): unauthenticated routes that ask the probe worker
//! (`/health`, `/discover`) must not let 64 anonymous clients take the
//! probe worker's connection slots from authenticated work.

use std::time::{Duration, Instant};

/// The last value and when it was computed.
#[derive(Debug)]
pub struct Fresh<T> {
    max_age: Duration,
    slot: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Fresh<T> {
    /// Values are reused while younger than `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Fresh {
            max_age,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached value, or a new one from `compute` when it is too old.
    /// Callers arriving while one computes wait for its result instead of
    /// computing again (with a `max_age` of zero, that sharing is all: no
    /// caller gets a value computed before it arrived finished).
    pub async fn get<F, Fut>(&self, compute: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let arrived = Instant::now();
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = slot.as_ref() {
            if *at >= arrived || at.elapsed() < self.max_age {
                return v.clone();
            }
        }
        let v = compute().await;
        *slot = Some((Instant::now(), v.clone()));
        v
    }
}

/// A value kept until what it was computed from changes (its key) or it
/// reaches `max_age`: answers from memory for documents that change only
/// when PostgreSQL restarts, reloads or the agent does.
#[derive(Debug)]
pub struct Remembered<K, T> {
    max_age: Duration,
    slot: std::sync::Mutex<Option<(K, Instant, T)>>,
}

impl<K: PartialEq, T: Clone> Remembered<K, T> {
    /// Values are kept at most `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Remembered {
            max_age,
            slot: std::sync::Mutex::new(None),
        }
    }

    /// The value remembered for `key`, if still young enough.
    pub fn get(&self, key: &K) -> Option<T> {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some((k, at, v)) if k == key && at.elapsed() < self.max_age => Some(v.clone()),
            _ => None,
        }
    }

    /// Remembers `value` for `key`.
    pub fn put(&self, key: K, value: T) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some((key, Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_computation() {
        let fresh = Arc::new(Fresh::new(Duration::from_secs(3600)));
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let mut tasks = vec![];
        for _ in 0..50 {
            let (fresh, runs, mut wait) = (Arc::clone(&fresh), Arc::clone(&runs), wait.clone());
            tasks.push(tokio::spawn(async move {
                fresh
                    .get(|| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = wait.wait_for(|r| *r).await;
                        7
                    })
                    .await
            }));
        }
        release.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn without_max_age_a_later_caller_computes_again() {
        let fresh = Fresh::new(Duration::ZERO);
        assert_eq!(fresh.get(|| async { 1 }).await, 1);
        assert_eq!(fresh.get(|| async { 2 }).await, 2);
    }

    #[test]
    fn remembered_until_the_key_changes_or_it_is_too_old() {
        let r = Remembered::new(Duration::from_secs(3600));
        assert_eq!(r.get(&1), None::<&str>);
        r.put(1, "a");
        assert_eq!(r.get(&1), Some("a"));
        assert_eq!(r.get(&2), None);
        let young = Remembered::new(Duration::ZERO);
        young.put(1, "a");
        assert_eq!(young.get(&1), None);
    }
}
