//! The http worker's handle on the state database: blocking SQLite calls run
//! on tokio's blocking pool so they never stall the request tasks.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use crate::api::error::ApiError;

/// Shared connection (SQLite serializes writers anyway; WAL lets the other
/// processes read meanwhile).
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    /// Bumped by every call that may have written: answers cached from the
    /// database are valid only for the epoch they were read in.
    epoch: Arc<AtomicU64>,
}

impl Db {
    /// Opens `<home>/agent.db`.
    pub fn open(home: &Path) -> Result<Db, crate::store::StoreError> {
        Ok(Db {
            conn: Arc::new(Mutex::new(crate::store::open(home)?)),
            epoch: Arc::default(),
        })
    }

    /// Runs `f` with the connection on the blocking pool; `f` may write.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let out = self.read(f).await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        out
    }

    /// Runs `f`, which writes only what no cached answer depends on (the
    /// replay table of signed requests): the write epoch, which throws the
    /// `/dashboard` cache away, is left alone.
    pub async fn write_quiet<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.read(f).await
    }

    /// Current write epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Runs `f`, which only reads, with the connection on the blocking pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("database task: {e}")))?
        .map_err(ApiError::from)
    }
}
