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
use crate::outbox::repo;
use crate::store;
use crate::transfer::{BridgeState, TransferId};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// `POST /v1/transfers`: 201 new, 200 identical repeat, 409 conflict, 422 invalid.
pub async fn create(
    State(app): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let (status, transfer) = register(&app, body).await?;
    let view = app.view(transfer).await?;
    Ok((status, Json(view)).into_response())
}

/// `GET /v1/transfers/{id}`: the bridge's view, with its actions.
pub async fn get_one(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<TransferView>, ApiError> {
    let transfer = app.find(&id).await?;
    Ok(Json(app.view(transfer).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /v1/transfers?state=&limit=&cursor=`
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
pub async fn cancel(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Json<TransferView>, ApiError> {
    let mut tx = app.store.begin().await?;
    let Some(mut transfer) = store::fetch(&mut tx, &id).await? else {
        return Err(not_found(&id));
    };
    let reason = "cancelled via DELETE /v1/transfers/{id}";
    if store::finish(
        &mut tx,
        &id,
        BridgeState::Cancelled,
        Some(reason),
        None,
        None,
    )
    .await?
    {
        transfer.state = BridgeState::Cancelled;
        transfer.reason = Some(reason.into());
        let plan = app.router.plan(&transfer, BridgeState::Cancelled, None);
        repo::enqueue(&mut tx, &plan.actions).await?;
    }
    tx.commit().await?;
    app.tracker.untrack(id.clone()).await;
    app.outbox_wake.notify_one();
    let transfer = app.find(&id).await?;
    Ok(Json(app.view(transfer).await?))
}

/// `POST /v1/transfers/{id}/returned`: the PBX saw the call come back.
pub async fn returned(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let transfer = app.find(&id).await?;
    if transfer.state.is_terminal() {
        return Ok((StatusCode::OK, Json(app.view(transfer).await?)).into_response());
    }
    let polling = app.tracker.poll_now(id.clone()).await;
    if !polling {
        return Err(ApiError::Unavailable("the tracker is not running".into()));
    }
    Ok((StatusCode::ACCEPTED, Json(app.view(transfer).await?)).into_response())
}

/// `POST /v1/transfers/{id}/redeliver`: enqueue its actions again, same ids.
pub async fn redeliver(
    State(app): State<AppState>,
    IdPath(id): IdPath,
) -> Result<Response, ApiError> {
    let transfer = app.find(&id).await?;
    let requeued = repo::redeliver(app.store.pool(), &id).await?;
    app.outbox_wake.notify_one();
    let mut view = app.view(transfer).await?;
    view.requeued = Some(requeued);
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

pub fn not_found(id: &TransferId) -> ApiError {
    ApiError::NotFound(format!("no transfer with callTransferId {id}"))
}
