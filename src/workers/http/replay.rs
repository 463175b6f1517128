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
//! goes through SQLite before the answer, as the slow path did.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::db::Db;
use super::error::ApiError;

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
        }
        // The map alone is not trusted: SQLite decides, before the answer.
        let id = id.to_string();
        db.write_quiet(move |c| crate::store::signed::remember(c, &id, now as f64, expires as f64))
            .await
    }

    /// Writes the recorded ids to SQLite (one transaction) and forgets the
    /// expired ones there.
    pub async fn flush(&self, db: &Db, now: i64) {
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
}
