//! Building a `TransferEvent` from a transfer and the upstream's resource.

use serde_json::Value;

use crate::transfer::{BridgeState, Transfer, TransferEvent};
use crate::upstream::CallTransfer;

/// The event for `transfer` entering `state`, with what the upstream said.
pub fn for_state(
    transfer: &Transfer,
    state: BridgeState,
    resource: Option<&CallTransfer>,
) -> TransferEvent {
    let output = resource.and_then(|r| r.output_context.clone());
    let output = output.unwrap_or_default();
    TransferEvent {
        event_id: transfer.id.action_id(state.event_suffix()),
        kind: format!("transfer.{}", state.event_suffix()),
        occurred_at: crate::transfer::clock::now_rfc3339(),
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

fn string_at(value: Option<&Value>, key: &str) -> Option<String> {
    value?.get(key)?.as_str().map(str::to_owned)
}
