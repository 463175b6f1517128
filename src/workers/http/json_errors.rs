//! JSON bodies on the answers hyper writes by itself.
//!
//! When a request cannot even be parsed (bad method token, invalid header
//! bytes, a request line or headers too large), hyper answers 400 / 414 / 431
//! on its own, with an empty body and none of our headers, then closes. The
//! temBoard UI and users' scripts expect every error of the agent to be JSON
//! `{"error": "..."}` with our `Server` header, so this stream wrapper spots
//! those heads on their way out and writes our JSON answer instead.
//!
//! Spotting them is exact, not a guess: hyper writes such an answer as one
//! buffer holding only a head (`HTTP/1.x 4xx|5xx ...` ending in CRLF CRLF)
//! when no response is in progress, and our own responses always carry a
//! `server:` header; a JSON body can never hold a raw CRLF (serde_json escapes
//! control characters), so a body fragment cannot look like a head.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection stream whose hyper-generated error heads become JSON answers.
pub struct JsonErrors<T> {
    inner: T,
    server: &'static str,
    /// Replacement bytes not yet written to `inner`.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonErrors<T> {
    /// Wraps `inner`; `server` is the value of our `Server` header.
    pub fn new(inner: T, server: &'static str) -> JsonErrors<T> {
        JsonErrors {
            inner,
            server,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// Status code of `buf` if it is a head hyper generated for an unparseable
/// request (an error status, no body, no `server:` header).
fn generated_error_status(buf: &[u8]) -> Option<u16> {
    if !(buf.starts_with(b"HTTP/1.") && buf.ends_with(b"\r\n\r\n")) || buf.len() < 12 {
        return None;
    }
    let status: u16 = std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()?;
    if status < 400 {
        return None;
    }
    let head = buf.to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if has(b"\r\nserver:") || !has(b"\r\ncontent-length: 0\r\n") {
        return None;
    }
    Some(status)
}

/// Our answer for a request hyper could not parse.
fn json_answer(original: &[u8], status: u16, server: &str) -> Vec<u8> {
    let message = match status {
        414 => "URI too long",
        431 => "Request header fields too large",
        _ => "Bad request",
    };
    let body = serde_json::json!({ "error": message }).to_string();
    // Keep hyper's status line and Date header as they were.
    let text = String::from_utf8_lossy(original);
    let status_line = text
        .split("\r\n")
        .next()
        .unwrap_or("HTTP/1.1 400 Bad Request");
    let date = text
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    format!(
        "{status_line}\r\nserver: {server}\r\naccess-control-allow-origin: *\r\n\
         content-type: application/json\r\nconnection: close\r\n{date}\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<T: AsyncWrite + Unpin> JsonErrors<T> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        if let Some(status) = generated_error_status(buf) {
            this.pending = json_answer(buf, status, this.server);
            // The original head counts as written; the replacement goes out
            // now or on the next write / flush / shutdown.
            if let Poll::Ready(Err(e)) = this.poll_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            return self.poll_write(cx, only);
        }
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spots_only_hyper_generated_error_heads() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Tue, 24 Nov 2026 12:00:00 GMT\r\n\r\n";
        assert_eq!(generated_error_status(hyper_400), Some(400));
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(generated_error_status(hyper_431), Some(431));
        // Ours: a server header.
        let ours =
            b"HTTP/1.1 404 Not Found\r\nserver: temboard-agent/0\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(generated_error_status(ours), None);
        // 100 Continue is not an error.
        assert_eq!(
            generated_error_status(b"HTTP/1.1 100 Continue\r\n\r\n"),
            None
        );
        // A body fragment.
        assert_eq!(generated_error_status(b"{\"error\": \"x\"}"), None);
    }

    #[test]
    fn answer_is_json_with_our_headers_and_hyper_date() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: D\r\n\r\n";
        let out = String::from_utf8(json_answer(hyper_414, 414, "temboard-agent/9")).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"));
        assert!(head.contains("\r\nserver: temboard-agent/9\r\n"));
        assert!(head.contains("\r\ndate: D\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "URI too long");
    }
}
