//! Request bodies arrive whole, in time and within size, before any handler
//! runs: a declared `Content-Length` over `http.max_body_bytes` is refused
//! before a byte of it is read, and a body that trickles in (or never comes)
//! is cut off after `http.body_read_timeout`. Every body the API takes is a
//! small JSON or SIP document, so buffering it here costs nothing.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use futures::StreamExt;

use super::AppState;
use super::error::ApiError;

pub async fn read_whole(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let http = &app.config.http;
    if declared_length(&request).is_some_and(|n| n > http.max_body_bytes as u64) {
        return Err(ApiError::TooLarge);
    }
    let (parts, body) = request.into_parts();
    let bytes = tokio::time::timeout(http.body_read_timeout, collect(body, http.max_body_bytes))
        .await
        .map_err(|_| ApiError::BodyTimeout)??;
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

/// An unparsable Content-Length never gets here: hyper refuses it with 400.
fn declared_length(request: &Request) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body, or 413 as soon as it grows past `max` (chunked bodies declare
/// no length).
async fn collect(body: Body, max: usize) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut whole = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if whole.len() + chunk.len() > max {
            return Err(ApiError::TooLarge);
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}
