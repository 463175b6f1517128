//! Length-prefixed JSON frames, blocking and async.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::IpcError;

pub use super::MAX_FRAME;

/// Serializes one message into a frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, IpcError> {
    let body = serde_json::to_vec(msg).map_err(|e| IpcError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| IpcError::TooLarge(u32::MAX))?;
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge(len));
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn check_len(header: [u8; 4]) -> Result<usize, IpcError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_FRAME {
        return Err(IpcError::TooLarge(len));
    }
    Ok(len as usize)
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
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = check_len([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = decode(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        msg.map(Some)
    }
}

/// Reads one message from a blocking reader.
pub fn read_frame<T: DeserializeOwned, R: Read>(r: &mut R) -> Result<T, IpcError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(IpcError::Closed),
            Ok(0) => return Err(IpcError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(IpcError::Timeout(0)),
            Err(e) => return Err(e.into()),
        }
    }
    let len = check_len(header)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
        _ if is_timeout(&e) => IpcError::Timeout(0),
        _ => IpcError::Io(e),
    })?;
    decode(&body)
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
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut header[got..]).await? {
            0 if got == 0 => return Err(IpcError::Closed),
            0 => return Err(IpcError::Truncated),
            n => got += n,
        }
    }
    let len = check_len(header)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
        _ => IpcError::Io(e),
    })?;
    decode(&body)
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
}
