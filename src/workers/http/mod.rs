//! The http worker: TLS (rustls) and HTTP/1.1 (hyper) on the listener inherited
//! from the supervisor. Faces the network, so it holds no database password and
//! cannot run pg_ctl: everything PostgreSQL-related is an IPC request to the
//! probe worker, every control action a request to the pg_ctl worker.

mod access_log;
mod budget;
pub mod core;
mod credentials;
pub mod db;
mod documents;
mod fresh;
pub mod health;
pub mod hosts;
mod json_errors;
mod limits;
pub mod login_guard;
pub mod metrics;
pub mod openapi;
mod pipeline;
#[cfg(test)]
mod pipeline_tests;
mod primed;
pub mod replay;
pub mod routes;
pub mod session_cache;
pub mod state;
pub mod v9;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::ipc::fds::LISTENER_FD;

use super::ctx::{Event, WorkerCtx};

/// A TLS handshake must finish within this, so a silent client cannot pin a task.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Request headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers): a signed 9.x request
/// with a 4096-bit key is about 1.2 KiB; nginx's default is 4 × 8 KiB.
/// Past it, 431 (hyper's default, 400 KiB, let 300 connections hold
/// 110 MiB of headers).
const MAX_HEAD: usize = 32 * 1024;
/// Most header lines in a request.
const MAX_HEADERS: usize = 64;
/// How often freed heap is handed back to the OS after traffic.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);
/// Time given to open connections on stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the http worker until stopped.
pub fn run(ctx: WorkerCtx) -> i32 {
    tune_allocator();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("http")
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(serve(ctx)),
        Err(e) => {
            error!("cannot start the async runtime: {e}");
            1
        }
    }
}

async fn serve(ctx: WorkerCtx) -> i32 {
    let settings = ctx.settings();
    let acceptor = match settings.tls.as_ref().map(crate::tls::acceptor) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            error!("TLS setup failed: {e}");
            return crate::ipc::WorkerExit::Config.code();
        }
        None => {
            error!("no TLS material received from the supervisor");
            return crate::ipc::WorkerExit::Config.code();
        }
    };
    // SAFETY: fd 4 is the TCP listener by the fd contract (ipc::fds).
    let std_listener = unsafe { std::net::TcpListener::from_raw_fd(LISTENER_FD) };
    let listener = match std_listener
        .set_nonblocking(true)
        .and_then(|_| tokio::net::TcpListener::from_std(std_listener))
    {
        Ok(l) => l,
        Err(e) => {
            error!("inherited listener unusable: {e}");
            return 1;
        }
    };
    let db = match db::Db::open(&settings.config.temboard.home) {
        Ok(db) => db,
        Err(e) => {
            error!("{e}");
            return 1;
        }
    };
    let state = Arc::new(state::AppState::new(ctx.clone(), db));
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let events = ctx.events.clone();
    std::thread::spawn(move || {
        while let Ok(ev) = events.recv() {
            if matches!(ev, Event::Stop) {
                break;
            }
        }
        let _ = stop_tx.send(true);
    });
    let active = Arc::new(AtomicUsize::new(0));
    let limits = limits::Limits::from_rlimit();
    tokio::spawn(give_memory_back(Arc::clone(&state)));
    tokio::spawn(record_signed_ids(Arc::clone(&state)));
    ctx.ready();
    info!("serving HTTPS");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let per_client = usize::try_from(
                        state.ctx.settings().config.temboard.max_connections_per_client,
                    )
                    .unwrap_or(usize::MAX);
                    let Some(place) = limits.admit(peer.ip(), per_client) else {
                        // Closed before any TLS work.
                        drop(tcp);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    let state = Arc::clone(&state);
                    let stop = stop_rx.clone();
                    let active = Arc::clone(&active);
                    active.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        connection(tcp, peer, acceptor, state, stop).await;
                        drop(place);
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop_rx.changed() => break,
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    while active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state
        .replay
        .flush(&state.db, chrono::Utc::now().timestamp())
        .await;
    0
}

/// Writes the ids of signed requests to SQLite every 100 ms (see replay).
async fn record_signed_ids(state: Arc<state::AppState>) {
    loop {
        tokio::time::sleep(replay::FLUSH_EVERY).await;
        state
            .replay
            .flush(&state.db, chrono::Utc::now().timestamp())
            .await;
    }
}

/// Keeps what bursts of requests allocate from staying behind.
///
/// glibc gives each thread that meets contention its own 64 MiB arena, and
/// raises its mmap threshold each time a large block is freed, so that 1 MiB
/// bodies end up inside arenas; both leave megabytes scattered in arenas
/// after a burst that `malloc_trim` cannot give back. Four arenas (two
/// would make the runtime and blocking threads queue on their locks: /metrics
/// at c=16 went from 10,400 to 4,600 req/s) and a fixed threshold keep large
/// buffers in their own mappings, freed on release.
fn tune_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before the
    // runtime starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns freed heap to the OS once traffic calms down. glibc keeps what
/// large requests (1 MiB bodies, 400 KiB header buffers) freed inside its
/// arenas; a production agent should not sit on that after a burst.
async fn give_memory_back(state: Arc<state::AppState>) {
    let mut seen = 0;
    // A few more rounds after the last request: the runtime's blocking
    // threads end 10 s after their last task and leave their heap behind.
    let mut rounds_left = 0;
    loop {
        tokio::time::sleep(TRIM_INTERVAL).await;
        // Requests answered so far: the counts `/metrics` keeps anyway.
        let now: u64 = match state.requests.lock() {
            Ok(counts) => counts.values().sum(),
            Err(_) => continue,
        };
        if now != seen {
            seen = now;
            rounds_left = 4;
        }
        if rounds_left > 0 {
            rounds_left -= 1;
            // SAFETY: malloc_trim only walks the allocator's own arenas.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<state::AppState>,
    mut stop: watch::Receiver<bool>,
) {
    // Boxed, like the HTTP part below: the task of an idle connection keeps
    // only what waiting for its first byte needs (~1.4 KiB less a connection).
    let Some(mut tls) = Box::pin(handshake(tcp, peer, acceptor)).await else {
        return;
    };
    // Nothing but the TLS state is spent on a client until it sends a byte
    // (primed.rs); the header timeout covers the wait.
    let first = tokio::select! {
        b = tokio::time::timeout(HEADER_TIMEOUT, tls.read_u8()) => match b {
            Ok(Ok(b)) => b,
            _ => return,
        },
        _ = stop.changed() => return,
    };
    let io = primed::Primed::new(first, tls);
    // Boxed: the HTTP state machine is large, and an idle connection's task
    // should not carry its size while it waits above.
    Box::pin(serve_http(io, peer, state, stop)).await;
}

/// The TLS handshake, within its timeout.
async fn handshake(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    // Plain HTTP on the HTTPS port (a client typing http://): answered in
    // plain HTTP with a JSON error naming the https URL, as nginx does,
    // instead of a few bytes of TLS alert that curl shows as "HTTP/0.9".
    // One deadline for the first byte and the handshake together.
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0].is_ascii_uppercase() => {
            plain_http_refusal(tcp).await;
            return None;
        }
        Ok(Ok(1)) => {}
        _ => {
            tracing::debug!("TLS handshake with {peer} timed out or the client left");
            return None;
        }
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake with {peer} failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer} timed out");
            None
        }
    }
}

/// Answers a plain-HTTP request with a 400 naming the https URL, then
/// closes after reading what the client sent (bounded in size and time, so
/// the answer is not destroyed by a reset over unread data).
async fn plain_http_refusal(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = vec![0u8; 8192];
    let mut len = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while len < head.len() && !head[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, tcp.read(&mut head[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&head[..len]);
    let host = text
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.trim().to_string())
        })
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "<host>:<port>".into());
    let body = serde_json::json!({
        "error": format!("This port speaks HTTPS, not plain HTTP: use https://{host}/")
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nServer: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        state::SERVER_HEADER,
        body.len()
    );
    if tcp.write_all(answer.as_bytes()).await.is_ok() {
        let _ = tcp.shutdown().await;
        // Lingering close: what the client still sends is read and dropped
        // for a moment, so the close does not turn into a reset.
        let mut sink = [0u8; 4096];
        let linger = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut budget = 64 * 1024;
        while budget > 0 {
            match tokio::time::timeout_at(linger, tcp.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => budget -= n.min(budget),
                _ => break,
            }
        }
    }
}

/// HTTP/1.1 on a connection that has started sending a request.
async fn serve_http<T>(
    io: primed::Primed<T>,
    peer: SocketAddr,
    state: Arc<state::AppState>,
    mut stop: watch::Receiver<bool>,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // The request future is boxed so the connection can be driven without
    // shutting its IO down (poll_without_shutdown needs it Unpin): the
    // lingering close below needs the IO back.
    let service = hyper::service::service_fn(move |req| {
        let state = Arc::clone(&state);
        Box::pin(async move { Ok::<_, Infallible>(pipeline::handle(req, peer, state).await) })
    });
    let mut conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(true)
        .serve_connection(
            TokioIo::new(json_errors::JsonErrors::new(io, state::SERVER_HEADER)),
            service,
        );
    let done = tokio::select! {
        r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
        _ = stop.changed() => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
        }
    };
    if let Err(e) = &done {
        tracing::debug!("connection with {peer}: {e}");
        // A body of ours that failed (a streamed answer cut): close without
        // TLS close_notify, so that even an HTTP/1.0 client, whose body ends
        // with the connection, sees a truncated answer and not a whole one.
        if e.is_user() {
            return;
        }
    }
    if *stop.borrow() {
        return;
    }
    // After an answer hyper wrote itself too (431 to a head past
    // MAX_HEAD, 400 to a malformed one): the client may still be sending.
    let io = conn.into_parts().io.into_inner();
    tokio::select! {
        _ = linger(io) => {}
        // A stopping worker does not wait for lingering clients.
        _ = stop.changed() => {}
    }
}

/// Longest a closing connection keeps discarding what the client sends.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes discarded while lingering.
const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// Closes the way nginx's lingering close does: the answer is complete
/// (TLS close_notify, then FIN), then what the client still sends is read
/// and discarded — for [`LINGER_TIME`] and [`LINGER_BYTES`] at most — until it
/// closes too. Closing with unread data would make the kernel send a reset,
/// which can destroy the answer (a 413 to an oversized body) before the
/// client reads it.
async fn linger<T>(mut io: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    if tokio::time::timeout_at(deadline, io.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut left = LINGER_BYTES;
    let mut buf = vec![0u8; 16 * 1024];
    while left > 0 {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}
