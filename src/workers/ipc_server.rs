//! The blocking IPC server of the probe and pg_ctl workers: one thread per
//! client connection, a bounded number of them.

use std::os::fd::FromRawFd;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, error, warn};

use super::{wait_for_stop, WorkerCtx};
use crate::ipc::fds::LISTENER_FD;
use crate::ipc::frame::{read_frame, write_frame};
use crate::ipc::messages::{Request, Response, WorkerError};
use crate::ipc::stream::{ChunkWriter, Sink};
use crate::ipc::IpcError;

/// Most concurrent client connections one IPC server handles.
const MAX_IPC_CONNECTIONS: usize = 64;

/// Lets a call answer as a stream (see [`crate::ipc::stream`]): the
/// connection then carries that one answer and is closed.
pub struct Streaming<'a> {
    stream: &'a mut std::os::unix::net::UnixStream,
    id: u64,
    used: bool,
}

impl Streaming<'_> {
    /// Sends `reply` as the reply frame, then what `work` writes as chunks.
    /// An error before `work` wrote anything is an ordinary error reply
    /// (returned); after, the answer is cut with the abort marker.
    pub fn run<R: Serialize>(
        &mut self,
        reply: R,
        work: impl FnOnce(&mut dyn Sink) -> Result<(), WorkerError>,
    ) -> Result<(), WorkerError> {
        let head = crate::ipc::frame::encode(&Response {
            id: self.id,
            result: Ok::<R, WorkerError>(reply),
        })
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
        let mut w = ChunkWriter::new(&mut *self.stream, head);
        match work(&mut w) {
            Ok(()) => {
                self.used = true;
                if let Err(e) = w.finish() {
                    debug!("streamed answer not delivered: {e}");
                }
                Ok(())
            }
            Err(e) if !w.started() => Err(e),
            Err(e) => {
                self.used = true;
                warn!("streamed answer cut: {e}");
                let _ = w.abort();
                Ok(())
            }
        }
    }
}

/// Serves `Request<C>` / `Response<R>` on the inherited UNIX listener, one
/// thread per client connection, until a stop request. `handle` must be
/// thread-safe; it is called concurrently. A call it answers through
/// [`Streaming::run`] gets no reply frame here, and its connection closes.
pub fn serve_ipc<C, R, H>(ctx: &WorkerCtx, handle: H) -> i32
where
    C: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    H: Fn(C, &mut Streaming<'_>) -> Result<R, WorkerError> + Send + Sync + 'static,
{
    // SAFETY: fd 4 is this worker's UNIX listener by the fd contract.
    let listener = unsafe { UnixListener::from_raw_fd(LISTENER_FD) };
    let handle = Arc::new(handle);
    let active = Arc::new(AtomicUsize::new(0));
    let role = ctx.role;
    let accept = std::thread::Builder::new()
        .name("accept".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let mut stream = match conn {
                    Ok(s) => s,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if active.load(Ordering::SeqCst) >= MAX_IPC_CONNECTIONS {
                    warn!("too many {} clients; closing a connection", role.as_str());
                    continue;
                }
                active.fetch_add(1, Ordering::SeqCst);
                let h = Arc::clone(&handle);
                let a = Arc::clone(&active);
                let spawned = std::thread::Builder::new()
                    .name("client".into())
                    .spawn(move || {
                        loop {
                            let req: Request<C> = match read_frame(&mut stream) {
                                Ok(r) => r,
                                Err(IpcError::Closed) => break,
                                Err(e) => {
                                    debug!("client connection dropped: {e}");
                                    break;
                                }
                            };
                            let mut streaming = Streaming {
                                stream: &mut stream,
                                id: req.id,
                                used: false,
                            };
                            let result = h(req.call, &mut streaming);
                            if streaming.used {
                                break;
                            }
                            if write_frame(&mut stream, &Response { id: req.id, result }).is_err() {
                                break;
                            }
                        }
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    // The thread that would have given the slot back never
                    // ran: give it back here, or the server fills up.
                    active.fetch_sub(1, Ordering::SeqCst);
                    error!("cannot start a client thread: {e}");
                }
            }
        });
    if let Err(e) = accept {
        error!("cannot start the accept thread: {e}");
        return 1;
    }
    ctx.ready();
    wait_for_stop(ctx);
    0
}
