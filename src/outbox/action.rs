//! `Action`: one thing to deliver, as routing produces it and the outbox
//! stores it. Its id is the dedupe key consumers see.

use serde::{Deserialize, Serialize};

use crate::transfer::TransferId;

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
    /// `agent`, `pbx`, `audit`, `webhook`, ... (shown in the API).
    pub kind: String,
    pub target: Target,
    /// The serialized `TransferEvent`, byte-identical on every redelivery.
    pub body: String,
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
