//! `/_sim/`: script transfers, inject faults, read counters.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use super::{Fault, Script, SimState, SimTransfer, envelope};

/// Requests remembered for rate checks (`GET /_sim/requests`).
const RECENT_CAP: usize = 100_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub gets: u64,
    pub creates: u64,
    pub transfers: BTreeMap<String, PerTransfer>,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    #[serde(skip)]
    pub recent: VecDeque<Request>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PerTransfer {
    pub get: u64,
    pub create: u64,
    /// GETs of this transfer being answered right now, and the most ever at
    /// once: a bridge deployment polls a transfer from one place at a time.
    #[serde(default)]
    pub in_flight: u64,
    #[serde(default)]
    pub max_in_flight: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub method: String,
    pub id: String,
}

impl Counters {
    pub(super) fn record(&mut self, method: &str, id: &str) {
        let per = self.transfers.entry(id.to_string()).or_default();
        if method == "GET" {
            self.gets += 1;
            per.get += 1;
        } else {
            self.creates += 1;
            per.create += 1;
        }
        if self.recent.len() == RECENT_CAP {
            self.recent.pop_front();
        }
        let at_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        self.recent.push_back(Request {
            at_ms,
            method: method.into(),
            id: id.into(),
        });
    }

    /// A GET of `id` starts (after [`Self::record`]); [`Self::leave`] ends it.
    pub(super) fn enter(&mut self, id: &str) {
        let per = self.transfers.entry(id.to_string()).or_default();
        per.in_flight += 1;
        per.max_in_flight = per.max_in_flight.max(per.in_flight);
    }

    pub(super) fn leave(&mut self, id: &str) {
        if let Some(per) = self.transfers.get_mut(id) {
            per.in_flight = per.in_flight.saturating_sub(1);
        }
    }

    pub(super) fn status(&mut self, status: StatusCode) {
        *self.by_status.entry(status.as_u16()).or_default() += 1;
    }
}

pub(super) fn router() -> axum::Router<Arc<SimState>> {
    axum::Router::new()
        .route("/_sim/transfers/{id}", put(script).get(peek))
        .route("/_sim/faults", post(add_fault).delete(clear_faults))
        .route("/_sim/counters", get(counters))
        .route("/_sim/requests", get(requests))
        .route("/_sim/reset", post(reset))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScriptRequest {
    #[serde(flatten)]
    script: Script,
    /// Wait for a `POST` create of this id before the timeline starts.
    #[serde(default)]
    await_create: bool,
}

async fn script(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    Json(req): Json<ScriptRequest>,
) -> Response {
    if req.script.timeline.is_empty() {
        return envelope(
            StatusCode::UNPROCESSABLE_ENTITY,
            "timeline must not be empty",
        );
    }
    let mut inner = state.lock();
    if req.await_create {
        inner.pending.insert(id, req.script);
    } else {
        inner
            .transfers
            .insert(id.clone(), SimTransfer::new(id, req.script));
    }
    StatusCode::NO_CONTENT.into_response()
}

/// What a GET would show now, without counting it.
async fn peek(State(state): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match state.lock().transfers.get(&id) {
        Some(t) => Json(t.resource()).into_response(),
        None => envelope(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn add_fault(State(state): State<Arc<SimState>>, Json(fault): Json<Fault>) -> StatusCode {
    state.lock().faults.push(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn counters(State(state): State<Arc<SimState>>) -> Json<Counters> {
    Json(state.lock().counters.clone())
}

async fn requests(State(state): State<Arc<SimState>>) -> Json<Vec<Request>> {
    Json(state.lock().counters.recent.iter().cloned().collect())
}

async fn reset(State(state): State<Arc<SimState>>) -> StatusCode {
    let mut inner = state.lock();
    inner.transfers.clear();
    inner.pending.clear();
    inner.faults.clear();
    inner.counters = Counters::default();
    StatusCode::NO_CONTENT
}
