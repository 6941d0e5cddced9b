//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::AppState;
use crate::delivery::amqp::{AmqpPublisher, AuditStatus};
use crate::upstream::CircuitStatus;

/// The process is up and serving. It stays 200 while the store cannot write
/// (a full disk): the bridge recovers by itself once space is back (a
/// connection whose transaction failed is closed, not reused), so a restart
/// would only lose in-memory polling state and gain nothing.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Up", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the polling loop runs, the store takes writes, the broker
/// channel is open, the upstream accepts our credentials (the auth circuit
/// is closed) and the bridge is not draining for shutdown. The body names each part so an
/// operator sees which one failed; the upstream part also carries the
/// request budget and its exhaustion forecast.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready; `checks` names each part", body = Object),
    (status = 503, description = "Not ready (or draining); the failing part has ok=false", body = Object)))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    // The broker part also fails during a resource alarm (`broker_check`).
    let store = match app.store.check_writable().await {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let broker = broker_check(&app.amqp);
    let upstream = upstream_check(&app);
    let draining = app.draining.is_cancelled();
    // The polling loop stops only at shutdown; stopped otherwise, nothing is
    // polled and signals are refused, so a load balancer should know.
    let polling = app.tracker.is_running() || draining;
    let tracker = json!({"ok": polling});
    let ready = store["ok"] == true
        && broker["ok"] == true
        && upstream["ok"] == true
        && polling
        && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if draining { "draining" } else if ready { "ready" } else { "not ready" },
        "checks": {"store": store, "broker": broker, "upstream": upstream,
            "tracker": tracker, "auditQueue": audit_check(&app.amqp)},
    });
    (status, Json(body))
}

/// Not ready while disconnected or while a resource alarm blocks publishing:
/// deliveries wait then, and a load balancer should know.
fn broker_check(amqp: &AmqpPublisher) -> Value {
    let connected = amqp.is_connected();
    match amqp.blocked() {
        Some(reason) if connected => json!({
            "ok": false,
            "connected": true,
            "blocked": true,
            "error": format!(
                "the broker blocks publishing: resource alarm ({reason}); \
                 deliveries wait in the outbox and go out with the same ids when it clears"
            ),
        }),
        _ => json!({"ok": connected, "connected": connected, "blocked": false}),
    }
}

/// Informational: a mismatched audit queue still takes every record, so it
/// does not make the bridge unready; it says what to do about it.
fn audit_check(amqp: &AmqpPublisher) -> Value {
    match amqp.audit_status() {
        None => json!({"ok": true, "status": "unknown"}),
        Some(AuditStatus::Declared) => json!({"ok": true, "status": "declared"}),
        Some(AuditStatus::Mismatch(m)) => json!({
            "ok": true,
            "status": "mismatch",
            "queue": m.queue,
            "wanted": m.wanted,
            "error": m.broker,
            "migrate": m.migrate,
        }),
    }
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
    app.upstream.budget().publish_gauges();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        app.metrics.render(),
    )
}
