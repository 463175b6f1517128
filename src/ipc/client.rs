//! Clients of the worker channels, with request ids, timeouts and a small pool
//! of idle connections. A broken connection is dropped, never reused; the next
//! call reconnects. The caller maps [`IpcError`] to "worker unavailable".

use std::marker::PhantomData;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::frame::{read_frame, read_frame_async, write_frame, write_frame_async};
use super::messages::{Request, Response, WorkerError};
use super::IpcError;

/// Idle connections kept per client.
const POOL: usize = 8;

/// Result of a call: transport failure, or the worker's own answer.
pub type CallResult<R> = Result<Result<R, WorkerError>, IpcError>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Async client (http worker).
pub struct AsyncClient<C, R> {
    path: PathBuf,
    next_id: AtomicU64,
    idle: Mutex<Vec<tokio::net::UnixStream>>,
    _types: PhantomData<fn(C) -> R>,
}

impl<C: Serialize, R: DeserializeOwned> AsyncClient<C, R> {
    /// A client of the socket at `path`; connects lazily.
    pub fn new(path: PathBuf) -> Self {
        AsyncClient {
            path,
            next_id: AtomicU64::new(1),
            idle: Mutex::new(Vec::new()),
            _types: PhantomData,
        }
    }

    /// Sends `call` and waits at most `timeout` for the reply.
    pub async fn call(&self, call: C, timeout: Duration) -> CallResult<R> {
        let pooled = lock(&self.idle).pop();
        let (stream, result) = self.exchange(pooled, call, timeout).await?;
        let mut idle = lock(&self.idle);
        if idle.len() < POOL {
            idle.push(stream);
        }
        Ok(result)
    }

    /// One request and its reply frame, on `stream` or a new connection.
    async fn exchange(
        &self,
        stream: Option<tokio::net::UnixStream>,
        call: C,
        timeout: Duration,
    ) -> Result<(tokio::net::UnixStream, Result<R, WorkerError>), IpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let ms = timeout.as_millis() as u64;
        let mut stream = match stream {
            Some(s) => s,
            None => tokio::time::timeout(timeout, tokio::net::UnixStream::connect(&self.path))
                .await
                .map_err(|_| IpcError::Timeout(ms))??,
        };
        let exchange = async {
            write_frame_async(&mut stream, &Request { id, call }).await?;
            read_frame_async::<Response<R>, _>(&mut stream).await
        };
        let resp = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| IpcError::Timeout(ms))??;
        if resp.id != id {
            return Err(IpcError::Mismatch {
                want: id,
                got: resp.id,
            });
        }
        Ok((stream, resp.result))
    }
}

/// A streamed answer being read, on a connection of its own (closed when
/// dropped: a client that goes away stops the worker's writes).
pub struct ChunkStream {
    stream: tokio::net::UnixStream,
    timeout: Duration,
}

impl ChunkStream {
    /// The next chunk, `None` at the end; each waits at most the call's
    /// timeout.
    pub async fn next(&mut self) -> Result<Option<bytes::Bytes>, IpcError> {
        let ms = self.timeout.as_millis() as u64;
        tokio::time::timeout(self.timeout, super::stream::read_chunk(&mut self.stream))
            .await
            .map_err(|_| IpcError::Timeout(ms))?
    }
}

impl<C: Serialize, R: DeserializeOwned> AsyncClient<C, R> {
    /// Sends `call` on a new connection for a streamed answer: the reply
    /// (which comes with the first chunk), then the chunks. An error reply
    /// comes as usual.
    pub async fn stream(
        &self,
        call: C,
        timeout: Duration,
    ) -> Result<Result<(R, ChunkStream), WorkerError>, IpcError> {
        let (stream, result) = self.exchange(None, call, timeout).await?;
        Ok(result.map(|r| (r, ChunkStream { stream, timeout })))
    }
}

/// Blocking client (scheduler, tools).
pub struct SyncClient<C, R> {
    path: PathBuf,
    next_id: AtomicU64,
    idle: Mutex<Vec<UnixStream>>,
    _types: PhantomData<fn(C) -> R>,
}

impl<C: Serialize, R: DeserializeOwned> SyncClient<C, R> {
    /// A client of the socket at `path`; connects lazily.
    pub fn new(path: PathBuf) -> Self {
        SyncClient {
            path,
            next_id: AtomicU64::new(1),
            idle: Mutex::new(Vec::new()),
            _types: PhantomData,
        }
    }

    /// Sends `call` and waits at most `timeout` for the reply.
    pub fn call(&self, call: C, timeout: Duration) -> CallResult<R> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let pooled = lock(&self.idle).pop();
        let mut stream = match pooled {
            Some(s) => s,
            None => UnixStream::connect(&self.path)?,
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write_frame(&mut stream, &Request { id, call })?;
        let resp: Response<R> = read_frame(&mut stream).map_err(|e| match e {
            IpcError::Timeout(_) => IpcError::Timeout(timeout.as_millis() as u64),
            other => other,
        })?;
        if resp.id != id {
            return Err(IpcError::Mismatch {
                want: id,
                got: resp.id,
            });
        }
        let mut idle = lock(&self.idle);
        if idle.len() < POOL {
            idle.push(stream);
        }
        Ok(resp.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::messages::{ProbeCall, ProbeReply};
    use std::os::unix::net::UnixListener;

    #[test]
    fn sync_call_timeout_and_dead_peer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            // First connection: answer one request, then go silent.
            let (mut s, _) = listener.accept().unwrap();
            let req: Request<ProbeCall> = read_frame(&mut s).unwrap();
            write_frame(
                &mut s,
                &Response::<ProbeReply> {
                    id: req.id,
                    result: Ok(ProbeReply::Pong),
                },
            )
            .unwrap();
            let _second: Request<ProbeCall> = read_frame(&mut s).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(s);
            drop(listener);
        });
        let client: SyncClient<ProbeCall, ProbeReply> = SyncClient::new(path.clone());
        let r = client
            .call(ProbeCall::Ping, Duration::from_secs(2))
            .unwrap();
        assert_eq!(r, Ok(ProbeReply::Pong));
        let r = client.call(ProbeCall::Ping, Duration::from_millis(100));
        assert!(matches!(r, Err(IpcError::Timeout(100))), "{r:?}");
        server.join().unwrap();
        // Listener gone: a clear error, not a hang.
        std::fs::remove_file(&path).ok();
        let r = client.call(ProbeCall::Ping, Duration::from_millis(100));
        assert!(matches!(r, Err(IpcError::Io(_))), "{r:?}");
    }

    #[test]
    fn an_answer_larger_than_a_frame_reaches_the_async_client_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // 9 MiB of JSON: three frames of at most MAX_FRAME.
        let big = serde_json::json!({ "rows": "r".repeat(9 * 1024 * 1024) });
        let sent = big.clone();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let req: Request<ProbeCall> = read_frame(&mut s).unwrap();
            write_frame(
                &mut s,
                &Response::<ProbeReply> {
                    id: req.id,
                    result: Ok(ProbeReply::Document { value: sent }),
                },
            )
            .unwrap();
        });
        let client: AsyncClient<ProbeCall, ProbeReply> = AsyncClient::new(path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt
            .block_on(client.call(ProbeCall::PgInfo, Duration::from_secs(30)))
            .unwrap();
        assert_eq!(r, Ok(ProbeReply::Document { value: big }));
        server.join().unwrap();
    }
}
