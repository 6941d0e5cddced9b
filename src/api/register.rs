//! `POST /v1/transfers`: validation, optional upstream create, idempotent insert.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::outbox::ActionView;
use crate::store::{NewTransfer, Registered};
use crate::tracker::TrackState;
use crate::transfer::{Transfer, TransferId};
use crate::upstream::{CreateCallTransfer, Disposition, Fetched, UpstreamError};

pub(crate) const MAX_METADATA_ENTRIES: usize = 50;
pub(crate) const MAX_METADATA_KEY: usize = 64;
pub(crate) const MAX_METADATA_VALUE: usize = 1024;

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The upstream call transfer id to track. Required unless `create` is given.
    #[serde(default)]
    pub call_transfer_id: Option<String>,
    /// An upstream create body; the bridge sends it on and tracks the result.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub create: Option<CreateCallTransfer>,
    /// Where to POST signed outcome webhooks.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Strings echoed in every event of this transfer.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// `true`: the PBX will signal this call's return (`/returned` or a
    /// `?wait=` pull), so routine polls are only a safety net. `false`:
    /// never lean on signals for it. Absent: learned per integration
    /// (`polling.trust_signals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_signal: Option<bool>,
}

/// Validate, create upstream if asked, insert. Returns 201 with the actions
/// the registration enqueued, 200 (a repeat), or an error. `integration`
/// names who registered it (see `AppState::integration_of`).
pub async fn register(
    app: &AppState,
    req: RegisterRequest,
    integration: String,
) -> Result<(StatusCode, Transfer, Option<Vec<ActionView>>), ApiError> {
    let id = resolve_id(&req)?;
    if let Some(create) = &req.create {
        create.validate().map_err(ApiError::Invalid)?;
    }
    validate_metadata(&req.metadata)?;
    if let Some(url) = &req.callback_url {
        app.check_callback(url).await?;
    }
    let fingerprint = fingerprint(&req);
    let mut upstream = None;
    if let Some(create) = &req.create
        && app.store.get(&id).await?.is_none()
    {
        upstream = Some(create_upstream(app, create).await?);
    }
    let new = NewTransfer {
        id: id.clone(),
        callback_url: req.callback_url.clone(),
        metadata: req.metadata.clone(),
        request_json: fingerprint,
        upstream_status: upstream.as_ref().map(|f| f.resource.status.to_string()),
        upstream: upstream.as_ref().map(|f| f.raw.clone()),
        integration: Some(integration),
        return_signal: req.return_signal,
    };
    let created = upstream.as_ref().map(|f| &f.resource);
    match app.lifecycle.register_viewed(&new, created).await? {
        (Registered::Created(t), actions) => {
            start_tracking(app, &t, upstream.as_ref()).await;
            Ok((StatusCode::CREATED, t, Some(actions)))
        }
        (Registered::Identical(t), _) => Ok((StatusCode::OK, t, None)),
        (Registered::Conflict(_), _) => Err(ApiError::Conflict(format!(
            "callTransferId {id} is already registered with a different body"
        ))),
    }
}

async fn start_tracking(app: &AppState, t: &Transfer, created: Option<&Fetched>) {
    let mut state = TrackState::new(t.id.clone(), t.created_at);
    state.integration = app.tracker.integration(t.integration.as_deref());
    state.return_signal = t.return_signal;
    if let Some(f) = created {
        // The create response already told us the status (and expiresAt):
        // the policy schedules the first GET from it.
        state.phase = state.learn(&f.resource);
    }
    app.tracker.track_per_policy(state).await;
}

fn resolve_id(req: &RegisterRequest) -> Result<TransferId, ApiError> {
    let raw = match (&req.call_transfer_id, &req.create) {
        (Some(id), None) => id,
        (None, Some(create)) => &create.id,
        (Some(id), Some(create)) if *id == create.id => id,
        (Some(_), Some(_)) => {
            return Err(ApiError::Invalid(
                "callTransferId and create.id differ".into(),
            ));
        }
        (None, None) => {
            return Err(ApiError::Invalid(
                "callTransferId or create is required".into(),
            ));
        }
    };
    TransferId::parse(raw).map_err(|e| ApiError::Invalid(e.to_string()))
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(ApiError::Invalid(format!(
            "metadata has more than {MAX_METADATA_ENTRIES} entries"
        )));
    }
    for (key, value) in metadata {
        // Characters, not bytes: the limits the OpenAPI schema states
        // (JSON Schema's maxLength) count characters.
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_METADATA_KEY {
            return Err(ApiError::Invalid(format!(
                "metadata keys must be 1-{MAX_METADATA_KEY} characters"
            )));
        }
        if value.chars().count() > MAX_METADATA_VALUE {
            return Err(ApiError::Invalid(format!(
                "metadata.{key} is longer than {MAX_METADATA_VALUE} characters"
            )));
        }
    }
    Ok(())
}

/// SHA-256 of the canonical request (serde_json maps are sorted), so repeats
/// compare without the bridge storing credentials a `create` body may hold.
fn fingerprint(req: &RegisterRequest) -> String {
    let canonical = serde_json::to_value(req)
        .expect("requests serialize")
        .to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", hex(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Create upstream (a 409 there is read with a GET, see
/// `UpstreamClient::create`).
async fn create_upstream(app: &AppState, body: &CreateCallTransfer) -> Result<Fetched, ApiError> {
    app.upstream.create(body).await.map_err(upstream_failure)
}

/// A create that failed, for its caller: "later" (503 with `Retry-After`)
/// when the upstream is rate-limiting or the bridge's budget holds requests
/// back, 502 when the upstream failed, 422 when it refused the body.
fn upstream_failure(e: UpstreamError) -> ApiError {
    match (e.disposition(), &e) {
        (Disposition::FatalForTransfer, _) => {
            ApiError::Invalid(format!("upstream rejected the create body: {e}"))
        }
        (Disposition::FatalForBridge, _) => {
            ApiError::Upstream(format!("upstream refused the bridge's credentials: {e}"))
        }
        (Disposition::RetryLater { after }, UpstreamError::Status { status: 429, .. })
        | (Disposition::RetryLater { after }, UpstreamError::Budget { .. }) => {
            let after = after.unwrap_or(Duration::from_secs(1));
            ApiError::UpstreamLater(format!("upstream create not possible now: {e}"), after)
        }
        _ => ApiError::Upstream(format!("upstream create failed: {e}")),
    }
}
