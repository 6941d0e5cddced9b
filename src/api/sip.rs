//! SIP endpoints: the instruction for a dialplan's HTTP lookup, and
//! headers-only returns routed without any upstream call.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{ApiBytes, IdPath};
use super::view::TransferView;
use super::{AppState, Found};
use crate::lifecycle::Returned;
use crate::outbox::ActionView;
use crate::sip::{ParsedReturn, ReturnInput, parse_return};
use crate::store::NewTransfer;
use crate::transfer::{BridgeState, Transfer, TransferId};
use crate::upstream::model::{OutputContext, TransferMethod, TransferType};
use crate::upstream::{CallTransfer, ErrorEnvelope, Fetched, Status};

const MESSAGE_SIP: &str = "message/sip";

/// `GET /v1/transfers/{id}/sip`: JSON, or the raw message with
/// `Accept: message/sip` (FreeSWITCH mod_curl, Asterisk CURL()).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    /// `sip` for the raw message, for HTTP clients that cannot set `Accept`.
    format: Option<String>,
    /// See [`super::wait::WaitQuery`].
    wait: Option<String>,
}

#[utoipa::path(get, path = "/v1/transfers/{id}/sip", tag = "sip",
    params(("id" = String, Path, description = "callTransferId"),
        ("format" = Option<String>, Query, description = "`sip` for the raw message"),
        ("wait" = Option<String>, Query, description = "Hold a TRACKING transfer's request (it counts as a returned-call signal) until it leaves TRACKING, at most this long (capped by http.max_wait): `5s`, `750ms` or seconds (`2.5`)")),
    responses(
        (status = 200, description = "The SIP instruction: JSON, or `message/sip` with Accept: message/sip or ?format=sip",
            content((Object = "application/json"), (String = "message/sip"))),
        (status = 400, description = "Unknown query parameter", body = ErrorEnvelope),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 404, description = "Unknown transfer; or no instruction will come: it ended (the message names the final state) without one, e.g. AGENT, CALLER_DISCONNECT, EXPIRED, FAILED; or, without `?wait=`, it is still TRACKING", body = ErrorEnvelope),
        (status = 422, description = "Bad `wait`", body = ErrorEnvelope),
        (status = 503, description = "Too many held requests (http.max_waiters), or shutting down; Retry-After", body = ErrorEnvelope),
        (status = 202, description = "The `?wait=` ran out while the transfer was still TRACKING: no instruction yet, ask again (Retry-After); the envelope's code is 202-01", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn instruction(
    State(app): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    query: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let wait = super::wait::parse(query.wait.as_deref(), app.config.http.max_wait)?;
    let transfer = super::wait::settle_transfer(&app, &id, wait).await?;
    let Some(sip) = transfer.sip else {
        return Err(no_instruction(&transfer, wait));
    };
    let wants_raw = query.format.as_deref() == Some("sip")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.to_ascii_lowercase().contains(MESSAGE_SIP));
    if wants_raw {
        return Ok(([(header::CONTENT_TYPE, MESSAGE_SIP)], sip.message).into_response());
    }
    Ok(Json(sip).into_response())
}

/// Why there is no instruction, in words a dialplan's log can act on: still
/// TRACKING after a wait (202: ask again), or ended without one (404: none
/// will come; the message names the final state).
fn no_instruction(transfer: &Transfer, wait: Option<std::time::Duration>) -> ApiError {
    let id = &transfer.id;
    if transfer.state == BridgeState::Tracking {
        let status = transfer
            .upstream_status
            .as_deref()
            .unwrap_or("not seen yet");
        return match wait {
            Some(wait) => ApiError::StillTracking(format!(
                "transfer {id} is still TRACKING (upstream status {status}) after waiting {}; no SIP instruction yet, ask again",
                humantime::format_duration(wait)
            )),
            None => ApiError::NotFound(format!(
                "transfer {id} has no SIP instruction yet: it is still TRACKING (upstream status {status}); pull with ?wait=10s to be answered when it completes"
            )),
        };
    }
    let detail = match (transfer.state, transfer_type(transfer), &transfer.reason) {
        // A matched route that could not make its instruction said why.
        (BridgeState::Completed, Some(kind), Some(reason)) => {
            format!("transferType {kind}: {reason}")
        }
        (BridgeState::Completed, Some(kind), None) => {
            format!("transferType {kind}, and no route with `sip` matched it")
        }
        (BridgeState::Completed, None, _) => "without an outputContext".to_string(),
        (_, _, Some(reason)) => reason.clone(),
        (state, _, None) => format!("{state} outcomes carry no instruction"),
    };
    ApiError::NotFound(format!(
        "transfer {id} has no SIP instruction: it ended {} ({detail})",
        transfer.state
    ))
}

/// `outputContext.transferType` of the last resource seen.
fn transfer_type(transfer: &Transfer) -> Option<&str> {
    transfer.upstream.as_ref()?["outputContext"]["transferType"].as_str()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReturnBody {
    refer_to: Option<String>,
    message: Option<String>,
}

/// `POST /v1/sip/returns`: a Refer-To URI or a whole REFER/INVITE, as JSON
/// (`{"referTo"}` or `{"message"}`), `text/plain` (a URI) or `message/sip`.
#[utoipa::path(post, path = "/v1/sip/returns", tag = "sip",
    request_body(description = "`{\"referTo\": uri}` or `{\"message\": text}` as JSON, a URI as text/plain, or a SIP message as message/sip",
        content((Object = "application/json"), (String = "text/plain"), (String = "message/sip"))),
    responses(
        (status = 201, description = "Routed as a new completed transfer", body = TransferView),
        (status = 200, description = "Completed a tracked transfer, or a repeat", body = TransferView),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorEnvelope),
        (status = 415, description = "Unsupported content type", body = ErrorEnvelope),
        (status = 422, description = "Malformed URI or message (the reason says where)", body = ErrorEnvelope),
        (status = 429, description = "Over this token's rate (http.register_rate_per_s, a bucket of its own); Retry-After", body = ErrorEnvelope),
        (status = 503, description = "Storage unavailable (disk full or failing); retry after Retry-After", body = ErrorEnvelope),
    ), security(("bearer" = [])))]
pub async fn returns(
    State(app): State<AppState>,
    token: Option<axum::Extension<super::limit::TokenId>>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    app.returns_limit
        .check(token.map(|t| t.0))
        .map_err(ApiError::TooMany)?;
    let (text, is_message) = read_input(&headers, &body)?;
    let input = if is_message {
        ReturnInput::Message(&text)
    } else {
        ReturnInput::ReferTo(&text)
    };
    let parsed = parse_return(input, &app.config.sip.header_prefix)
        .map_err(|e| ApiError::Invalid(format!("cannot read the SIP return: {e}")))?;
    let id = return_id(&parsed, &text)?;
    let resource = completed_resource(&id, &parsed);
    let (status, created) = complete(&app, &id, resource).await?;
    let found = match created {
        Some((transfer, actions)) => Found { transfer, actions },
        None => app.find_full(&id).await?,
    };
    Ok((status, Json(app.view_of(found).await)).into_response())
}

fn read_input(headers: &HeaderMap, body: &Bytes) -> Result<(String, bool), ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = || {
        String::from_utf8(body.to_vec()).map_err(|_| ApiError::Invalid("body is not UTF-8".into()))
    };
    match essence.as_str() {
        "application/json" => {
            let parsed: ReturnBody = serde_json::from_slice(body)
                .map_err(|e| ApiError::Invalid(format!("body: {e}")))?;
            match (parsed.refer_to, parsed.message) {
                (Some(uri), None) => Ok((uri, false)),
                (None, Some(message)) => Ok((message, true)),
                _ => Err(ApiError::Invalid(
                    "give exactly one of referTo or message".into(),
                )),
            }
        }
        "text/plain" => Ok((text()?, false)),
        MESSAGE_SIP => Ok((text()?, true)),
        _ => Err(ApiError::UnsupportedMediaType(
            "send application/json, text/plain (a URI) or message/sip".into(),
        )),
    }
}

/// The PBX's `X-ASAPP-CallTransferId` when present; otherwise a stable id
/// derived from the conversation id (or the input), so a repeated POST of
/// the same return dedupes instead of routing twice.
fn return_id(parsed: &ParsedReturn, text: &str) -> Result<TransferId, ApiError> {
    if let Some(id) = &parsed.call_transfer_id {
        return TransferId::parse(id)
            .map_err(|e| ApiError::Invalid(format!("X-ASAPP-CallTransferId: {e}")));
    }
    let seed = parsed.external_conversation_id.as_deref().unwrap_or(text);
    let digest = Sha256::digest(seed.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(TransferId::parse(&format!("sip-return-{hex}")).expect("hex ids are valid"))
}

fn completed_resource(id: &TransferId, parsed: &ParsedReturn) -> CallTransfer {
    let now = crate::transfer::clock::now_rfc3339();
    CallTransfer {
        id: id.to_string(),
        external_conversation_id: parsed.external_conversation_id.clone().unwrap_or_default(),
        status: Status::Completed,
        created_at: now.clone(),
        kind: TransferMethod::Sip,
        call_received_at: None,
        completed_at: Some(now),
        input_context: None,
        output_context: Some(OutputContext {
            transfer_type: parsed.transfer_type.as_deref().map(TransferType::from),
            current_task_name: parsed.current_task_name.clone(),
            reference_variables: parsed.reference_variables.clone(),
            transfer_variables: parsed.transfer_variables.clone(),
        }),
        phone_number: None,
        sip: None,
    }
}

/// Record the return as the transfer's completion and route it, in one
/// transaction. 201 when the transfer is new to the bridge, with it and its
/// actions as the commit left them; 200 otherwise.
async fn complete(
    app: &AppState,
    id: &TransferId,
    resource: CallTransfer,
) -> Result<(StatusCode, Option<(Transfer, Vec<ActionView>)>), ApiError> {
    let raw = serde_json::to_value(&resource).map_err(ApiError::internal)?;
    let new = NewTransfer {
        id: id.clone(),
        callback_url: None,
        metadata: BTreeMap::new(),
        request_json: "sip-return".into(),
        upstream_status: None,
        upstream: None,
        integration: None,
        return_signal: None,
    };
    let seen = Arc::new(Fetched::new(resource, raw));
    let outcome = app.lifecycle.sip_return(&new, seen).await?;
    let status = match outcome.returned {
        Returned::Created => StatusCode::CREATED,
        Returned::Existing => StatusCode::OK,
    };
    app.tracker.untrack(id.clone()).await;
    Ok((status, outcome.created))
}
