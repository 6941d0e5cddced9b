//! The bridge's broker topology: three durable topic exchanges, and the audit
//! log bound to the audit exchange with `#`.
//!
//! The audit log is a stream with retention by default (config `[amqp]`).
//! A queue's type and arguments cannot change once it exists: redeclaring
//! it otherwise makes the broker answer 406 PRECONDITION_FAILED and close the
//! channel. So the audit queue is declared on a channel of its own; on a
//! refusal the bridge binds the queue as it is, keeps delivering, and
//! reports an [`AuditMismatch`] with the steps to migrate.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::{AmqpConfig, AuditQueueType};

/// AMQP reply codes (AMQP 0-9-1 §1.9).
const NOT_FOUND: u16 = 404;
const PRECONDITION_FAILED: u16 = 406;

/// The audit queue exists with other arguments than the configured ones;
/// the bridge uses it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditMismatch {
    pub queue: String,
    /// What the bridge would declare, e.g. `x-queue-type=stream, ...`.
    pub wanted: String,
    /// The broker's refusal: `PRECONDITION_FAILED - inequivalent arg ...`.
    pub broker: String,
    /// What an operator does about it, in order.
    pub migrate: Vec<String>,
}

impl AuditMismatch {
    fn new(cfg: &AmqpConfig, broker: String) -> Self {
        Self {
            queue: cfg.audit_queue.clone(),
            wanted: describe_args(cfg),
            broker,
            migrate: migration_steps(cfg),
        }
    }
}

impl std::fmt::Display for AuditMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "audit queue '{}' already exists with other arguments than configured ({}); \
             the broker said: {}. The bridge binds and uses it as it is, so audit records \
             still reach it, but it is not bounded by the bridge's settings. To migrate:",
            self.queue, self.wanted, self.broker
        )?;
        for (n, step) in self.migrate.iter().enumerate() {
            writeln!(f, "  {}. {step}", n + 1)?;
        }
        Ok(())
    }
}

/// The audit queue's declaration arguments for the configured type.
/// Quorum and classic queues drop their oldest records when full
/// (`drop-head`): refusing publishes instead (`reject-publish`) would stall
/// the outbox behind an audit log nobody reads.
pub fn audit_queue_args(cfg: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    let bytes = AMQPValue::LongLongInt(cfg.audit_max_length_bytes.min(i64::MAX as u64) as i64);
    args.insert("x-max-length-bytes".into(), bytes);
    match cfg.audit_queue_type {
        AuditQueueType::Stream => {
            args.insert("x-queue-type".into(), long("stream"));
            args.insert("x-max-age".into(), long(&max_age(cfg.audit_max_age)));
        }
        AuditQueueType::Quorum | AuditQueueType::Classic => {
            if cfg.audit_queue_type == AuditQueueType::Quorum {
                args.insert("x-queue-type".into(), long("quorum"));
            }
            let ttl = AMQPValue::LongLongInt(message_ttl_ms(cfg.audit_max_age));
            args.insert("x-message-ttl".into(), ttl);
            args.insert("x-overflow".into(), long("drop-head"));
        }
    }
    args
}

/// The arguments as an operator reads them (sorted, `key=value`).
pub fn describe_args(cfg: &AmqpConfig) -> String {
    let mut parts: Vec<String> = audit_queue_args(cfg)
        .inner()
        .iter()
        .map(|(k, v)| match v {
            AMQPValue::LongString(s) => format!("{k}={s}"),
            AMQPValue::LongLongInt(n) => format!("{k}={n}"),
            other => format!("{k}={other:?}"),
        })
        .collect();
    parts.sort();
    parts.join(", ")
}

/// Stream retention as RabbitMQ spells it: whole seconds with the `s` unit.
fn max_age(age: Duration) -> String {
    format!("{}s", age.as_secs().max(1))
}

fn message_ttl_ms(age: Duration) -> i64 {
    age.as_millis().min(u128::from(u32::MAX)) as i64
}

fn migration_steps(cfg: &AmqpConfig) -> Vec<String> {
    let name = &cfg.audit_queue;
    let policy = format!(
        r#"{{"max-length-bytes":{},"message-ttl":{},"overflow":"drop-head"}}"#,
        cfg.audit_max_length_bytes,
        message_ttl_ms(cfg.audit_max_age)
    );
    vec![
        format!(
            "bound the existing queue now, in place: rabbitmqctl set_policy transfer-audit-bound '^{}$' '{policy}' --apply-to queues \
             (a stream takes '{{\"max-age\":\"{}\",\"max-length-bytes\":{}}}' instead)",
            regex_escape(name),
            max_age(cfg.audit_max_age),
            cfg.audit_max_length_bytes
        ),
        format!(
            "to get the configured type ({}), a new name needs no downtime: set amqp.audit_queue \
             (BRIDGE_AMQP__AUDIT_QUEUE) to e.g. '{name}.v2', restart, move readers to it, then delete '{name}'",
            cfg.audit_queue_type.as_str()
        ),
        format!(
            "or keep the name: let readers drain '{name}' (deleting drops what is left in it), then \
             rabbitmqctl delete_queue '{name}'; the bridge re-declares it within 30 s (or at its next start). \
             Audit records published meanwhile are returned as unroutable and retried, not lost"
        ),
    ]
}

fn regex_escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if "\\.^$|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One of the bridge's durable topic exchanges. Consumers that may start
/// before the bridge declare with this too: a redeclaration with other
/// arguments would be refused by the broker.
pub async fn declare_exchange(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
}

/// Durable topic exchanges, then the audit log. `Some` when the audit queue
/// was already there with other arguments and is used as it is.
pub async fn declare_topology(
    conn: &Connection,
    channel: &Channel,
    cfg: &AmqpConfig,
) -> Result<Option<AuditMismatch>, lapin::Error> {
    for exchange in [&cfg.agent_exchange, &cfg.pbx_exchange, &cfg.audit_exchange] {
        declare_exchange(channel, exchange).await?;
    }
    declare_audit_log(conn, cfg).await
}

/// Declare the audit queue as configured and bind it with `#`. Each step runs
/// on a channel of its own, since the broker closes a channel on a refusal.
pub async fn declare_audit_log(
    conn: &Connection,
    cfg: &AmqpConfig,
) -> Result<Option<AuditMismatch>, lapin::Error> {
    let probe = conn.create_channel().await?;
    let mismatch = match declare_audit_queue(&probe, cfg).await {
        Ok(()) => None,
        Err(e) => Some(AuditMismatch::new(
            cfg,
            refusal(&e, PRECONDITION_FAILED).ok_or(e)?,
        )),
    };
    let channel = match mismatch {
        None => probe,
        Some(_) => conn.create_channel().await?,
    };
    channel
        .queue_bind(
            cfg.audit_queue.as_str().into(),
            cfg.audit_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, ShortString::from("declared")).await;
    Ok(mismatch)
}

/// Whether the audit queue exists, by a passive declare that cannot be
/// refused for its arguments (lapin logs an error line only when the broker
/// answers 404, i.e. once the queue is gone).
pub async fn audit_queue_exists(conn: &Connection, cfg: &AmqpConfig) -> Result<bool, lapin::Error> {
    let channel = conn.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = cfg.audit_queue.as_str().into();
    match channel
        .queue_declare(queue, passive, FieldTable::default())
        .await
    {
        Ok(_) => {
            let _ = channel.close(200, ShortString::from("checked")).await;
            Ok(true)
        }
        Err(e) if refusal(&e, NOT_FOUND).is_some() => Ok(false),
        Err(e) => Err(e),
    }
}

async fn declare_audit_queue(channel: &Channel, cfg: &AmqpConfig) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(
            cfg.audit_queue.as_str().into(),
            durable,
            audit_queue_args(cfg),
        )
        .await
        .map(drop)
}

/// The broker's reply text when `error` is the refusal `code`.
fn refusal(error: &lapin::Error, code: u16) -> Option<String> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(e) if e.get_id() == code => {
            Some(e.get_message().to_string())
        }
        _ => None,
    }
}

/// What `config check` learned about the audit queue from the broker.
#[derive(Debug)]
pub enum AuditCheck {
    /// Not declared yet: the bridge creates it as configured at start.
    Absent,
    /// Exists with the configured arguments.
    Matches,
    Mismatch(AuditMismatch),
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Broker(#[from] lapin::Error),
}

/// Compare the audit queue on the broker with the config, changing nothing:
/// a passive declare first, then, only when it exists, an active declare
/// with the configured arguments (a no-op when they are equivalent).
pub async fn check_audit_queue(
    cfg: &AmqpConfig,
    timeout: Duration,
) -> Result<AuditCheck, CheckError> {
    tokio::time::timeout(timeout, check(cfg))
        .await
        .map_err(|_| CheckError::Timeout(timeout))?
}

async fn check(cfg: &AmqpConfig) -> Result<AuditCheck, CheckError> {
    let props = ConnectionProperties::default().with_connection_name(LongString::from(format!(
        "{} (config check)",
        cfg.connection_name
    )));
    let conn = Connection::connect(cfg.url.expose_secret(), props).await?;
    let result = compare(&conn, cfg).await;
    let _ = conn.close(200, ShortString::from("config check")).await;
    result
}

async fn compare(conn: &Connection, cfg: &AmqpConfig) -> Result<AuditCheck, CheckError> {
    if !audit_queue_exists(conn, cfg).await? {
        return Ok(AuditCheck::Absent);
    }
    let channel = conn.create_channel().await?;
    match declare_audit_queue(&channel, cfg).await {
        Ok(()) => {
            let _ = channel.close(200, ShortString::from("checked")).await;
            Ok(AuditCheck::Matches)
        }
        Err(e) => match refusal(&e, PRECONDITION_FAILED) {
            Some(text) => Ok(AuditCheck::Mismatch(AuditMismatch::new(cfg, text))),
            None => Err(e.into()),
        },
    }
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
