//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;

/// The process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Up", body = Object)))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the store takes writes and the broker channel is open. The
/// body names each part so an operator sees which one failed.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready; `checks` names each part", body = Object),
    (status = 503, description = "Not ready; the failing part has ok=false", body = Object)))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let store = match app.store.check_writable().await {
        Ok(()) => json!({"ok": true}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let broker = json!({"ok": app.amqp.is_connected()});
    let draining = app.draining.is_cancelled();
    let ready = store["ok"] == true && broker["ok"] == true && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if draining { "draining" } else if ready { "ready" } else { "not ready" },
        "checks": {"store": store, "broker": broker},
    });
    (status, Json(body))
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
