//! Replay refusal for temBoard 9.x signed requests: a request id is accepted
//! once within its date window.
//!
//! Why in memory first: writing each id to SQLite before answering cost a
//! signed request about 95 µs of CPU. The ids are checked and recorded in a
//! map here (microseconds) and written to SQLite in one transaction every
//! [`FLUSH_EVERY`] off the request path, and on a clean stop; a new worker
//! loads the unexpired ones at its first signed request. What a crash can
//! lose is the last [`FLUSH_EVERY`] of ids, which a replay would then get
//! through once — the price, documented in docs/api.md.
//!
//! Memory stays bounded: only requests with a valid signature (only the UI
//! can make them) are recorded, each for its window, and past
//! [`MAX_IN_MEMORY`] ids the map is no longer trusted alone: every id then
//! goes through SQLite before the answer, as the slow path did (purging
//! expired ids as it goes). Once the unexpired ids fall back under half the
//! bound, the flush loads them again and the map is trusted again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::db::Db;
use crate::api::error::ApiError;

/// Ids kept in memory at most (about 100 bytes each).
pub const MAX_IN_MEMORY: usize = 200_000;
/// How often recorded ids are written to SQLite.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct State {
    /// id → expiry (seconds since the epoch).
    seen: HashMap<String, i64>,
    /// Recorded, not yet in SQLite.
    pending: Vec<(String, i64)>,
    /// Whether `seen` holds every unexpired id SQLite has (else a miss must
    /// ask SQLite).
    complete: bool,
    /// Whether SQLite's ids were loaded.
    loaded: bool,
    /// Checks since the last sweep of expired ids.
    since_sweep: u32,
    /// Ids on their way through SQLite (the slow path): the map cannot be
    /// declared complete while one is.
    in_flight: usize,
    /// When [`Replay::recover`] last counted SQLite's ids.
    last_recover: i64,
}

/// An id on its way through SQLite: given back to the map when the check
/// ends *or is dropped* (a client that leaves, a request deadline), so
/// `in_flight` never stays raised and `recover` can trust the map again.
/// A check that did not finish counts its id as seen: SQLite may have
/// recorded it, and refusing a reused id costs nothing (the UI never reuses
/// one), while forgetting a recorded one would let its replay through.
struct SlowPath<'a> {
    replay: &'a Replay,
    id: &'a str,
    expires: i64,
    /// Whether SQLite took the id as new (`None`: the check did not end).
    fresh: Option<bool>,
}

impl Drop for SlowPath<'_> {
    fn drop(&mut self) {
        let mut s = self.replay.lock();
        s.in_flight -= 1;
        if self.fresh != Some(false) {
            if s.seen.len() < MAX_IN_MEMORY {
                s.seen.insert(self.id.to_string(), self.expires);
            } else {
                s.complete = false;
            }
        }
    }
}

/// The replay guard of one http worker.
#[derive(Debug, Default)]
pub struct Replay {
    state: Mutex<State>,
    loading: tokio::sync::Mutex<()>,
}

impl Replay {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the unexpired ids of earlier workers, once.
    async fn load(&self, db: &Db, now: i64) -> Result<(), ApiError> {
        if self.lock().loaded {
            return Ok(());
        }
        let _one = self.loading.lock().await;
        if self.lock().loaded {
            return Ok(());
        }
        let limit = MAX_IN_MEMORY as i64 + 1;
        let rows = db
            .read(move |c| crate::store::signed::unexpired(c, now as f64, limit))
            .await?;
        let mut s = self.lock();
        s.complete = rows.len() <= MAX_IN_MEMORY;
        s.seen.extend(rows.into_iter().take(MAX_IN_MEMORY));
        s.loaded = true;
        Ok(())
    }

    /// `true` the first time `id` is seen within its window, `false` for a
    /// replay.
    pub async fn first_time(
        &self,
        db: &Db,
        id: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool, ApiError> {
        self.load(db, now).await?;
        {
            let mut s = self.lock();
            s.since_sweep += 1;
            if s.since_sweep >= 1024 {
                s.since_sweep = 0;
                s.seen.retain(|_, e| *e >= now);
            }
            if let Some(e) = s.seen.get(id) {
                if *e >= now {
                    return Ok(false);
                }
            }
            if s.seen.len() >= MAX_IN_MEMORY {
                s.complete = false;
            }
            if s.complete {
                s.seen.insert(id.to_string(), expires);
                s.pending.push((id.to_string(), expires));
                return Ok(true);
            }
            // Counted under the same lock that found the map incomplete, so
            // `recover` cannot declare it complete in between.
            s.in_flight += 1;
        }
        // The map alone is not trusted: SQLite decides, before the answer.
        let mut slow = SlowPath {
            replay: self,
            id,
            expires,
            fresh: None,
        };
        let owned = id.to_string();
        let fresh = db
            .write_quiet(move |c| {
                crate::store::signed::remember(c, &owned, now as f64, expires as f64)
            })
            .await;
        slow.fresh = Some(matches!(fresh, Ok(true)));
        fresh
    }

    /// Trusts the map again once SQLite's unexpired ids fit in half of it:
    /// they are loaded, with every id the slow path recorded meanwhile
    /// (each is put in the map after SQLite took it; none is in flight when
    /// the map is declared complete).
    async fn recover(&self, db: &Db, now: i64) {
        {
            let mut s = self.lock();
            if s.complete || !s.loaded || now - s.last_recover < 10 {
                return;
            }
            s.last_recover = now;
            s.seen.retain(|_, e| *e >= now);
        }
        let half = (MAX_IN_MEMORY / 2) as i64;
        let rows = db
            .read(move |c| {
                if crate::store::signed::count_unexpired(c, now as f64)? > half {
                    return Ok(None);
                }
                crate::store::signed::unexpired(c, now as f64, half + 1).map(Some)
            })
            .await;
        let Ok(Some(rows)) = rows else {
            return;
        };
        let mut s = self.lock();
        if s.in_flight == 0 && s.seen.len() + rows.len() < MAX_IN_MEMORY {
            s.seen.extend(rows);
            s.complete = true;
            tracing::info!("signed request ids back under the in-memory bound");
        }
    }

    /// Writes the recorded ids to SQLite (one transaction) and forgets the
    /// expired ones there.
    pub async fn flush(&self, db: &Db, now: i64) {
        self.recover(db, now).await;
        let pending = std::mem::take(&mut self.lock().pending);
        if pending.is_empty() {
            return;
        }
        let kept = pending.clone();
        let written = db
            .write_quiet(move |c| crate::store::signed::record(c, &pending, now as f64))
            .await;
        if let Err(e) = written {
            // Kept for the next round: nothing recorded is dropped.
            tracing::warn!("cannot record signed request ids: {e}");
            let mut s = self.lock();
            let mut kept = kept;
            kept.append(&mut s.pending);
            s.pending = kept;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ids_are_refused_again_and_survive_a_new_worker() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let r = Replay::default();
        assert!(r.first_time(&db, "a", 100, 200).await.unwrap());
        assert!(!r.first_time(&db, "a", 150, 250).await.unwrap());
        r.flush(&db, 150).await;
        // A new worker (a restart) loads what was flushed.
        let again = Replay::default();
        assert!(!again.first_time(&db, "a", 160, 260).await.unwrap());
        assert!(again.first_time(&db, "b", 160, 260).await.unwrap());
        // Past its window an id is new again (the date check refuses such
        // an old request anyway).
        assert!(again.first_time(&db, "a", 300, 400).await.unwrap());
    }

    #[test]
    fn a_dropped_slow_check_gives_its_place_back_and_counts_the_id() {
        let r = Replay::default();
        r.lock().in_flight = 1;
        // A client gone (or a deadline) while SQLite had the id: dropped.
        drop(SlowPath {
            replay: &r,
            id: "x",
            expires: 10,
            fresh: None,
        });
        assert_eq!(r.lock().in_flight, 0);
        assert!(
            r.lock().seen.contains_key("x"),
            "a replay of x must be refused"
        );
        r.lock().in_flight = 1;
        drop(SlowPath {
            replay: &r,
            id: "y",
            expires: 10,
            fresh: Some(false),
        });
        assert_eq!(r.lock().in_flight, 0);
    }

    fn stored(db_dir: &std::path::Path) -> i64 {
        let c = crate::store::open(db_dir).unwrap();
        c.query_row("SELECT count(*) FROM signed_requests", [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn past_the_bound_ids_are_still_purged_and_the_map_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let many: Vec<(String, i64)> = (0..=MAX_IN_MEMORY)
            .map(|i| (format!("id{i}"), 1000))
            .collect();
        db.write_quiet(move |c| crate::store::signed::record(c, &many, 0.0))
            .await
            .unwrap();
        let r = Replay::default();
        // More than the bound in the window: the map is not trusted alone.
        assert!(!r.first_time(&db, "id7", 500, 1000).await.unwrap());
        assert!(!r.lock().complete);
        // Later, every old id expired: the slow path purges as it goes...
        let before = stored(dir.path());
        assert!(r.first_time(&db, "new1", 2000, 3000).await.unwrap());
        assert!(stored(dir.path()) <= before - 999, "expired ids purged");
        // ...and the flush trusts the map again, with the slow path's ids.
        r.flush(&db, 2000).await;
        assert!(r.lock().complete);
        assert!(!r.first_time(&db, "new1", 2001, 3000).await.unwrap());
        assert!(r.first_time(&db, "new2", 2001, 3000).await.unwrap());
    }
}
