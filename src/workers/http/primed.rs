//! Idle connections cost only their TLS state.
//!
//! hyper allocates about 16 KiB of buffers for a connection as soon as it
//! starts serving it. A client that opens a connection and sends nothing (a
//! pool of idle clients, a scanner, a slowloris) would pin that for nothing,
//! so the http worker first waits, under the header timeout, for one byte of
//! the request, and only then hands the connection to hyper with that byte
//! put back in front: [`Primed`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A stream that yields `first` before the rest of `inner`.
pub struct Primed<T> {
    first: Option<u8>,
    inner: T,
}

impl<T> Primed<T> {
    /// `first` was read from `inner` already.
    pub fn new(first: u8, inner: T) -> Primed<T> {
        Primed {
            first: Some(first),
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Primed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0 {
            if let Some(b) = self.first.take() {
                buf.put_slice(&[b]);
                return Poll::Ready(Ok(()));
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Primed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_first_byte_comes_back_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut p = Primed::new(b'G', &b"ET / HTTP/1.1\r\n"[..]);
            let mut out = String::new();
            p.read_to_string(&mut out).await.unwrap();
            assert_eq!(out, "GET / HTTP/1.1\r\n");
        });
    }
}
