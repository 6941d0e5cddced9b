//! `TransferEvent`: the one JSON shape of AMQP bodies and webhooks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::transfer::{BridgeState, Transfer};
use crate::upstream::CallTransfer;
use crate::upstream::model::Variables;

/// Every field is always present (null when unknown) so consumers can rely on
/// one shape; camelCase like the upstream.
///
/// Its JSON Schema is published as `schema/transfer-event.schema.json`; the
/// `schemars` attributes only add what the Rust types cannot say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    description = "One transfer-bridge event: the body of every AMQP message \
    (transfer.agent, transfer.pbx, transfer.audit) and of every webhook. Every field \
    is always present (null when unknown); names are camelCase like the upstream's."
)]
pub struct TransferEvent {
    /// `<callTransferId>.<state>`: one id per state change, stable across
    /// redelivery, so consumers can dedupe.
    pub event_id: String,
    /// `transfer.<state>` or `delivery.failed`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = [
        "transfer.tracking", "transfer.completed", "transfer.expired",
        "transfer.failed", "transfer.cancelled", "delivery.failed"
    ]))]
    pub kind: String,
    /// When the bridge made this event, RFC 3339 in UTC.
    #[schemars(extend("format" = "date-time"))]
    pub occurred_at: String,
    /// The upstream call transfer id.
    pub call_transfer_id: String,
    /// The upstream's conversation id (also the AMQP `correlation_id`).
    pub external_conversation_id: Option<String>,
    /// The bridge state after this event.
    pub state: BridgeState,
    /// The last upstream status (ACTIVE, ONGOING, COMPLETED, EXPIRED, ...).
    pub status: Option<String>,
    /// `outputContext.transferType` (AGENT, SYSTEM, CALLER_DISCONNECT, ...).
    pub transfer_type: Option<String>,
    /// `outputContext.currentTaskName`.
    pub current_task_name: Option<String>,
    /// `outputContext.transferVariables`; values are any JSON.
    pub transfer_variables: Variables,
    /// `outputContext.referenceVariables`; values are any JSON.
    pub reference_variables: Variables,
    /// The upstream `inputContext` (`taskName`, `inputVariables`).
    #[schemars(extend("type" = ["object", "null"]))]
    pub input_context: Option<Value>,
    /// Name of the route that matched, if any.
    pub route: Option<String>,
    /// The `metadata` given at registration, echoed in every event.
    pub metadata: BTreeMap<String, String>,
    /// The SIP instruction, when the route made one.
    // A `Value` here (the instruction plus `target`), so its shape is spelled
    // out for consumers; the emitted-events test keeps it honest.
    #[schemars(extend(
        "type" = ["object", "null"],
        "required" = ["method", "requestUri", "target", "headers", "message", "dropped"],
        "properties" = {
            "method": {"enum": ["REFER", "INVITE", "BYE"]},
            "requestUri": {"type": "string"},
            "target": {"type": "string"},
            "headers": {"type": "array", "items": {
                "type": "array", "minItems": 2, "maxItems": 2,
                "prefixItems": [{"type": "string"}, {"type": "string"}]
            }},
            "message": {"type": "string"},
            "dropped": {"type": "array", "items": {"type": "string"}}
        }
    ))]
    pub sip: Option<Value>,
    /// Why the transfer failed or was cancelled, or why a delivery failed.
    pub reason: Option<String>,
}

impl TransferEvent {
    /// The event for `transfer` entering `state`, with what the upstream said.
    pub fn for_state(
        transfer: &Transfer,
        state: BridgeState,
        resource: Option<&CallTransfer>,
    ) -> Self {
        let output = resource.and_then(|r| r.output_context.clone());
        let output = output.unwrap_or_default();
        Self {
            event_id: transfer.id.action_id(state.event_suffix()),
            kind: format!("transfer.{}", state.event_suffix()),
            occurred_at: now_rfc3339(),
            call_transfer_id: transfer.id.to_string(),
            external_conversation_id: resource
                .map(|r| r.external_conversation_id.clone())
                .or_else(|| string_at(transfer.upstream.as_ref(), "externalConversationId")),
            state,
            status: resource
                .map(|r| r.status.to_string())
                .or_else(|| transfer.upstream_status.clone()),
            transfer_type: output.transfer_type.map(|t| t.to_string()),
            current_task_name: output.current_task_name,
            transfer_variables: output.transfer_variables,
            reference_variables: output.reference_variables,
            input_context: resource
                .and_then(|r| r.input_context.as_ref())
                .and_then(|c| serde_json::to_value(c).ok()),
            route: None,
            metadata: transfer.metadata.clone(),
            sip: None,
            reason: transfer.reason.clone(),
        }
    }
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn string_at(value: Option<&Value>, key: &str) -> Option<String> {
    value?.get(key)?.as_str().map(str::to_owned)
}
