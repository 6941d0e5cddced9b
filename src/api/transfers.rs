//! `/v1/transfers`: register, inspect, list, cancel, signal, redeliver.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, IdPath};
use super::register::{RegisterRequest, register};
use super::view::{ListResponse, TransferView};
use super::wait::{self, WaitQuery};
use crate::lifecycle::{Finish, Finished};
use crate::tracker::Signal;
use crate::transfer::{BridgeState, TransferId};
use crate::upstream::ErrorEnvelope;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// `POST /v1/transfers`: 201 new, 200 identical repeat, 409 conflict, 422 invalid.
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered; tracking started", body = TransferView),
        (status = 200, description = "Identical repeat of an earlier registration", body = TransferView),
        (status = 400, description = "Body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 409, description = "Same callTransferId registered with another body", body = ErrorEnvelope),
        (status = 413, description = "Body over http.max_body_bytes", body = ErrorEnvelope),
        (status = 415, description = "Not application/json", body = ErrorEnvelope),
        (status = 422, description = "Invalid registration (or create body refused upstream)", body = ErrorEnvelope),
        (status = 429, description = "Registration rate limit of this token", body = ErrorEnvelope),
        (status = 502, description = "Upstream create failed", body = ErrorEnvelope),
        (status = 503, description = "Shutting down, storage unavailable (disk full or failing), or the upstream is rate-limiting or the daily request budget is spent; see Retry-After", body = ErrorEnvelope),
        (status = 408, description = "Body not received within http.body_read_timeout", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn create(
    State(app): State<AppState>,
    token: Option<axum::Extension<super::limit::TokenId>>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    if app.draining.is_cancelled() {
        return Err(ApiError::Unavailable(
            "shutting down; register with another instance or retry shortly".into(),
        ));
    }
    app.register_limit
        .check(token.map(|t| t.0))
        .map_err(ApiError::TooMany)?;
    let integration = app.integration_of(token.map(|t| t.0));
    let view = match register(&app, body, integration).await? {
        // New: its answer is what the commit recorded (no second read).
        (status, transfer, Some(actions)) => (status, TransferView::enqueued(transfer, actions)),
        // A repeat: read with its actions, beside whatever other reads
        // arrive with it (an IVR retrying a batch; see `outbox::view_reads`).
        (status, transfer, None) => (
            status,
            app.view_of(app.find_full(&transfer.id).await?).await,
        ),
    };
    Ok((view.0, Json(view.1)).into_response())
}

/// `GET /v1/transfers/{id}`: the bridge's view, with its actions. With
/// `?wait=`, a TRACKING transfer is polled now and the answer held until it
/// leaves TRACKING or the wait runs out (then `Retry-After` says ask again).
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers",
    params(("id" = String, Path, description = "callTransferId"), WaitQuery),
    responses(
        (status = 200, description = "The bridge's view of the transfer; with `?wait=`, after it left TRACKING, or still TRACKING (with Retry-After) when the wait ran out", body = TransferView),
        (status = 400, description = "Malformed query (e.g. `wait` given twice)", body = ErrorEnvelope),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 404, description = "Unknown transfer", body = ErrorEnvelope),
        (status = 422, description = "Bad `wait` (negative, not a duration, unknown unit, too large)", body = ErrorEnvelope),
        (status = 503, description = "Too many held requests (http.max_waiters), or shutting down; Retry-After", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn get_one(
    State(app): State<AppState>,
    IdPath(id): IdPath,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = wait::parse(query.wait.as_deref(), app.config.http.max_wait)?;
    let found = wait::settle(&app, &id, wait).await?;
    let still_tracking = wait.is_some() && !found.transfer.state.is_terminal();
    let response = Json(app.view_of(found).await).into_response();
    Ok(match still_tracking {
        true => wait::retry_soon(response),
        false => response,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// TRACKING, COMPLETED, EXPIRED, FAILED or CANCELLED (any case).
    state: Option<String>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^(\\+?0*[1-9][0-9]{0,17})?$")]
    cursor: Option<String>,
}

/// `GET /v1/transfers?state=&limit=&cursor=`
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers", params(ListQuery),
    responses(
        (status = 200, description = "A page of transfers, oldest first", body = ListResponse),
        (status = 400, description = "Unknown query parameter, or a limit that is not a number", body = ErrorEnvelope),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 422, description = "Bad state, limit or cursor", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ListResponse>, ApiError> {
    let Query(query) = query?;
    let state = match query.state.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(BridgeState::parse(raw).ok_or_else(|| {
            ApiError::Invalid(format!(
                "state must be one of TRACKING, COMPLETED, EXPIRED, FAILED, CANCELLED (got {raw:?})"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::Invalid(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| ApiError::Invalid("cursor is not one this API issued".into()))?,
        ),
    };
    let page = app.store.list(state, limit, cursor).await?;
    let items = page.items.into_iter().map(TransferView::summary).collect();
    Ok(Json(ListResponse {
        items,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}

/// `DELETE /v1/transfers/{id}`: stop tracking. Idempotent: a transfer that
/// already ended is returned unchanged.
#[utoipa::path(delete, path = "/v1/transfers/{id}", tag = "transfers", params(("id" = String, Path, description = "callTransferId")),
    responses(
        (status = 200, description = "CANCELLED (or already ended)", body = TransferView),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 404, description = "Unknown transfer", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable (disk full or failing); retry after Retry-After", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn cancel(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<TransferView>, ApiError> {
    let cancel = Finish {
        state: BridgeState::Cancelled,
        reason: Some("cancelled via DELETE /v1/transfers/{id}"),
        seen: None,
        polls: None,
        known: None,
    };
    let transfer = match app.lifecycle.finish(&id, cancel).await? {
        Finished::Unknown => return Err(not_found(&id)),
        Finished::AlreadyEnded(transfer) => transfer,
        Finished::Changed { .. } => {
            app.tracker.untrack(id.clone()).await;
            app.find(&id).await?
        }
    };
    Ok(Json(app.view(transfer).await?))
}

/// `POST /v1/transfers/{id}/returned`: the PBX saw the call come back.
/// With `?wait=`, the answer is held until the poll it triggers (and its
/// re-polls) see the transfer leave TRACKING, or the wait runs out.
#[utoipa::path(post, path = "/v1/transfers/{id}/returned", tag = "transfers",
    params(("id" = String, Path, description = "callTransferId"), WaitQuery),
    responses(
        (status = 202, description = "Polling now, ahead of routine polls; with `?wait=`, still TRACKING when the wait ran out (Retry-After)", body = TransferView),
        (status = 200, description = "Ended (already, or within the wait); nothing left to poll", body = TransferView),
        (status = 400, description = "Malformed query (e.g. `wait` given twice)", body = ErrorEnvelope),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 404, description = "Unknown transfer", body = ErrorEnvelope),
        (status = 422, description = "Bad `wait`", body = ErrorEnvelope),
        (status = 503, description = "Too many held requests, shutting down, or the tracker is not running; Retry-After", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn returned(
    State(app): State<AppState>,
    IdPath(id): IdPath,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = wait::parse(query.wait.as_deref(), app.config.http.max_wait)?;
    let view = match wait.filter(|w| !w.is_zero()) {
        Some(_) => app.view_of(wait::settle(&app, &id, wait).await?).await,
        None => signal(&app, &id).await?,
    };
    if view.state.is_terminal() {
        return Ok((StatusCode::OK, Json(view)).into_response());
    }
    let response = (StatusCode::ACCEPTED, Json(view)).into_response();
    Ok(match wait.is_some() {
        true => wait::retry_soon(response),
        false => response,
    })
}

/// Poll a TRACKING transfer now, in the returned-call lane; its view, with
/// the live poll count the signal brought back.
async fn signal(app: &AppState, id: &TransferId) -> Result<TransferView, ApiError> {
    let found = app.find_full(id).await?;
    if found.transfer.state.is_terminal() {
        return Ok(app.view_of(found).await);
    }
    let Some(signalled) = app
        .cluster
        .poll_now(&found.transfer, Signal::Returned)
        .await
    else {
        return Err(ApiError::Unavailable("the tracker is not running".into()));
    };
    Ok(AppState::view_with(found, signalled.polls()))
}

/// `POST /v1/transfers/{id}/redeliver`: enqueue its actions again, same ids.
#[utoipa::path(post, path = "/v1/transfers/{id}/redeliver", tag = "transfers", params(("id" = String, Path, description = "callTransferId")),
    responses(
        (status = 202, description = "Actions enqueued again (see requeued)", body = TransferView),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 404, description = "Unknown transfer", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable (disk full or failing); retry after Retry-After", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn redeliver(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let transfer = app.find(&id).await?;
    let requeued = app.lifecycle.redeliver(&id).await?;
    let mut view = app.view(transfer).await?;
    view.requeued = Some(requeued);
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

pub fn not_found(id: &TransferId) -> ApiError {
    ApiError::NotFound(format!("no transfer with callTransferId {id}"))
}
