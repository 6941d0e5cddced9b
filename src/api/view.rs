//! What the API returns for a transfer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::outbox::ActionView;
use crate::transfer::{BridgeState, Transfer};

/// The bridge's view of one transfer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferView {
    pub call_transfer_id: String,
    /// TRACKING, COMPLETED, EXPIRED, FAILED or CANCELLED.
    #[schema(value_type = String)]
    pub state: BridgeState,
    /// The last upstream status seen (ACTIVE, ONGOING, COMPLETED, EXPIRED, ...).
    pub upstream_status: Option<String>,
    /// The last upstream resource seen (secrets redacted).
    #[schema(value_type = Option<Object>)]
    pub upstream: Option<Value>,
    pub polls: u32,
    pub callback_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Why it FAILED or was CANCELLED.
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Present on single-transfer answers, absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<ActionView>>,
    /// Set by `redeliver`: how many actions were enqueued again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeued: Option<u64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    pub items: Vec<TransferView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl TransferView {
    pub fn summary(t: Transfer) -> Self {
        Self {
            call_transfer_id: t.id.to_string(),
            state: t.state,
            upstream_status: t.upstream_status,
            upstream: t.upstream,
            polls: t.polls,
            callback_url: t.callback_url,
            metadata: t.metadata,
            reason: t.reason,
            created_at: t.created_at.format(&Rfc3339).unwrap_or_default(),
            updated_at: t.updated_at.format(&Rfc3339).unwrap_or_default(),
            actions: None,
            requeued: None,
        }
    }

    /// A transfer just registered, with the actions its commit enqueued.
    pub fn enqueued(t: Transfer, actions: Vec<ActionView>) -> Self {
        Self {
            actions: Some(actions),
            ..Self::summary(t)
        }
    }
}
