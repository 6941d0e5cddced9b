//! Sinks that deliver outbox actions: AMQP (lapin) and signed webhooks.

pub mod amqp;

use std::time::Duration;

pub use amqp::{AmqpPublisher, PublishError};

use crate::outbox::{Action, Target};

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Broker confirm or receiver 2xx.
    Delivered,
    /// Try again; `after` is the receiver's hint (Retry-After), if any.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help (410 Gone, abort-message, a refused address).
    Failed { error: String },
}

/// Every sink the dispatcher can deliver to.
#[derive(Clone)]
pub struct Sinks {
    pub amqp: AmqpPublisher,
}

impl Sinks {
    pub async fn deliver(&self, action: &Action) -> Outcome {
        match &action.target {
            Target::Amqp(target) => {
                match self
                    .amqp
                    .publish(target, &action.id, action.body.as_bytes())
                    .await
                {
                    Ok(()) => Outcome::Delivered,
                    Err(e @ PublishError::TooLong { .. }) => Outcome::Failed {
                        error: e.to_string(),
                    },
                    Err(e) => Outcome::Retry {
                        error: e.to_string(),
                        after: None,
                    },
                }
            }
            Target::Webhook { .. } => Outcome::Failed {
                error: "webhook delivery is not configured in this build".into(),
            },
        }
    }
}
