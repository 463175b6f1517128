//! IPC frame decoder (`src/ipc/frame.rs`).
//!
//! Why: every process reads frames from a UNIX socket; the supervisor reads
//! its workers' control sockets and the probe and pg_ctl workers serve the
//! other workers. A worker that misbehaves (a bug, a compromised http worker)
//! must not be able to crash or exhaust its peer by sending bytes.
//!
//! Properties checked, for `serde_json::Value` and for each real message type
//! of `src/ipc/messages.rs`:
//! - `read_frame` and `Decoder::push` / `next_message` never panic;
//! - no single allocation exceeds `MAX_MESSAGE` (16 MiB): a frame's length
//!   header (at most `MAX_FRAME`, 4 MiB) is checked before its bytes are
//!   allocated, and a message spanning frames stops at `MAX_MESSAGE`
//!   (enforced by the capping global allocator below, which aborts on a
//!   larger request);
//! - the three readers agree: `read_frame` on the whole input, `read_frame` on
//!   a reader that hands out a few bytes per call, and the incremental
//!   `Decoder` fed in chunks give the same message or the same kind of error;
//! - a decoded message survives `encode` then `read_frame` unchanged (floats
//!   within a few ULPs: serde_json's default float parsing is best-effort).
//!
//! Input layout: the first byte selects the message type (bits 0-2), the
//! chunk size of the slow readers (bits 3-6) and whether the rest is used as
//! raw bytes or wrapped in a frame with a correct length header (bit 7, which
//! lets the fuzzer explore the JSON side without guessing lengths).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use temboard_agent::ipc::frame::{encode, read_frame, Decoder, MAX_FRAME, MAX_MESSAGE};
use temboard_agent::ipc::messages::{
    PgCtlCall, PgCtlReply, ProbeCall, ProbeReply, Request, Response, ToSupervisor, ToWorker,
};
use temboard_agent::ipc::IpcError;

/// The system allocator, refusing (by aborting, which libFuzzer reports as a
/// crash with the stack of the caller) any single allocation above the frame
/// cap. Nothing in the decoding path has a reason to ask for more.
struct CappedAlloc;

const ALLOC_CAP: usize = MAX_MESSAGE;

fn over_cap(size: usize) -> ! {
    use std::io::Write;
    let _ = std::io::stderr()
        .write_all(b"ipc_frame fuzz target: single allocation above MAX_MESSAGE (16 MiB)\n");
    let _ = size;
    std::process::abort()
}

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            over_cap(layout.size());
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_CAP {
            over_cap(layout.size());
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_CAP {
            over_cap(new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

/// A reader handing out at most `chunk` bytes per call, like a slow socket.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Outcome of one read, comparable across readers (`IpcError` is neither
/// `Clone` nor `PartialEq`).
#[derive(Debug, PartialEq)]
enum Outcome<T> {
    Msg(T),
    Closed,
    Truncated,
    TooLarge(u32),
    MessageTooLarge,
    Malformed,
    Other(String),
}

fn outcome<T>(r: Result<T, IpcError>) -> Outcome<T> {
    match r {
        Ok(m) => Outcome::Msg(m),
        Err(IpcError::Closed) => Outcome::Closed,
        Err(IpcError::Truncated) => Outcome::Truncated,
        Err(IpcError::TooLarge(n)) => Outcome::TooLarge(n),
        Err(IpcError::MessageTooLarge(_)) => Outcome::MessageTooLarge,
        Err(IpcError::Malformed(_)) => Outcome::Malformed,
        Err(e) => Outcome::Other(e.to_string()),
    }
}

fn check<T>(bytes: &[u8], chunk: usize)
where
    T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    // 1. Blocking reader over the whole input.
    let whole = outcome(read_frame::<T, _>(&mut Cursor::new(bytes)));
    assert!(
        !matches!(whole, Outcome::Other(_)),
        "in-memory reader cannot fail with I/O errors: {whole:?}"
    );
    if let Outcome::TooLarge(n) = whole {
        assert!(n > MAX_FRAME, "TooLarge({n}) for a frame within the cap");
    }

    // 2. Blocking reader that trickles the same bytes.
    let slow = outcome(read_frame::<T, _>(&mut Trickle { data: bytes, chunk }));
    assert_eq!(whole, slow, "read_frame depends on how the bytes arrive");

    // 3. The supervisor's incremental decoder, fed `chunk` bytes at a time.
    let mut dec = Decoder::default();
    let mut first: Option<Outcome<T>> = None;
    let mut fed = 0;
    'feed: for piece in bytes.chunks(chunk) {
        dec.push(piece);
        fed += piece.len();
        assert!(dec.pending() <= fed, "decoder holds more than it was given");
        loop {
            match dec.next_message::<T>() {
                Ok(Some(m)) => {
                    if first.is_none() {
                        first = Some(Outcome::Msg(m));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if first.is_none() {
                        first = Some(outcome::<T>(Err(e)));
                    }
                    // The supervisor drops the connection on any error.
                    break 'feed;
                }
            }
        }
    }
    match (&whole, first) {
        // Not enough bytes for a frame: the decoder simply waits.
        (Outcome::Closed | Outcome::Truncated, None) => {}
        (w, Some(d)) => assert_eq!(w, &d, "Decoder and read_frame disagree"),
        (w, None) => panic!("read_frame gave {w:?} but the decoder waits for more"),
    }

    // 4. Whatever decodes survives a round trip through the encoder (floats
    //    within a few ULPs, see `close`).
    if let Outcome::Msg(m) = whole {
        let frame = encode(&m).expect("a decoded message must encode");
        let back: T = read_frame(&mut Cursor::new(&frame)).expect("re-read of our own frame");
        if m != back {
            let (a, b) = (
                serde_json::to_value(&m).unwrap(),
                serde_json::to_value(&back).unwrap(),
            );
            assert!(
                close(&a, &b),
                "message changed through encode/read_frame:\n{m:?}\n{back:?}"
            );
        }
    }
}

/// Equality of JSON documents, except that floats may differ by a few ULPs.
/// serde_json is built without its `float_roundtrip` feature, so its float
/// parsing is best-effort: `99...9` (70 digits) reads as 9.999999999999999e69,
/// which is written as such and then read as 1e70. Not a bug of the frame
/// code; see docs/fuzzing.md.
fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => (p - q).abs() <= p.abs().max(q.abs()) * 1e-15,
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| close(p, q)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from((ctl >> 3) & 0x0f) + 1;
    let framed;
    let bytes: &[u8] = if ctl & 0x80 != 0 {
        let mut f = (rest.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(rest);
        framed = f;
        &framed
    } else {
        rest
    };
    match ctl & 0x07 {
        0 => check::<serde_json::Value>(bytes, chunk),
        1 => check::<ToWorker>(bytes, chunk),
        2 => check::<ToSupervisor>(bytes, chunk),
        3 => check::<Request<ProbeCall>>(bytes, chunk),
        4 => check::<Response<ProbeReply>>(bytes, chunk),
        5 => check::<Request<PgCtlCall>>(bytes, chunk),
        6 => check::<Response<PgCtlReply>>(bytes, chunk),
        _ => {
            // Several frames back to back: the decoder must yield them in order.
            check::<serde_json::Value>(bytes, chunk);
            let mut dec = Decoder::default();
            dec.push(bytes);
            dec.push(bytes);
            let mut n = 0usize;
            while let Ok(Some(_)) = dec.next_message::<serde_json::Value>() {
                n += 1;
                assert!(n <= bytes.len(), "more messages than frames could fit");
            }
        }
    }
});
