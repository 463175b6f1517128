//! The http worker's handle on the state database: blocking SQLite calls run
//! on tokio's blocking pool so they never stall the request tasks.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::error::ApiError;

/// Shared connection (SQLite serializes writers anyway; WAL lets the other
/// processes read meanwhile).
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens `<home>/agent.db`.
    pub fn open(home: &Path) -> Result<Db, crate::store::StoreError> {
        Ok(Db {
            conn: Arc::new(Mutex::new(crate::store::open(home)?)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
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
