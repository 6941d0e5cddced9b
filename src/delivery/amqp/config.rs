//! `[amqp]`: the broker connection, the exchange names and the audit log's
//! queue type and retention.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::settings::{ConfigError, nonzero_duration};

/// RabbitMQ caps `x-message-ttl` at 2^32-1 ms (about 49 days).
const MAX_MESSAGE_TTL_MS: u128 = u32::MAX as u128;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    #[serde(serialize_with = "crate::settings::redact_url_password")]
    pub url: SecretString,
    pub agent_exchange: String,
    pub pbx_exchange: String,
    pub audit_exchange: String,
    pub audit_queue: String,
    /// How the audit queue is declared. A stream by default: RabbitMQ's
    /// structure for an append-only log that any number of readers replay
    /// from an offset, with retention instead of consumption.
    pub audit_queue_type: AuditQueueType,
    /// Retention by age: `x-max-age` on a stream, `x-message-ttl` otherwise.
    /// Sent to the broker, never a timer here, so a stream may keep years.
    #[serde(with = "humantime_serde")]
    pub audit_max_age: Duration,
    /// Retention by size: `x-max-length-bytes`. Without a bound the queue
    /// grows until the broker's disk alarm blocks every publisher.
    pub audit_max_length_bytes: u64,
    /// Shown in the broker's connection list (`rabbitmqctl list_connections`).
    pub connection_name: String,
    /// Return unroutable SIP instructions (and retry them) instead of letting
    /// the broker drop them; on when a PBX adapter consumes `transfer.pbx`.
    pub pbx_mandatory: bool,
    #[serde(with = "crate::settings::duration")]
    pub confirm_timeout: Duration,
    #[serde(with = "crate::settings::duration")]
    pub reconnect_initial: Duration,
    #[serde(with = "crate::settings::duration")]
    pub reconnect_max: Duration,
    /// How long one connection attempt (TCP, handshake, confirm channel,
    /// topology) may take: a broker that accepts the connection and then
    /// says nothing must not hold the reconnect loop forever.
    #[serde(with = "crate::settings::duration")]
    pub connect_timeout: Duration,
}

/// The RabbitMQ queue type of the audit queue (`x-queue-type`).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditQueueType {
    /// Retention by age and size; readers keep their own offset.
    Stream,
    /// Replicated queue; bounded with TTL and length, oldest dropped first.
    Quorum,
    /// Single-node queue; bounded like a quorum queue.
    Classic,
}

impl AuditQueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "stream",
            Self::Quorum => "quorum",
            Self::Classic => "classic",
        }
    }
}

impl AmqpConfig {
    /// Checks serde cannot express; each message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_url(self.url.expose_secret()).map_err(|e| ConfigError::invalid("amqp.url", e))?;
        if self.audit_max_age < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "amqp.audit_max_age",
                "must be at least 1s (an unbounded audit log fills the broker's disk)",
            ));
        }
        if self.audit_queue_type != AuditQueueType::Stream
            && self.audit_max_age.as_millis() > MAX_MESSAGE_TTL_MS
        {
            return Err(ConfigError::invalid(
                "amqp.audit_max_age",
                "at most 49d for a quorum or classic queue (x-message-ttl is 32-bit milliseconds); use a stream for longer retention",
            ));
        }
        if self.audit_max_length_bytes == 0 {
            return Err(ConfigError::invalid(
                "amqp.audit_max_length_bytes",
                "must be greater than 0",
            ));
        }
        nonzero_duration("amqp.connect_timeout", self.connect_timeout)?;
        nonzero_duration("amqp.confirm_timeout", self.confirm_timeout)
    }
}

/// Parse `raw` exactly as `Connection::connect` will, so a URL the client
/// would refuse fails `config check` instead of a reconnect loop. The reason
/// never repeats the URL, which may hold a password.
fn check_url(raw: &str) -> Result<(), String> {
    match raw.parse::<lapin::uri::AMQPUri>() {
        Ok(_) => Ok(()),
        Err(reason) if reason.contains(raw) => Err("not a valid amqp:// or amqps:// URL".into()),
        Err(reason) => Err(format!("not a valid amqp:// or amqps:// URL: {reason}")),
    }
}
