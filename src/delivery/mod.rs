//! Sinks that deliver outbox actions: AMQP (lapin) and signed webhooks.

pub mod amqp;
pub mod webhook;

use std::time::Duration;

pub use amqp::{AmqpConfig, AmqpPublisher, AuditQueueType, PublishError};

use crate::backoff::Backoff;
use crate::transfer::{Action, Target};

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

impl Outcome {
    /// Its name as a metrics label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retry { .. } => "retry",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Every sink the dispatcher can deliver to.
#[derive(Clone)]
pub struct Sinks {
    pub amqp: AmqpPublisher,
    pub webhook: webhook::WebhookClient,
    /// Current secret first, then those kept for rotation.
    pub webhook_secrets: Vec<webhook::WebhookSecret>,
    pub webhook_retry: webhook::RetryPolicy,
}

impl Sinks {
    pub async fn deliver(&self, action: &Action) -> Outcome {
        match &action.target {
            Target::Amqp(target) => match self.amqp.publish(target, action).await {
                Ok(()) => Outcome::Delivered,
                Err(e @ PublishError::TooLong { .. }) => Outcome::Failed {
                    error: e.to_string(),
                },
                Err(e) => Outcome::Retry {
                    error: e.to_string(),
                    after: None,
                },
            },
            Target::Webhook { url } => self.send_webhook(url, action).await,
        }
    }
}

impl Sinks {
    async fn send_webhook(&self, url: &str, action: &Action) -> Outcome {
        if self.webhook_secrets.is_empty() {
            return Outcome::Failed {
                error: "webhook.secret is not configured".into(),
            };
        }
        let id = webhook_id(&action.id);
        let body = bytes::Bytes::from(action.body.clone());
        match self
            .webhook
            .send(url, &id, body, &self.webhook_secrets)
            .await
        {
            Ok(webhook::Verdict::Delivered) => Outcome::Delivered,
            Ok(webhook::Verdict::Retry {
                retry_after,
                reason,
            }) => Outcome::Retry {
                error: reason,
                after: retry_after,
            },
            Ok(webhook::Verdict::Stop { reason }) => Outcome::Failed { error: reason },
            Err(e @ webhook::WebhookError::Refused(_)) => Outcome::Failed {
                error: e.to_string(),
            },
            Err(e) => Outcome::Retry {
                error: e.to_string(),
                after: None,
            },
        }
    }

    /// How long before the next attempt of `target`, or `None` when its
    /// retries are exhausted. Broker publishes back off and never give up.
    pub fn retry_delay(
        &self,
        target: &Target,
        attempts: u32,
        hint: Option<Duration>,
        amqp: (Duration, Duration),
    ) -> Option<Duration> {
        match target {
            Target::Amqp(_) => {
                let (initial, max) = amqp;
                Some(Backoff::new(initial, max).delay(attempts))
            }
            Target::Webhook { .. } => self.webhook_retry.delay_before(attempts + 1, hint),
        }
    }
}

/// The `webhook-id` of an action: its id with `.` mapped to `_`, since
/// Standard Webhooks ids may not contain the `.` that separates the signed
/// `id.timestamp.body` parts. Stable across retries, like the action id.
pub fn webhook_id(action_id: &str) -> String {
    action_id.replace('.', "_")
}
