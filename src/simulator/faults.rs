//! Fault injection: error statuses (with `Retry-After`), latency, bad bodies.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{SimState, envelope};

/// One injected fault (`POST /_sim/faults`). It applies to the next `count`
/// matching requests (every one while `count` is absent).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Answer with this status in the error envelope (e.g. 429, 503, 401).
    #[serde(default)]
    pub status: Option<u16>,
    /// `Retry-After` value to send with `status`.
    #[serde(default)]
    pub retry_after: Option<String>,
    /// Delay before answering (normally, unless `status`/`malformed` is set too).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Answer 200 with a body that is not a call transfer.
    #[serde(default)]
    pub malformed: bool,
    #[serde(default)]
    pub count: Option<u32>,
    /// Only requests for this transfer id.
    #[serde(default)]
    pub id: Option<String>,
    /// Only `get` or `create` requests.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    pub fn times(mut self, count: u32) -> Self {
        self.count = Some(count);
        self
    }

    fn matches(&self, endpoint: &str, id: &str) -> bool {
        self.id.as_deref().is_none_or(|want| want == id)
            && self.endpoint.as_deref().is_none_or(|want| want == endpoint)
    }

    /// Sleep if asked; return the replacement response, if any.
    pub async fn apply(&self) -> Option<Response> {
        if let Some(ms) = self.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if self.malformed {
            return Some(
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"id\": 42, \"status\": [",
                )
                    .into_response(),
            );
        }
        let status = StatusCode::from_u16(self.status?).ok()?;
        let mut response = envelope(
            status,
            status.canonical_reason().unwrap_or("Injected fault"),
        );
        if let Some(after) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        Some(response)
    }
}

/// The first matching fault, with its count spent.
pub(super) fn take(state: &Arc<SimState>, endpoint: &str, id: &str) -> Option<Fault> {
    let mut inner = state.lock();
    let index = inner.faults.iter().position(|f| f.matches(endpoint, id))?;
    let fault = inner.faults[index].clone();
    if let Some(count) = &mut inner.faults[index].count {
        *count = count.saturating_sub(1);
        if *count == 0 {
            inner.faults.remove(index);
        }
    }
    Some(fault)
}
