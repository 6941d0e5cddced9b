//! The demo's stand-in for the routing layer and a PBX adapter, built the way
//! README "Consuming agent routing" recommends: a durable quorum queue bound
//! to the agent (and PBX) exchange, a dead-letter exchange for messages it
//! cannot handle, a prefetch with manual acks, and dedupe on `message_id`.
//!
//! The demo's queues carry a per-run prefix and are deleted when it ends.

use std::collections::HashSet;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::config::AmqpConfig;

/// Unacked messages in flight to this consumer (basic.qos).
const PREFETCH: u16 = 32;
/// A message redelivered this often is dead-lettered (quorum queues count).
const DELIVERY_LIMIT: i64 = 5;

/// Keeps the consumer's connection open while alive; `delete` removes its
/// queues and dead-letter exchange.
pub struct DemoConsumer {
    conn: Connection,
    channel: Channel,
    queues: [String; 2],
    dlx: String,
}

pub async fn bind(url: &str, cfg: &AmqpConfig) -> anyhow::Result<DemoConsumer> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let queue = format!("demo-{run}.agent-routing");
    let dlx = format!("{queue}.dlx");
    let dead = format!("{queue}.dead");
    declare_dead_letters(&channel, &dlx, &dead).await?;
    declare_quorum(&channel, &queue, Some(&dlx)).await?;
    for (exchange, key) in [(&cfg.agent_exchange, "agent.#"), (&cfg.pbx_exchange, "#")] {
        // The bridge's own declaration, so either may run first.
        crate::delivery::amqp::declare_exchange(&channel, exchange).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "demo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(handle_all(consumer));
    Ok(DemoConsumer {
        conn,
        channel,
        queues: [queue, dead],
        dlx,
    })
}

/// Handle each message once: a repeat of a `message_id` (the bridge
/// redelivers with the same id) is acked and skipped; a body that is not an
/// event is rejected without requeue, so it goes to the dead-letter queue.
async fn handle_all(mut consumer: lapin::Consumer) {
    // A real consumer keeps seen ids in its own store, in the transaction
    // of its side effect; a set is enough for a demo that runs a minute.
    let mut seen = HashSet::new();
    while let Some(Ok(delivery)) = consumer.next().await {
        let id = message_id(&delivery);
        let verdict = if !seen.insert(id.clone()) {
            "duplicate, skipped"
        } else if serde_json::from_slice::<serde_json::Value>(&delivery.data).is_err() {
            "not an event: dead-lettered"
        } else {
            "handled"
        };
        println!(
            "  broker -> consumer: {id} on {} ({}, {} bytes): {verdict}",
            delivery.exchange,
            delivery.routing_key,
            delivery.data.len()
        );
        let settled = if verdict.ends_with("dead-lettered") {
            let reject = BasicNackOptions {
                requeue: false,
                ..Default::default()
            };
            delivery.nack(reject).await
        } else {
            delivery.ack(BasicAckOptions::default()).await
        };
        if let Err(e) = settled {
            eprintln!("  consumer: cannot settle {id}: {e}");
        }
    }
}

fn message_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// A durable quorum queue, dead-lettering to `dlx` when given.
async fn declare_quorum(channel: &Channel, name: &str, dlx: Option<&str>) -> lapin::Result<()> {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    if let Some(dlx) = dlx {
        args.insert("x-dead-letter-exchange".into(), long(dlx));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel.queue_declare(name.into(), durable, args).await?;
    Ok(())
}

/// A fanout dead-letter exchange and the queue that keeps what it receives.
async fn declare_dead_letters(channel: &Channel, dlx: &str, dead: &str) -> lapin::Result<()> {
    let durable = lapin::options::ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            dlx.into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    declare_quorum(channel, dead, None).await?;
    channel
        .queue_bind(
            dead.into(),
            dlx.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

impl DemoConsumer {
    /// Remove the demo's queues and exchange; a demo leaves no trace.
    pub async fn delete(self) {
        // Stop consuming first: deleting a queue under a live consumer
        // makes the broker cancel it mid-flight.
        let _ = self.channel.close(200, "demo done".into()).await;
        if let Ok(channel) = self.conn.create_channel().await {
            for queue in &self.queues {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            let _ = channel
                .exchange_delete(self.dlx.as_str().into(), Default::default())
                .await;
            // Closed before the connection, or lapin logs the race as an error.
            let _ = channel.close(200, "deleted".into()).await;
        }
        let _ = self.conn.close(200, "demo done".into()).await;
    }
}
