//! The demo's IVR: a local webhook endpoint that verifies each Standard
//! Webhooks signature and prints what arrived.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::delivery::webhook::{DEFAULT_TOLERANCE, WebhookSecret, verify};

/// Start on 127.0.0.1:0; returns the callback URL.
pub async fn start(secret: WebhookSecret) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ivr/transfer-events", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/ivr/transfer-events", axum::routing::post(receive))
        .with_state(Arc::new(vec![secret]));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn receive(
    State(secrets): State<Arc<Vec<WebhookSecret>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let verdict = match verify(&secrets, &headers, &body, DEFAULT_TOLERANCE) {
        Ok(()) => "signature ok",
        Err(_) => "BAD SIGNATURE",
    };
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    println!("  IVR webhook <- {id} ({} bytes, {verdict})", body.len());
    StatusCode::NO_CONTENT
}
