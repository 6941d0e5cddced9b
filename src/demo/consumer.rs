//! The demo's stand-in for the routing layer and a PBX adapter: a private
//! queue bound to the agent and PBX exchanges, printing what arrives.

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::config::AmqpConfig;

/// Keeps the consumer's connection open while alive.
pub struct DemoConsumer {
    _conn: Connection,
}

pub async fn bind(url: &str, cfg: &AmqpConfig) -> anyhow::Result<DemoConsumer> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for (exchange, key) in [(&cfg.agent_exchange, "agent.#"), (&cfg.pbx_exchange, "#")] {
        // The bridge's own declaration, so either may run first.
        crate::delivery::amqp::declare_exchange(&channel, exchange).await?;
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.as_str().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "demo".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            println!(
                "  broker -> consumer: {} on {} ({}, {} bytes)",
                id,
                delivery.exchange,
                delivery.routing_key,
                delivery.data.len()
            );
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
    });
    Ok(DemoConsumer { _conn: conn })
}
