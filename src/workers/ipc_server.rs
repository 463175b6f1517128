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

use super::ctx::{wait_for_stop, WorkerCtx};
use crate::ipc::fds::LISTENER_FD;
use crate::ipc::frame::{read_frame, write_frame};
use crate::ipc::messages::{Request, Response, WorkerError};
use crate::ipc::stream::{ChunkWriter, Sink};
use crate::ipc::IpcError;

/// Most concurrent client connections one IPC server handles.
const MAX_IPC_CONNECTIONS: usize = 64;

/// Most streamed answers one worker sends at once: each holds a client
/// thread (of [`MAX_IPC_CONNECTIONS`]) until its reader has it all or
/// stalls past [`SEND_DEADLINE`].
const MAX_STREAMS: usize = 8;
/// Most streamed answers produced at once: each holds a PostgreSQL
/// connection while its query runs, and the probe pool has
/// `MAX_CONNECTIONS` (4) for every route; two leave the others theirs.
const MAX_PRODUCING: usize = 2;
/// Largest answer spooled (the disk under the home is the PostgreSQL
/// host's too).
pub const MAX_SPOOL: u64 = 1 << 30;
/// Longest one chunk may wait for its reader before the answer is cut and
/// its thread freed.
pub const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// The streams of a worker in flight: produced, and sent.
#[derive(Default)]
pub struct StreamBudget {
    producing: AtomicUsize,
    sending: AtomicUsize,
}

/// One place of a [`StreamBudget`] counter, given back on drop.
struct Place<'a>(&'a AtomicUsize);

impl<'a> Place<'a> {
    fn take(counter: &'a AtomicUsize, most: usize) -> Option<Place<'a>> {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < most).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(counter))
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A [`Sink`] on an unnamed file: the work writes its whole answer here,
/// ends (its PostgreSQL connection and snapshot released), and only then
/// is the answer sent, at the reader's pace.
struct Spool {
    file: std::io::BufWriter<std::fs::File>,
    len: u64,
}

impl Sink for Spool {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.len += bytes.len() as u64;
        if self.len > MAX_SPOOL {
            return Err(std::io::Error::other(format!(
                "the answer is larger than {} MiB",
                MAX_SPOOL >> 20
            )));
        }
        self.file.write_all(bytes)
    }

    /// A spooled answer is never started: any failure is a plain error reply.
    fn started(&self) -> bool {
        false
    }
}

/// Lets a call answer as a stream (see [`crate::ipc::stream`]): the
/// connection then carries that one answer and is closed.
pub struct Streaming<'a> {
    stream: &'a mut std::os::unix::net::UnixStream,
    id: u64,
    used: bool,
    spool_dir: std::path::PathBuf,
    budget: &'a StreamBudget,
}

impl Streaming<'_> {
    /// Runs `work` into a spool file under the home, then sends `reply` as
    /// the reply frame and the spooled answer as chunks.
    ///
    /// Why spooled: the time a PostgreSQL connection or snapshot is held
    /// must never depend on how fast a client reads. The work ends before
    /// the first byte leaves; a reader that stalls holds only a file and this
    /// thread, for [`SEND_DEADLINE`] per chunk at most. Any failure of the
    /// work is an ordinary error reply (nothing was sent yet), and past the
    /// budgets the call is refused with [`WorkerError::Busy`].
    pub fn run<R: Serialize>(
        &mut self,
        reply: R,
        work: impl FnOnce(&mut dyn Sink) -> Result<(), WorkerError>,
    ) -> Result<(), WorkerError> {
        use std::io::{Read, Seek};
        let busy = |what: &str| {
            WorkerError::Busy(format!(
                "{what}: the agent is already answering as many large requests as it allows, retry shortly"
            ))
        };
        let _sending = Place::take(&self.budget.sending, MAX_STREAMS)
            .ok_or_else(|| busy("too many streamed answers in flight"))?;
        let head = crate::ipc::frame::encode(&Response {
            id: self.id,
            result: Ok::<R, WorkerError>(reply),
        })
        .map_err(|e| WorkerError::Internal(e.to_string()))?;
        let mut file = {
            let _producing = Place::take(&self.budget.producing, MAX_PRODUCING)
                .ok_or_else(|| busy("too many streamed answers being read from PostgreSQL"))?;
            let file = tempfile::tempfile_in(&self.spool_dir).map_err(|e| {
                WorkerError::Failed(format!(
                    "cannot spool the answer under {}: {e}",
                    self.spool_dir.display()
                ))
            })?;
            let mut spool = Spool {
                file: std::io::BufWriter::with_capacity(crate::ipc::stream::CHUNK, file),
                len: 0,
            };
            work(&mut spool)?;
            spool
                .file
                .into_inner()
                .map_err(|e| e.into_error())
                .and_then(|mut f| f.rewind().map(|()| f))
                .map_err(|e| WorkerError::Failed(format!("cannot spool the answer: {e}")))?
        };
        self.used = true;
        if let Err(e) = self.stream.set_write_timeout(Some(SEND_DEADLINE)) {
            debug!("no write deadline on a stream: {e}");
            return Ok(());
        }
        let mut w = ChunkWriter::new(&mut *self.stream, head);
        let mut buf = vec![0u8; crate::ipc::stream::CHUNK];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    warn!("streamed answer cut: cannot read its spool: {e}");
                    let _ = w.abort();
                    return Ok(());
                }
            };
            if let Err(e) = w.write(&buf[..n]) {
                debug!("streamed answer not delivered (the reader stalled or left): {e}");
                return Ok(());
            }
        }
        if let Err(e) = w.finish() {
            debug!("streamed answer not delivered: {e}");
        }
        Ok(())
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
    let budget = Arc::new(StreamBudget::default());
    let role = ctx.role;
    let worker_ctx = ctx.clone();
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
                let budget = Arc::clone(&budget);
                let ctx = worker_ctx.clone();
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
                                spool_dir: ctx.settings().config.temboard.home.clone(),
                                budget: &budget,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;

    fn streaming<'a>(
        stream: &'a mut UnixStream,
        dir: &std::path::Path,
        budget: &'a StreamBudget,
    ) -> Streaming<'a> {
        Streaming {
            stream,
            id: 7,
            used: false,
            spool_dir: dir.to_path_buf(),
            budget,
        }
    }

    #[test]
    fn a_stream_is_produced_whole_before_its_first_byte_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ours, mut theirs) = UnixStream::pair().unwrap();
        let budget = StreamBudget::default();
        let mut s = streaming(&mut ours, dir.path(), &budget);
        let mut seen_while_producing = None;
        let probe = theirs.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = vec![];
            theirs.read_to_end(&mut all).unwrap();
            all
        });
        s.run("head", |out| {
            out.write(&vec![b'x'; crate::ipc::stream::CHUNK * 3])
                .map_err(|e| WorkerError::Internal(e.to_string()))?;
            // Nothing reached the reader yet: the work still runs.
            let mut one = [0u8; 1];
            use nix::sys::socket::{recv, MsgFlags};
            use std::os::fd::AsRawFd;
            let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
            seen_while_producing = Some(recv(probe.as_raw_fd(), &mut one, flags));
            Ok(())
        })
        .unwrap();
        assert!(s.used);
        drop(ours);
        let wire = reader.join().unwrap();
        assert_eq!(seen_while_producing, Some(Err(nix::errno::Errno::EAGAIN)));
        assert!(wire.len() > crate::ipc::stream::CHUNK * 3);
        assert_eq!(budget.producing.load(Ordering::SeqCst), 0);
        assert_eq!(budget.sending.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_failure_after_writes_is_a_plain_error_reply() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ours, _theirs) = UnixStream::pair().unwrap();
        let budget = StreamBudget::default();
        let mut s = streaming(&mut ours, dir.path(), &budget);
        let r = s.run("head", |out| {
            out.write(&vec![1u8; crate::ipc::stream::CHUNK * 2])
                .map_err(|e| WorkerError::Internal(e.to_string()))?;
            Err(WorkerError::Failed("half-way".into()))
        });
        assert!(matches!(r, Err(WorkerError::Failed(_))), "{r:?}");
        assert!(!s.used, "the caller still answers with an error frame");
        // The spool left nothing behind under the home.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn streams_past_the_budgets_are_refused_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ours, _theirs) = UnixStream::pair().unwrap();
        let budget = StreamBudget::default();
        budget.producing.store(MAX_PRODUCING, Ordering::SeqCst);
        let mut s = streaming(&mut ours, dir.path(), &budget);
        let r = s.run("head", |_| Ok(()));
        assert!(matches!(r, Err(WorkerError::Busy(_))), "{r:?}");
        assert_eq!(budget.sending.load(Ordering::SeqCst), 0, "place given back");
        budget.producing.store(0, Ordering::SeqCst);
        budget.sending.store(MAX_STREAMS, Ordering::SeqCst);
        let r = s.run("head", |_| Ok(()));
        assert!(matches!(r, Err(WorkerError::Busy(_))), "{r:?}");
    }
}
