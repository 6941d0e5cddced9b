//! The domain: a tracked call transfer, its id and its bridge states.

mod action;
pub mod clock;
mod event;
mod id;
mod waiters;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

pub use action::{Action, ActionKind, ActionStatus, AmqpTarget, Target};
pub use event::{TransferEvent, Variables};
pub use id::{InvalidId, MAX_ID_LEN, TransferId};
pub use waiters::{Full as WaitersFull, Waiter, Waiters};

/// The bridge's own lifecycle of a transfer (DESIGN.md, "Bridge states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BridgeState {
    Tracking,
    Completed,
    Expired,
    /// Upstream 404 past the grace period, auth refused, another fatal 4xx,
    /// or tracking time exceeded.
    Failed,
    /// Stopped by `DELETE /v1/transfers/{id}`.
    Cancelled,
}

impl BridgeState {
    pub const ALL: [BridgeState; 5] = [
        Self::Tracking,
        Self::Completed,
        Self::Expired,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tracking => "TRACKING",
            Self::Completed => "COMPLETED",
            Self::Expired => "EXPIRED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Lowercase form used in event types and routing keys (`transfer.completed`).
    pub fn event_suffix(self) -> &'static str {
        match self {
            Self::Tracking => "tracking",
            Self::Completed => "completed",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(raw))
    }

    pub fn is_terminal(self) -> bool {
        self != Self::Tracking
    }
}

impl std::fmt::Display for BridgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transfer as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub id: TransferId,
    pub state: BridgeState,
    /// Last upstream `status` seen (ACTIVE, ONGOING, ...), kept verbatim.
    pub upstream_status: Option<String>,
    /// Last upstream resource seen, secrets redacted.
    pub upstream: Option<Value>,
    pub callback_url: Option<String>,
    /// Integrator-supplied strings echoed in every event.
    pub metadata: BTreeMap<String, String>,
    pub polls: u32,
    /// Why the transfer ended FAILED or CANCELLED.
    pub reason: Option<String>,
    /// The SIP instruction made at completion, if a route asked for one.
    pub sip: Option<crate::sip::SipInstruction>,
    /// Which integration registered it (`tok-<fingerprint>` of its bearer
    /// token, `shared` when tokens are off): signal trust is learned per
    /// integration.
    pub integration: Option<String>,
    /// The registration's `returnSignal`: the PBX will (or will not) signal
    /// this call's return, overriding the learned trust.
    pub return_signal: Option<bool>,
    /// The instance that polls it (`cluster.instance_id`); any instance
    /// answers the API for it.
    pub owner: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Transfer {
    /// A TRACKING transfer of `id` as of `at`, with nothing else known yet
    /// (no upstream status, callback, metadata, polls or owner): the base
    /// that `sip render` and tests fill in with struct update syntax.
    pub fn tracking(id: TransferId, at: OffsetDateTime) -> Transfer {
        Transfer {
            id,
            state: BridgeState::Tracking,
            upstream_status: None,
            upstream: None,
            callback_url: None,
            metadata: Default::default(),
            polls: 0,
            reason: None,
            sip: None,
            integration: None,
            return_signal: None,
            owner: None,
            created_at: at,
            updated_at: at,
        }
    }

    /// A copy without the last upstream resource, the one part that is a
    /// tree of allocations: for an ending that records a newer one (see
    /// `lifecycle::Finish::known`), which has no use for it. Field by field:
    /// `..self.clone()` would clone the very resource it leaves out.
    pub fn without_upstream(&self) -> Transfer {
        Transfer {
            id: self.id.clone(),
            state: self.state,
            upstream_status: self.upstream_status.clone(),
            upstream: None,
            callback_url: self.callback_url.clone(),
            metadata: self.metadata.clone(),
            polls: self.polls,
            reason: self.reason.clone(),
            sip: self.sip.clone(),
            integration: self.integration.clone(),
            return_signal: self.return_signal,
            owner: self.owner.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
