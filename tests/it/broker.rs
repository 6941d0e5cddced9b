//! A test's own view of the broker: a connection, queues bound to the
//! bridge's exchanges, and what the messages on them carry.

use std::time::Duration;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde_json::Value;

/// A test's own broker connection, for consuming what the bridge publishes.
pub struct Broker {
    _conn: Connection,
    channel: Channel,
}

impl Broker {
    pub async fn connect(url: &str) -> Self {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach the broker at AMQP_URL ({e}); is RabbitMQ running?")
            });
        let channel = conn.create_channel().await.unwrap();
        Self {
            _conn: conn,
            channel,
        }
    }

    /// A broker-named exclusive queue bound to `exchange` with `key`.
    pub async fn bind(&self, exchange: &str, key: &str) -> TestQueue {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        self.channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let options = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let queue = self
            .channel
            .queue_declare("".into(), options, FieldTable::default())
            .await
            .unwrap();
        self.channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = self
            .channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        TestQueue { consumer }
    }
}

pub struct TestQueue {
    consumer: Consumer,
}

impl TestQueue {
    pub async fn next(&mut self) -> Delivery {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a message within 10 s")
    }

    pub async fn next_within(&mut self, wait: Duration) -> Option<Delivery> {
        match tokio::time::timeout(wait, self.consumer.next()).await {
            Ok(Some(Ok(delivery))) => Some(delivery),
            Ok(other) => panic!("consumer ended: {other:?}"),
            Err(_) => None,
        }
    }

    /// Everything that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Delivery> {
        let mut all = Vec::new();
        while let Some(d) = self.next_within(wait).await {
            all.push(d);
        }
        all
    }
}

pub fn body(delivery: &Delivery) -> Value {
    serde_json::from_slice(&delivery.data).expect("JSON body")
}

pub fn header(delivery: &Delivery, name: &str) -> Option<String> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        lapin::types::AMQPValue::LongString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}
