//! RabbitMQ sink: publisher-confirmed, mandatory, on a connection the bridge
//! owns and rebuilds itself.
//!
//! lapin's auto-recovery is not used: it is reported never to recover after a
//! broker restart (lapin issue #450). Instead a supervisor reconnects with
//! backoff, declares the topology, enables confirms on each new channel, and
//! when a connection is lost cancels its token so every in-flight confirm
//! fails at once and its action is retried.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use secrecy::ExposeSecret;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{AmqpConfig, mask_url_password};
use crate::transfer::AmqpTarget;

const APP_ID: &str = "transfer-bridge";
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("connection lost before the broker confirmed")]
    ConnectionLost,
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
    #[error("broker returned the message as unroutable: {0}")]
    Returned(String),
    #[error("broker refused the message (nack)")]
    Nacked,
    #[error("{field} is too long for AMQP ({len} bytes, at most 255)")]
    TooLong { field: &'static str, len: usize },
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
}

/// The live channel and the token that dies with its connection.
#[derive(Clone)]
struct Live {
    channel: Channel,
    lost: CancellationToken,
}

/// Cheap to clone; every clone shares one connection.
#[derive(Clone)]
pub struct AmqpPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    config: AmqpConfig,
    live: RwLock<Option<Live>>,
    /// A publish that saw a channel error asks the supervisor to reconnect.
    broken: Notify,
    connected: watch::Sender<bool>,
}

impl AmqpPublisher {
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                live: RwLock::new(None),
                broken: Notify::new(),
                connected: watch::channel(false).0,
            }),
        }
    }

    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Wait up to `timeout` for the first connection.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.inner.connected.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|c| *c))
            .await
            .is_ok()
    }

    /// Keep a connection up until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let cfg = &self.inner.config;
        let mut delay = cfg.reconnect_initial;
        while !cancel.is_cancelled() {
            match connect(cfg).await {
                Ok((conn, channel)) => {
                    delay = cfg.reconnect_initial;
                    self.hold(conn, channel, &cancel).await;
                }
                Err(e) => tracing::warn!(
                    broker = %mask_url_password(cfg.url.expose_secret()),
                    error = %e, retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to the broker"
                ),
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(cfg.reconnect_max);
        }
    }

    /// Serve publishes on this connection until it is lost or we stop.
    async fn hold(&self, conn: Connection, channel: Channel, cancel: &CancellationToken) {
        let lost = CancellationToken::new();
        *self.write() = Some(Live {
            channel: channel.clone(),
            lost: lost.clone(),
        });
        self.inner.connected.send_replace(true);
        metrics::gauge!("bridge_amqp_connected").set(1.0);
        tracing::info!("connected to the broker; topology declared, confirms on");
        let mut check = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.inner.broken.notified() => break,
                _ = check.tick() => {
                    if !conn.status().connected() || !channel.status().connected() {
                        break;
                    }
                }
            }
        }
        // Fail in-flight confirms first so their actions go back to the outbox.
        lost.cancel();
        *self.write() = None;
        self.inner.connected.send_replace(false);
        metrics::gauge!("bridge_amqp_connected").set(0.0);
        if !cancel.is_cancelled() {
            tracing::warn!("broker connection lost; reconnecting");
        }
        let close = conn.close(200, ShortString::from("bye"));
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    }

    /// Publish and wait for the broker's confirm. Ok only on a clean ack.
    pub async fn publish(
        &self,
        target: &AmqpTarget,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let live = self.read().ok_or(PublishError::NotConnected)?;
        let properties = properties(target, message_id)?;
        let options = BasicPublishOptions {
            mandatory: target.mandatory,
            ..Default::default()
        };
        let exchange = short("exchange", &target.exchange)?;
        let key = short("routing key", &target.routing_key)?;
        let confirm = match live
            .channel
            .basic_publish(exchange, key, options, body, properties)
            .await
        {
            Ok(confirm) => confirm,
            Err(e) => {
                self.inner.broken.notify_one();
                return Err(e.into());
            }
        };
        let timeout = self.inner.config.confirm_timeout;
        let confirmation = tokio::select! {
            _ = live.lost.cancelled() => return Err(PublishError::ConnectionLost),
            r = tokio::time::timeout(timeout, confirm) => match r {
                Err(_) => return Err(PublishError::ConfirmTimeout(timeout)),
                Ok(r) => r?,
            },
        };
        match confirmation {
            // lapin 4 reports an unroutable mandatory message as an ack that
            // carries the returned message (312 NO_ROUTE): not delivered.
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(ret)) => Err(PublishError::Returned(format!(
                "{} {} (exchange {}, routing key {})",
                ret.reply_code, ret.reply_text, target.exchange, target.routing_key
            ))),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }

    fn read(&self) -> Option<Live> {
        self.inner
            .live
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Live>> {
        self.inner.live.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Connect, open a confirm channel and declare the bridge's topology.
async fn connect(cfg: &AmqpConfig) -> Result<(Connection, Channel), lapin::Error> {
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(cfg.connection_name.as_str()));
    let conn = Connection::connect(cfg.url.expose_secret(), props).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare_topology(&channel, cfg).await?;
    Ok((conn, channel))
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

/// Durable topic exchanges and the durable audit queue bound to `#`, so
/// audit records survive with no consumer attached.
pub async fn declare_topology(channel: &Channel, cfg: &AmqpConfig) -> Result<(), lapin::Error> {
    for exchange in [&cfg.agent_exchange, &cfg.pbx_exchange, &cfg.audit_exchange] {
        declare_exchange(channel, exchange).await?;
    }
    let queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(
            cfg.audit_queue.as_str().into(),
            queue,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            cfg.audit_queue.as_str().into(),
            cfg.audit_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

fn properties(target: &AmqpTarget, message_id: &str) -> Result<BasicProperties, PublishError> {
    let mut headers = FieldTable::default();
    let call_transfer_id = message_id.split('.').next().unwrap_or(message_id);
    headers.insert("x-call-transfer-id".into(), long(call_transfer_id));
    headers.insert(
        "x-transfer-type".into(),
        long(target.transfer_type.as_deref().unwrap_or("")),
    );
    headers.insert(
        "x-current-task".into(),
        long(target.current_task.as_deref().unwrap_or("")),
    );
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(PERSISTENT)
        .with_message_id(short("message id", message_id)?)
        .with_type(short("event type", &target.event_type)?)
        .with_app_id(APP_ID.into())
        .with_timestamp(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64)
        .with_headers(headers);
    if let Some(correlation) = &target.correlation_id {
        // An over-long conversation id is still in the body; the property is
        // a convenience, so it is left out rather than failing the publish.
        if let Ok(value) = ShortString::try_new(correlation.as_str()) {
            props = props.with_correlation_id(value);
        }
    }
    Ok(props)
}

fn long(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// `ShortString::from` panics past 255 bytes; this reports instead.
fn short(field: &'static str, value: &str) -> Result<ShortString, PublishError> {
    ShortString::try_new(value).map_err(|_| PublishError::TooLong {
        field,
        len: value.len(),
    })
}
