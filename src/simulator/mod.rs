//! A stand-in for the GenerativeAgent call-transfer API: same paths, JSON
//! shapes, auth headers and error envelope, with scripted timelines, fault
//! injection and request counters (control API under `/_sim/`). Used by the
//! tests, the demo and the benchmarks; `transfer-bridge simulator` serves it.

mod control;
mod faults;
pub mod script;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use control::Counters;
pub use faults::Fault;
pub use script::{Script, SimTransfer, Step};

use crate::upstream::client::{HEADER_API_ID, HEADER_API_SECRET};
use crate::upstream::{ErrorBody, ErrorEnvelope};

/// Shared simulator state.
pub struct SimState {
    api_id: String,
    api_secret: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    transfers: HashMap<String, SimTransfer>,
    /// Scripts waiting for a `POST` create of their id.
    pending: HashMap<String, Script>,
    faults: Vec<Fault>,
    counters: Counters,
}

/// A running simulator.
#[derive(Clone)]
pub struct SimHandle {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
    cancel: CancellationToken,
}

impl SimHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Script a transfer that is visible upstream from now on.
    pub fn script(&self, id: &str, script: Script) {
        self.state
            .lock()
            .transfers
            .insert(id.to_string(), SimTransfer::new(id.to_string(), script));
    }

    /// Script what a later `POST` create of `id` will play.
    pub fn script_on_create(&self, id: &str, script: Script) {
        self.state.lock().pending.insert(id.to_string(), script);
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    pub fn counters(&self) -> Counters {
        self.state.lock().counters.clone()
    }

    pub fn gets(&self, id: &str) -> u64 {
        self.state
            .lock()
            .counters
            .transfers
            .get(id)
            .map_or(0, |c| c.get)
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

impl SimState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Start on `listener`; runs until the handle's `stop` or process exit.
pub fn start(listener: TcpListener, api_id: &str, api_secret: &str) -> std::io::Result<SimHandle> {
    let addr = listener.local_addr()?;
    let state = Arc::new(SimState {
        api_id: api_id.to_string(),
        api_secret: api_secret.to_string(),
        inner: Mutex::new(Inner::default()),
    });
    let cancel = CancellationToken::new();
    let app = router(state.clone());
    let stop = cancel.clone();
    tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "simulator stopped");
        }
    });
    Ok(SimHandle {
        addr,
        state,
        cancel,
    })
}

fn router(state: Arc<SimState>) -> axum::Router {
    axum::Router::new()
        .route("/generativeagent/v1/call-transfers", post(create))
        .route("/generativeagent/v1/call-transfers/{id}", get(fetch))
        .merge(control::router())
        .with_state(state)
}

/// The vendor's error envelope.
pub fn envelope(status: StatusCode, message: &str) -> Response {
    let body = ErrorEnvelope {
        error: ErrorBody {
            request_id: uuid::Uuid::new_v4().to_string(),
            message: message.to_string(),
            code: Some(format!("{}-01", status.as_u16())),
        },
    };
    (status, Json(body)).into_response()
}

fn authorized(state: &SimState, headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    header(HEADER_API_ID) == Some(state.api_id.as_str())
        && header(HEADER_API_SECRET) == Some(state.api_secret.as_str())
}

async fn fetch(
    State(state): State<Arc<SimState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.lock().counters.record("GET", &id);
    let _in_flight = InFlight::enter(&state, &id);
    let injected = match faults::take(&state, "get", &id) {
        Some(fault) => fault.apply().await,
        None => None,
    };
    let response = if let Some(response) = injected {
        response
    } else if !authorized(&state, &headers) {
        envelope(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else {
        match state.lock().transfers.get(&id).filter(|t| t.visible()) {
            Some(t) => Json(t.resource()).into_response(),
            None => envelope(StatusCode::NOT_FOUND, "Not Found"),
        }
    };
    state.lock().counters.status(response.status());
    response
}

/// Counts a GET as in flight until its handler ends, answered or dropped
/// (a client that gives up closes the connection and drops the handler).
struct InFlight {
    state: Arc<SimState>,
    id: String,
}

impl InFlight {
    fn enter(state: &Arc<SimState>, id: &str) -> Self {
        state.lock().counters.enter(id);
        Self {
            state: state.clone(),
            id: id.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.lock().counters.leave(&self.id);
    }
}

async fn create(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let id = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    state.lock().counters.record("POST", &id);
    let injected = match faults::take(&state, "create", &id) {
        Some(fault) => fault.apply().await,
        None => None,
    };
    let response = if let Some(response) = injected {
        response
    } else if !authorized(&state, &headers) {
        envelope(StatusCode::UNAUTHORIZED, "Unauthorized")
    } else {
        match parsed {
            Ok(body) => create_from(&state, id, body),
            Err(_) => envelope(StatusCode::BAD_REQUEST, "Bad request"),
        }
    };
    state.lock().counters.status(response.status());
    response
}

fn create_from(state: &SimState, id: String, body: Value) -> Response {
    let (Some(conv), Some(kind)) = (
        body.get("externalConversationId").and_then(Value::as_str),
        body.get("type").and_then(Value::as_str),
    ) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "id, externalConversationId and type are required",
        );
    };
    if id.is_empty() {
        return envelope(
            StatusCode::BAD_REQUEST,
            "id, externalConversationId and type are required",
        );
    }
    let mut inner = state.lock();
    if inner.transfers.contains_key(&id) {
        return envelope(StatusCode::CONFLICT, "Conflict");
    }
    let mut script = inner.pending.remove(&id).unwrap_or_default();
    script.external_conversation_id = Some(conv.to_string());
    script.kind = kind.to_string();
    script.input_context = body.get("inputContext").cloned().or(script.input_context);
    script.sip = body.get("sip").cloned().or(script.sip);
    let transfer = SimTransfer::new(id.clone(), script);
    let resource = transfer.resource();
    inner.transfers.insert(id, transfer);
    Json(resource).into_response()
}
