//! `Action`: one thing to deliver, as routing produces it and the outbox
//! stores it. Its id is the dedupe key consumers see: the transfer id plus
//! the action's name, built once and never split back.

use serde::{Deserialize, Serialize};

use super::TransferId;

/// Where an action goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "sink", rename_all = "lowercase")]
pub enum Target {
    Amqp(AmqpTarget),
    Webhook { url: String },
}

/// An AMQP publish, with the message properties DESIGN.md lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmqpTarget {
    pub exchange: String,
    pub routing_key: String,
    /// An unroutable mandatory message is returned by the broker and retried.
    pub mandatory: bool,
    pub event_type: String,
    pub correlation_id: Option<String>,
    pub transfer_type: Option<String>,
    pub current_task: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// `<callTransferId>.<name>`; AMQP `message_id` and `webhook-id`.
    pub id: String,
    pub transfer_id: TransferId,
    /// What follows the transfer id in `id`: `agent`, `pbx`,
    /// `audit.completed`, `webhook.completed`, ...
    pub name: String,
    pub kind: ActionKind,
    pub target: Target,
    /// The serialized `TransferEvent`, byte-identical on every redelivery.
    pub body: String,
}

impl Action {
    /// An action named `name` of `transfer`; its id is derived here, once.
    pub fn new(transfer: &TransferId, name: &str, kind: ActionKind, target: Target) -> Self {
        Self {
            id: transfer.action_id(name),
            transfer_id: transfer.clone(),
            name: name.to_string(),
            kind,
            target,
            body: String::new(),
        }
    }
}

/// What an action is for (shown in the API as `kind`, and a metric label).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActionKind {
    /// A state change on the audit exchange.
    Audit,
    /// A SIP instruction on the PBX exchange.
    Pbx,
    /// The outcome webhook to the IVR.
    Webhook,
    /// A route's publish, named after the route (`agent`, ...).
    Route(String),
}

impl ActionKind {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Audit => "audit",
            Self::Pbx => "pbx",
            Self::Webhook => "webhook",
            Self::Route(name) => name,
        }
    }

    /// The stored form back. Route names may not be `audit`, `pbx` or
    /// `webhook` (`routing::validate_routes`), so this is exact.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "audit" => Self::Audit,
            "pbx" => Self::Pbx,
            "webhook" => Self::Webhook,
            route => Self::Route(route.to_string()),
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ActionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Delivery status shown by `GET /v1/transfers/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    Pending,
    Delivered,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Self {
        match raw {
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}
