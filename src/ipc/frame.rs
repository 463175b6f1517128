//! Length-prefixed JSON frames, blocking and async. A frame is a 4-byte
//! big-endian header and at most [`MAX_FRAME`] bytes; the header's top bit
//! says more frames of the same message follow. A message is the
//! concatenation of its frames' bytes, at most [`MAX_MESSAGE`].

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::IpcError;

pub use super::{MAX_FRAME, MAX_MESSAGE};

/// Header bit: more frames of this message follow.
const MORE: u32 = 0x8000_0000;

/// Serializes one message into its frames (one unless it is larger than
/// [`MAX_FRAME`]).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let body = serde_json::to_vec(msg).map_err(|e| IpcError::Malformed(e.to_string()))?;
    if body.len() > MAX_MESSAGE {
        return Err(IpcError::MessageTooLarge(body.len()));
    }
    let frames = body.len().div_ceil(MAX_FRAME as usize).max(1);
    let mut out = Vec::with_capacity(body.len() + 4 * frames);
    let mut parts = body.chunks(MAX_FRAME as usize).peekable();
    if parts.peek().is_none() {
        out.extend_from_slice(&0u32.to_be_bytes());
    }
    while let Some(part) = parts.next() {
        // A part is at most MAX_FRAME (4 MiB) long: it fits the header.
        let mut header = part.len() as u32;
        if parts.peek().is_some() {
            header |= MORE;
        }
        out.extend_from_slice(&header.to_be_bytes());
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// A frame's length and whether more frames follow. A frame followed by
/// others is always full (the encoder fills them), so a message has at most
/// `MAX_MESSAGE / MAX_FRAME + 1` frames: a peer cannot make a reader walk
/// endless empty ones.
fn check_len(header: [u8; 4]) -> Result<(usize, bool), IpcError> {
    let raw = u32::from_be_bytes(header);
    let len = raw & !MORE;
    let more = raw & MORE != 0;
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge(len));
    }
    if more && len != MAX_FRAME {
        return Err(IpcError::Malformed(format!(
            "a frame of {len} bytes announces more: only full frames do"
        )));
    }
    Ok((len as usize, more))
}

/// Checks a frame's header against the message read so far and makes room
/// for its bytes at the end of `body`: where they start, and whether more
/// frames follow. Both readers, blocking and async, go through it.
fn make_room(body: &mut Vec<u8>, header: [u8; 4]) -> Result<(usize, bool), IpcError> {
    let (len, more) = check_len(header)?;
    check_total(body.len(), len)?;
    let start = body.len();
    // Exactly what this frame needs: a message's buffer never grows past
    // MAX_MESSAGE by the vector's own doubling.
    body.reserve_exact(len);
    body.resize(start + len, 0);
    Ok((start, more))
}

/// Refuses a message that would grow past [`MAX_MESSAGE`].
fn check_total(so_far: usize, next: usize) -> Result<(), IpcError> {
    if so_far + next > MAX_MESSAGE {
        return Err(IpcError::MessageTooLarge(so_far + next));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, IpcError> {
    serde_json::from_slice(body).map_err(|e| IpcError::Malformed(e.to_string()))
}

/// Incremental decoder for non-blocking readers (the supervisor's poll loop):
/// feed it whatever bytes arrived, take out complete messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next complete message, if any.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, IpcError> {
        // Walk the frames held; a message is complete at a frame without
        // the "more" bit.
        let (mut pos, mut total) = (0usize, 0usize);
        loop {
            if self.buf.len() < pos + 4 {
                return Ok(None);
            }
            let (len, more) = check_len([
                self.buf[pos],
                self.buf[pos + 1],
                self.buf[pos + 2],
                self.buf[pos + 3],
            ])?;
            check_total(total, len)?;
            if self.buf.len() < pos + 4 + len {
                return Ok(None);
            }
            total += len;
            pos += 4 + len;
            if !more {
                break;
            }
        }
        let mut body = Vec::with_capacity(total);
        let mut at = 0;
        while at < pos {
            let (len, _) = check_len([
                self.buf[at],
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
            ])?;
            body.extend_from_slice(&self.buf[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        self.buf.drain(..pos);
        decode(&body).map(Some)
    }
}

/// Reads one message from a blocking reader.
pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<T, IpcError> {
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut header[got..]) {
                Ok(0) if got == 0 && body.is_empty() => return Err(IpcError::Closed),
                Ok(0) => return Err(IpcError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(IpcError::Timeout(0)),
                Err(e) => return Err(e.into()),
            }
        }
        let (start, more) = make_room(&mut body, header)?;
        r.read_exact(&mut body[start..])
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
                _ if is_timeout(&e) => IpcError::Timeout(0),
                _ => IpcError::Io(e),
            })?;
        if !more {
            return decode(&body);
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Writes one message to a blocking writer.
pub fn write_frame<T: Serialize, W: Write>(w: &mut W, msg: &T) -> Result<(), IpcError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(())
}

/// Reads one message from an async reader.
pub async fn read_frame_async<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<T, IpcError> {
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut header[got..]).await? {
                0 if got == 0 && body.is_empty() => return Err(IpcError::Closed),
                0 => return Err(IpcError::Truncated),
                n => got += n,
            }
        }
        let (start, more) = make_room(&mut body, header)?;
        r.read_exact(&mut body[start..])
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
                _ => IpcError::Io(e),
            })?;
        if !more {
            return decode(&body);
        }
    }
}

/// Writes one message to an async writer.
pub async fn write_frame_async<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
) -> Result<(), IpcError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::messages::{ProbeCall, Request};
    use std::io::Cursor;

    #[test]
    fn round_trip_blocking() {
        let msg = Request {
            id: 7,
            call: ProbeCall::PgInfo,
        };
        let bytes = encode(&msg).unwrap();
        let back: Request<ProbeCall> = read_frame(&mut Cursor::new(bytes)).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn partial_reads_in_decoder() {
        let a = encode(&Request {
            id: 1,
            call: ProbeCall::Ping,
        })
        .unwrap();
        let b = encode(&Request {
            id: 2,
            call: ProbeCall::PgInfo,
        })
        .unwrap();
        let all: Vec<u8> = a.iter().chain(b.iter()).copied().collect();
        let mut d = Decoder::default();
        let mut out: Vec<Request<ProbeCall>> = vec![];
        for byte in all {
            d.push(&[byte]);
            while let Some(m) = d.next_message().unwrap() {
                out.push(m);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].id, 2);
        assert_eq!(d.pending(), 0);
    }

    /// A reader that hands out one byte per call, like a slow socket.
    struct Trickle(Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(1);
            std::io::Read::read(&mut self.0, &mut buf[..n])
        }
    }

    #[test]
    fn partial_reads_blocking() {
        let bytes = encode(&Request {
            id: 3,
            call: ProbeCall::Ping,
        })
        .unwrap();
        let back: Request<ProbeCall> = read_frame(&mut Trickle(Cursor::new(bytes))).unwrap();
        assert_eq!(back.id, 3);
    }

    #[test]
    fn oversized_is_refused_before_allocation() {
        let mut bytes = (MAX_FRAME + 1).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(bytes.clone()));
        assert!(matches!(r, Err(IpcError::TooLarge(n)) if n == MAX_FRAME + 1));
        let mut d = Decoder::default();
        d.push(&bytes);
        assert!(matches!(
            d.next_message::<Request<ProbeCall>>(),
            Err(IpcError::TooLarge(_))
        ));
        // u32::MAX must not try to allocate 4 GiB either.
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(vec![0xff; 4]));
        assert!(matches!(r, Err(IpcError::TooLarge(_))));
    }

    #[test]
    fn garbage_is_malformed() {
        let mut bytes = 5u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\x00abc");
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(bytes));
        assert!(matches!(r, Err(IpcError::Malformed(_))));
        let mut bytes = 13u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(br#"{"id":"x"}   "#);
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(bytes));
        assert!(matches!(r, Err(IpcError::Malformed(_))));
    }

    #[test]
    fn peer_disappears() {
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(vec![]));
        assert!(matches!(r, Err(IpcError::Closed)));
        let full = encode(&Request {
            id: 3,
            call: ProbeCall::Ping,
        })
        .unwrap();
        for cut in [2, 4, full.len() - 1] {
            let r: Result<Request<ProbeCall>, _> =
                read_frame(&mut Cursor::new(full[..cut].to_vec()));
            assert!(matches!(r, Err(IpcError::Truncated)), "cut at {cut}");
        }
        // Over a real socket pair whose other end is dropped.
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(b);
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut a);
        assert!(matches!(r, Err(IpcError::Closed)));
    }

    #[tokio::test]
    async fn round_trip_async_over_socket() {
        let (mut a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let msg = Request {
            id: 9,
            call: ProbeCall::PgInfo,
        };
        write_frame_async(&mut a, &msg).await.unwrap();
        let back: Request<ProbeCall> = read_frame_async(&mut b).await.unwrap();
        assert_eq!(back, msg);
        drop(a);
        let r: Result<Request<ProbeCall>, _> = read_frame_async(&mut b).await;
        assert!(matches!(r, Err(IpcError::Closed)));
    }

    /// A message larger than a frame: a string of `n` bytes.
    fn big(n: usize) -> Request<ProbeCall> {
        Request {
            id: 9,
            call: ProbeCall::Plugin {
                plugin: "x".repeat(n),
                call: serde_json::Value::Null,
            },
        }
    }

    /// The frames of an encoded message: (length, more).
    fn frames(bytes: &[u8]) -> Vec<(usize, bool)> {
        let mut out = vec![];
        let mut at = 0;
        while at < bytes.len() {
            let (len, more) =
                check_len([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]).unwrap();
            out.push((len, more));
            at += 4 + len;
        }
        out
    }

    #[test]
    fn a_message_larger_than_a_frame_spans_frames_and_comes_back_whole() {
        let msg = big(9 * 1024 * 1024);
        let bytes = encode(&msg).unwrap();
        let f = frames(&bytes);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f.iter().all(|(len, _)| *len <= MAX_FRAME as usize));
        assert_eq!(
            f.iter().map(|(_, more)| *more).collect::<Vec<_>>(),
            [true, true, false]
        );
        // Blocking, trickled, incremental and async readers agree.
        let back: Request<ProbeCall> = read_frame(&mut Cursor::new(bytes.clone())).unwrap();
        assert_eq!(back, msg);
        let mut d = Decoder::default();
        let mut got = None;
        for part in bytes.chunks(1_000_003) {
            assert!(got.is_none(), "a message taken before its last frame");
            d.push(part);
            got = d.next_message::<Request<ProbeCall>>().unwrap();
        }
        assert_eq!(got.unwrap(), msg);
        assert_eq!(d.pending(), 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let back: Request<ProbeCall> = rt
            .block_on(read_frame_async(&mut Cursor::new(bytes)))
            .unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn messages_past_the_limit_are_refused_at_both_ends() {
        assert!(matches!(
            encode(&big(MAX_MESSAGE + 1)),
            Err(IpcError::MessageTooLarge(_))
        ));
        // "More" frames that are not full are refused: a message cannot be
        // made of endless small frames.
        let mut small = (10 | MORE).to_be_bytes().to_vec();
        small.extend_from_slice(b"0123456789");
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(small.clone()));
        assert!(matches!(r, Err(IpcError::Malformed(_))), "{r:?}");
        let mut d = Decoder::default();
        d.push(&small);
        assert!(matches!(
            d.next_message::<Request<ProbeCall>>(),
            Err(IpcError::Malformed(_))
        ));
        // A peer that keeps sending full "more" frames is cut at the limit,
        // not read on.
        let frame = {
            let mut f = (MAX_FRAME | MORE).to_be_bytes().to_vec();
            f.extend(std::iter::repeat_n(b' ', MAX_FRAME as usize));
            f
        };
        let endless: Vec<u8> = frame.repeat(MAX_MESSAGE / MAX_FRAME as usize + 1);
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(endless.clone()));
        assert!(matches!(r, Err(IpcError::MessageTooLarge(_))), "{r:?}");
        let mut d = Decoder::default();
        d.push(&endless);
        assert!(matches!(
            d.next_message::<Request<ProbeCall>>(),
            Err(IpcError::MessageTooLarge(_))
        ));
        // A frame announcing more than MAX_FRAME is refused before any
        // allocation.
        let mut huge = (MAX_FRAME + 1).to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let r: Result<Request<ProbeCall>, _> = read_frame(&mut Cursor::new(huge));
        assert!(matches!(r, Err(IpcError::TooLarge(_))), "{r:?}");
    }
}
