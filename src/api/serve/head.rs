//! The first request head of a connection, read and checked before hyper
//! sees it, and refusals written straight to the socket in the envelope.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::upstream::{ErrorBody, ErrorEnvelope};

/// Hyper's own limit on header lines; a head with more gets 431.
const MAX_HEADERS: usize = 100;
/// Longest head accepted on a connection's first request.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a refused client gets to read the answer before the socket closes.
const LINGER: Duration = Duration::from_secs(1);

pub enum FirstHead {
    /// A whole, well-formed head (and whatever followed it) for hyper.
    Ready(Bytes),
    /// The client left, or sent nothing before the deadline.
    Closed,
    Refuse(StatusCode, String),
}

/// Read until the head is complete, malformed, too large, or late.
pub async fn read_first(stream: &mut TcpStream, timeout: Duration) -> FirstHead {
    let deadline = Instant::now() + timeout;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        match check(&buf) {
            Parsed::Complete => return FirstHead::Ready(buf.freeze()),
            Parsed::Refuse(status, message) => return FirstHead::Refuse(status, message),
            Parsed::Incomplete => {}
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return refuse_with(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head is too large",
            );
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return FirstHead::Closed,
            Ok(Ok(_)) => {}
            Err(_) if buf.is_empty() => return FirstHead::Closed,
            Err(_) => {
                let message = "request head not received within http.header_read_timeout";
                return refuse_with(StatusCode::REQUEST_TIMEOUT, message);
            }
        }
    }
}

fn refuse_with(status: StatusCode, message: &str) -> FirstHead {
    FirstHead::Refuse(status, message.to_string())
}

#[derive(Debug, PartialEq)]
enum Parsed {
    Incomplete,
    Complete,
    Refuse(StatusCode, String),
}

/// The same parser and header limit hyper uses, so what passes here hyper
/// accepts too (hyper's stricter checks, e.g. on Content-Length, still apply).
fn check(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(_)) => Parsed::Complete,
        Ok(httparse::Status::Partial) => Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Parsed::Refuse(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("more than {MAX_HEADERS} header fields"),
        ),
        Err(e) => Parsed::Refuse(
            StatusCode::BAD_REQUEST,
            format!("malformed request head: {e}"),
        ),
    }
}

/// Answer `status` in the envelope, then close without resetting: the
/// client's unread bytes are drained for a moment so it sees the answer.
pub async fn refuse(
    mut stream: TcpStream,
    status: StatusCode,
    message: &str,
    retry_after: Option<u64>,
) {
    let response = render(status, message, retry_after);
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

fn render(status: StatusCode, message: &str, retry_after: Option<u64>) -> String {
    let request_id = uuid::Uuid::new_v4().to_string();
    let envelope = ErrorEnvelope {
        error: ErrorBody {
            request_id: request_id.clone(),
            message: message.to_string(),
            code: Some(format!("{}-01", status.as_u16())),
        },
    };
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    let retry = retry_after
        .map(|secs| format!("retry-after: {secs}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-request-id: {request_id}\r\n{retry}connection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    )
}

/// The socket with the bytes already read put back in front.
pub struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl Prefixed {
    pub fn new(prefix: Bytes, inner: TcpStream) -> Self {
        Self { prefix, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(raw: &[u8]) -> Option<StatusCode> {
        match check(raw) {
            Parsed::Refuse(status, _) => Some(status),
            _ => None,
        }
    }

    #[test]
    fn heads_are_classified_like_hyper_would() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Complete
        );
        assert_eq!(check(b"GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Incomplete);
        let del = status(b"GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n");
        assert_eq!(del, Some(StatusCode::BAD_REQUEST));
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let too_many = status(raw.as_bytes());
        assert_eq!(too_many, Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let exactly: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{exactly}\r\n");
        assert_eq!(check(raw.as_bytes()), Parsed::Complete);
    }

    #[test]
    fn refusals_carry_the_envelope() {
        let text = render(StatusCode::SERVICE_UNAVAILABLE, "busy", Some(1));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("retry-after: 1\r\n"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "503-01");
        assert_eq!(body["error"]["message"], "busy");
    }
}
