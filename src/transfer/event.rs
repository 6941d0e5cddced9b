//! `TransferEvent`: the one JSON shape of AMQP bodies and webhooks.
//! Routing builds it from a transfer and what the upstream said.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::BridgeState;
use crate::sip::SipInstruction;

/// String-keyed variables. The spec says string-to-string, but examples carry
/// booleans, numbers and arrays, so values stay JSON.
pub type Variables = serde_json::Map<String, Value>;

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
    /// `transfer.<state>`, `transfer.adopted` (another instance took over
    /// polling it) or `delivery.failed`.
    #[serde(rename = "type")]
    #[schemars(extend("enum" = [
        "transfer.tracking", "transfer.completed", "transfer.expired",
        "transfer.failed", "transfer.cancelled", "transfer.adopted", "delivery.failed"
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
    pub sip: Option<SipInstruction>,
    /// Why the transfer failed or was cancelled, or why a delivery failed.
    pub reason: Option<String>,
}

impl TransferEvent {
    /// This event as a `delivery.failed` audit record: the same transfer,
    /// with the failed action and why, and a new id and time.
    /// The audit record of an adoption: instance `by` polls the transfer
    /// from now on, because `from` (its owner) stopped renewing its lease.
    pub fn adopted(mut self, from: Option<&str>, by: &str) -> Self {
        self.event_id = format!("{}.adopted.{by}", self.call_transfer_id);
        self.kind = "transfer.adopted".into();
        self.reason = Some(match from {
            Some(from) => format!("adopted by instance {by} from {from}, whose lease expired"),
            None => format!("adopted by instance {by}; it had no owner"),
        });
        self
    }

    pub fn delivery_failed(mut self, action_id: &str, error: &str) -> Self {
        self.event_id = format!("{action_id}.delivery_failed");
        self.kind = "delivery.failed".into();
        self.occurred_at = super::clock::now_rfc3339();
        self.reason = Some(format!("action {action_id}: {error}"));
        self
    }
}
