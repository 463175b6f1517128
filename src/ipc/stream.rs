//! Streamed answers: after a call's reply frame, a worker may send its
//! answer as chunks (4-byte big-endian length + bytes, at most
//! [`CHUNK`] each), ended by an empty chunk, or cut by the abort marker
//! when the work fails half-way. The connection is used for that one call
//! and closed.
//!
//! Why: an answer as large as the data (every row of `pg_stat_statements`)
//! goes from PostgreSQL to the HTTP client a chunk at a time, with
//! backpressure all the way (a slow client pauses the worker's writes,
//! which pause the cursor), so neither worker ever holds it whole.

use std::io::Write;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::IpcError;

/// Largest chunk sent (the writer buffers up to this much).
pub const CHUNK: usize = 64 * 1024;
/// The length that says the work failed after it had started.
const ABORT: u32 = u32::MAX;

/// Where a streamed answer is written by the work that produces it.
pub trait Sink {
    /// Writes bytes of the answer (buffered; sent as chunks). The first
    /// write commits the call to success: the reply frame goes first.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Whether the reply frame was sent (an error before that, even with
    /// bytes buffered, is still an ordinary error reply).
    fn started(&self) -> bool;
}

/// A [`Sink`] on a blocking socket: `head` (the encoded reply frame) goes
/// before the first chunk.
pub struct ChunkWriter<'a, W: Write> {
    out: &'a mut W,
    head: Option<Vec<u8>>,
    buf: Vec<u8>,
}

impl<'a, W: Write> ChunkWriter<'a, W> {
    /// A writer sending `head` first.
    pub fn new(out: &'a mut W, head: Vec<u8>) -> Self {
        ChunkWriter {
            out,
            head: Some(head),
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send_head(&mut self) -> std::io::Result<()> {
        if let Some(h) = self.head.take() {
            self.out.write_all(&h)?;
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send_head()?;
        self.out.write_all(&(self.buf.len() as u32).to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Ends a successful answer (the reply frame first if nothing was
    /// written: an empty answer).
    pub fn finish(mut self) -> std::io::Result<()> {
        self.flush_chunk()?;
        self.send_head()?;
        self.out.write_all(&0u32.to_be_bytes())?;
        self.out.flush()
    }

    /// Cuts a started answer: the reader fails instead of taking a partial
    /// answer for a whole one.
    pub fn abort(self) -> std::io::Result<()> {
        if self.head.is_none() {
            self.out.write_all(&ABORT.to_be_bytes())?;
            self.out.flush()?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for ChunkWriter<'_, W> {
    fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK - self.buf.len();
            let n = room.min(bytes.len());
            self.buf.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.buf.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn started(&self) -> bool {
        self.head.is_none()
    }
}

/// Reads the next chunk: `None` at the end of the answer.
pub async fn read_chunk<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Bytes>, IpcError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
        _ => IpcError::Io(e),
    })?;
    let len = u32::from_be_bytes(len);
    match len {
        0 => Ok(None),
        ABORT => Err(IpcError::Malformed(
            "the worker failed while streaming its answer".into(),
        )),
        n if n as usize > CHUNK => Err(IpcError::TooLarge(n)),
        n => {
            let mut buf = vec![0u8; n as usize];
            r.read_exact(&mut buf).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => IpcError::Truncated,
                _ => IpcError::Io(e),
            })?;
            Ok(Some(Bytes::from(buf)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Result<Vec<u8>, IpcError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = bytes;
            let mut out = vec![];
            while let Some(c) = read_chunk(&mut r).await? {
                out.extend_from_slice(&c);
            }
            Ok(out)
        })
    }

    #[test]
    fn chunks_round_trip_after_the_head() {
        let mut wire = vec![];
        let mut w = ChunkWriter::new(&mut wire, b"HEAD".to_vec());
        w.write(b"x").unwrap();
        assert!(!w.started(), "only buffered: an error can still be a reply");
        let mut big = vec![7u8; CHUNK * 2 + 10];
        w.write(&big).unwrap();
        assert!(w.started());
        big.insert(0, b'x');
        w.write(b"tail").unwrap();
        w.finish().unwrap();
        assert_eq!(&wire[..4], b"HEAD");
        let mut expected = big.clone();
        expected.extend_from_slice(b"tail");
        assert_eq!(read_all(&wire[4..]).unwrap(), expected);
    }

    #[test]
    fn an_empty_answer_still_sends_the_head_and_an_abort_is_an_error() {
        let mut wire = vec![];
        ChunkWriter::new(&mut wire, b"H".to_vec()).finish().unwrap();
        assert_eq!(wire, b"H\0\0\0\0");
        let mut wire = vec![];
        let mut w = ChunkWriter::new(&mut wire, b"H".to_vec());
        w.write(&vec![1u8; CHUNK]).unwrap();
        w.abort().unwrap();
        assert!(read_all(&wire[1..]).is_err());
        // A truncated stream is an error too, never a short answer.
        let mut wire = vec![];
        let mut w = ChunkWriter::new(&mut wire, b"H".to_vec());
        w.write(&vec![1u8; CHUNK]).unwrap();
        assert!(read_all(&wire[1..]).is_err());
    }
}
