//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::AppState;
use crate::upstream::CircuitStatus;

/// The process is up and serving. It stays 200 while the store cannot write
/// (a full disk): the bridge recovers by itself once space is back (a
/// connection whose transaction failed is closed, not reused), so a restart
/// would only lose in-memory polling state and gain nothing.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Up", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the store takes writes, the broker channel is open, the
/// upstream accepts our credentials (the auth circuit is closed) and the
/// bridge is not draining for shutdown. The body names each part so an
/// operator sees which one failed; the upstream part also carries the
/// request budget and its exhaustion forecast.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready; `checks` names each part", body = Object),
    (status = 503, description = "Not ready (or draining); the failing part has ok=false", body = Object)))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let store = match app.store.check_writable().await {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let broker = json!({"ok": app.amqp.is_connected()});
    let upstream = upstream_check(&app);
    let draining = app.draining.is_cancelled();
    let ready = store["ok"] == true && broker["ok"] == true && upstream["ok"] == true && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if draining { "draining" } else if ready { "ready" } else { "not ready" },
        "checks": {"store": store, "broker": broker, "upstream": upstream},
    });
    (status, Json(body))
}

fn upstream_check(app: &AppState) -> Value {
    let budget = app.upstream.budget();
    let snapshot = serde_json::to_value(budget.snapshot()).unwrap_or(Value::Null);
    match budget.circuit().status() {
        CircuitStatus::Closed => json!({"ok": true, "circuit": "closed", "budget": snapshot}),
        CircuitStatus::Open {
            open_for,
            probe_at,
            error,
        } => json!({
            "ok": false,
            "circuit": "open",
            "error": error,
            "openForSecs": open_for.as_secs(),
            "nextProbeInMs": probe_at.saturating_duration_since(Instant::now()).as_millis() as u64,
            "budget": snapshot,
        }),
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}
