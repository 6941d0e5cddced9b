//! The HTTP server: the API router on hyper, with the limits `axum::serve`
//! cannot set (header, body and idle timeouts; a cap on connections).
//!
//! Each connection's first request head is read here, not by hyper, so a
//! slow or malformed head is answered in the error envelope (408, 400, 431)
//! instead of hyper's bare status line. Hyper then serves the connection; its
//! own header-read timer also runs while a kept-alive connection waits for the
//! next request, so it is set to `http.idle_timeout`.

mod head;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpConfig;
use head::{FirstHead, Prefixed};

/// What a refused connection is told to wait before trying again.
const CONNECTIONS_RETRY_AFTER_SECS: u64 = 1;

/// Serve `router` on `listener` until `shutdown` completes; then stop
/// accepting, let open connections finish their requests, and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    http: &HttpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(http.clone());
    let permits = Arc::new(Semaphore::new(http.max_connections));
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        match permits.clone().try_acquire_owned() {
            Ok(permit) => connections.spawn(connection(
                stream,
                router.clone(),
                limits.clone(),
                stop.clone(),
                permit,
            )),
            Err(_) => connections.spawn(refuse_excess(stream)),
        };
    }
    drop(listener);
    stop.cancel();
    connections.close();
    connections.wait().await;
}

/// Per-connection errors (a reset before accept) are the client's; others,
/// such as running out of file descriptors, last a while: back off as
/// `axum::serve` does instead of spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Over `http.max_connections`: a 503 in the envelope, then close.
async fn refuse_excess(stream: TcpStream) {
    metrics::counter!("bridge_http_connections_refused_total").increment(1);
    let message = "too many open connections (http.max_connections); retry later";
    head::refuse(
        stream,
        StatusCode::SERVICE_UNAVAILABLE,
        message,
        Some(CONNECTIONS_RETRY_AFTER_SECS),
    )
    .await;
}

async fn connection(
    mut stream: TcpStream,
    router: Router,
    limits: Arc<HttpConfig>,
    stop: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let first = tokio::select! {
        first = head::read_first(&mut stream, limits.header_read_timeout) => first,
        // Nothing was asked yet: nothing to finish.
        () = stop.cancelled() => return,
    };
    let prefix = match first {
        FirstHead::Ready(prefix) => prefix,
        FirstHead::Closed => return,
        FirstHead::Refuse(status, message) => {
            return head::refuse(stream, status, &message, None).await;
        }
    };
    let io = TokioIo::new(Prefixed::new(prefix, stream));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            // Finish the request in progress, if any, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts and resets are the client's doing; nothing to fix here.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
