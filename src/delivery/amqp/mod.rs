//! RabbitMQ sink: publisher-confirmed, mandatory, on a connection the bridge
//! owns and rebuilds itself.
//!
//! lapin's auto-recovery is not used: it is reported never to recover after a
//! broker restart (lapin issue #450). Instead a supervisor reconnects with
//! backoff, declares the topology, enables confirms on each new channel, and
//! when a connection is lost cancels its token so every in-flight confirm
//! fails at once and its action is retried.
//!
//! Resource alarms: when the broker runs low on memory or disk it blocks
//! publishing connections and says so with `connection.blocked` (a
//! capability lapin announces and surfaces as an event). While blocked,
//! publishes wait instead of timing out, the dispatcher stops claiming broker
//! actions, and `/readyz` reports the alarm.

mod config;
pub use config::{AmqpConfig, AuditQueueType};
mod alarm;
mod props;
mod session;
pub mod topology;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{Channel, Confirmation, Connection, PublisherConfirm};
use secrecy::ExposeSecret;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::settings::mask_url_password;
use crate::transfer::{Action, AmqpTarget};
use alarm::Alarm;
use session::{Session, connect};
pub use topology::{AuditMismatch, declare_exchange, declare_topology};

/// While the audit queue mismatches, how often the bridge tries to declare
/// it as configured again (an operator may have deleted it to migrate).
const AUDIT_RECHECK: Duration = Duration::from_secs(30);

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

/// How the audit queue came out of the last declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditStatus {
    /// Declared (or found) with the configured type and bounds.
    Declared,
    /// Found with other arguments and used as it is.
    Mismatch(AuditMismatch),
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
    alarm: Alarm,
    audit: RwLock<Option<AuditStatus>>,
}

impl AmqpPublisher {
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                live: RwLock::new(None),
                broken: Notify::new(),
                connected: watch::channel(false).0,
                alarm: Alarm::default(),
                audit: RwLock::new(None),
            }),
        }
    }

    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Whether a publish can go now: connected, and no resource alarm
    /// blocks publishing. While not, the outbox leaves broker actions to
    /// instances that can publish them (or to this one once it can).
    pub fn is_open(&self) -> bool {
        self.is_connected() && self.blocked().is_none()
    }

    /// Resolves once a publish can go (see [`Self::is_open`]).
    pub async fn opened(&self) {
        let mut connected = self.inner.connected.subscribe();
        // A connection lost while blocked clears the alarm (`Alarm::sync`),
        // so each turn waits for the one that is missing.
        while !self.is_open() {
            let _ = connected.wait_for(|c| *c).await;
            self.unblocked().await;
        }
    }

    /// The broker's reason while it blocks publishing (a resource alarm).
    pub fn blocked(&self) -> Option<String> {
        self.inner.alarm.reason()
    }

    /// Resolves once the broker is not blocking this connection.
    pub async fn unblocked(&self) {
        self.inner.alarm.cleared().await
    }

    /// The audit queue's state; `None` before the first connection.
    pub fn audit_status(&self) -> Option<AuditStatus> {
        self.inner
            .audit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
        let backoff = Backoff::new(cfg.reconnect_initial, cfg.reconnect_max);
        let mut delay = backoff.initial;
        while !cancel.is_cancelled() {
            let attempt = tokio::select! {
                _ = cancel.cancelled() => break,
                attempt = tokio::time::timeout(cfg.connect_timeout, connect(cfg)) => attempt,
            };
            let error = match attempt {
                Ok(Ok(session)) => {
                    delay = backoff.initial;
                    self.hold(session, &cancel).await;
                    None
                }
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!(
                    "no answer within amqp.connect_timeout ({})",
                    humantime::format_duration(cfg.connect_timeout)
                )),
            };
            if let Some(error) = error {
                tracing::warn!(
                    broker = %mask_url_password(cfg.url.expose_secret()),
                    error = %error, retry_in_ms = delay.as_millis() as u64,
                    "cannot connect to the broker"
                );
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = backoff.next(delay);
        }
    }

    /// Serve publishes on this connection until it is lost or we stop.
    async fn hold(&self, mut session: Session, cancel: &CancellationToken) {
        let lost = CancellationToken::new();
        *self.write() = Some(Live {
            channel: session.channel.clone(),
            lost: lost.clone(),
        });
        self.set_audit(session.audit.clone());
        self.inner.connected.send_replace(true);
        metrics::gauge!("bridge_amqp_connected").set(1.0);
        tracing::info!("connected to the broker; topology declared, confirms on");
        let mut check = tokio::time::interval(Duration::from_millis(500));
        let mut recheck = tokio::time::interval(AUDIT_RECHECK);
        recheck.reset();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.inner.broken.notified() => break,
                Some(event) = session.events.next() => self.inner.alarm.on_event(&event),
                _ = check.tick() => {
                    let status = session.conn.status();
                    if !status.connected() || !session.channel.status().connected() {
                        break;
                    }
                    // The event stream is the fast path; the status flag
                    // catches a notice that raced the subscription.
                    self.inner.alarm.sync(status.blocked());
                }
                _ = recheck.tick(), if self.audit_mismatched() => {
                    let recheck = self.recheck_audit(&session.conn);
                    if tokio::time::timeout(self.inner.config.connect_timeout, recheck).await.is_err() {
                        tracing::warn!("the broker did not answer the audit queue's re-declare");
                    }
                }
            }
        }
        self.release(lost, session.conn, cancel).await;
    }

    async fn release(&self, lost: CancellationToken, conn: Connection, cancel: &CancellationToken) {
        // Fail in-flight confirms first so their actions go back to the outbox.
        lost.cancel();
        *self.write() = None;
        self.inner.connected.send_replace(false);
        // A new connection starts unblocked; the broker re-sends its notice.
        self.inner.alarm.sync(false);
        metrics::gauge!("bridge_amqp_connected").set(0.0);
        if !cancel.is_cancelled() {
            tracing::warn!("broker connection lost; reconnecting");
        }
        let close = conn.close(200, ShortString::from("bye"));
        let _ = tokio::time::timeout(Duration::from_secs(2), close).await;
    }

    fn audit_mismatched(&self) -> bool {
        matches!(self.audit_status(), Some(AuditStatus::Mismatch(_)))
    }

    /// A mismatched queue cannot change without being deleted, so only its
    /// existence is checked (a redeclaration would be refused, and logged,
    /// every time); once it is gone it is declared as configured.
    async fn recheck_audit(&self, conn: &Connection) {
        let cfg = &self.inner.config;
        let result = match topology::audit_queue_exists(conn, cfg).await {
            Ok(true) => return,
            Ok(false) => topology::declare_audit_log(conn, cfg).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(mismatch) => self.set_audit(AuditStatus::from(mismatch)),
            Err(e) => tracing::warn!(error = %e, "cannot re-declare the audit queue"),
        }
    }

    /// Record the audit queue's state; a change is logged once, not on
    /// every reconnect.
    fn set_audit(&self, status: AuditStatus) {
        let mut slot = self.inner.audit.write().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref() == Some(&status) {
            return;
        }
        match &status {
            AuditStatus::Mismatch(m) => tracing::warn!(
                queue = %m.queue, wanted = %m.wanted, broker = %m.broker,
                migrate = ?m.migrate, "{m}"
            ),
            AuditStatus::Declared if slot.is_some() => tracing::info!(
                queue = %self.inner.config.audit_queue,
                "audit queue now declared as configured"
            ),
            AuditStatus::Declared => {}
        }
        *slot = Some(status);
    }

    /// Publish `action` (its body, with its ids as properties) to `target`
    /// and wait for the broker's confirm. Ok only on a clean ack.
    pub async fn publish(&self, target: &AmqpTarget, action: &Action) -> Result<(), PublishError> {
        let live = self.read().ok_or(PublishError::NotConnected)?;
        let properties = props::properties(target, &action.id, &action.transfer_id)?;
        let body = action.body.as_bytes();
        let options = BasicPublishOptions {
            mandatory: target.mandatory,
            ..Default::default()
        };
        let exchange = props::short("exchange", &target.exchange)?;
        let key = props::short("routing key", &target.routing_key)?;
        // A blocked broker stops reading our socket: hold the message here
        // rather than in a send buffer that a confirm timeout would abandon.
        self.until_unblocked(&live.lost).await?;
        let publish = live
            .channel
            .basic_publish(exchange, key, options, body, properties);
        let confirm = tokio::select! {
            _ = live.lost.cancelled() => return Err(PublishError::ConnectionLost),
            r = publish => r.inspect_err(|_| self.inner.broken.notify_one())?,
        };
        match self.confirmation(&live, confirm).await? {
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

    /// The confirm, with `confirm_timeout` counted only while the broker is
    /// not blocking us: during an alarm the broker reads nothing, so the
    /// confirm comes after the alarm clears, not never.
    async fn confirmation(
        &self,
        live: &Live,
        confirm: PublisherConfirm,
    ) -> Result<Confirmation, PublishError> {
        let timeout = self.inner.config.confirm_timeout;
        let mut confirm = std::pin::pin!(confirm);
        loop {
            tokio::select! {
                _ = live.lost.cancelled() => return Err(PublishError::ConnectionLost),
                r = &mut confirm => return Ok(r?),
                _ = tokio::time::sleep(timeout) => {
                    if self.blocked().is_none() {
                        return Err(PublishError::ConfirmTimeout(timeout));
                    }
                    self.until_unblocked(&live.lost).await?;
                }
            }
        }
    }

    async fn until_unblocked(&self, lost: &CancellationToken) -> Result<(), PublishError> {
        tokio::select! {
            _ = lost.cancelled() => Err(PublishError::ConnectionLost),
            _ = self.unblocked() => Ok(()),
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

impl From<Option<AuditMismatch>> for AuditStatus {
    fn from(mismatch: Option<AuditMismatch>) -> Self {
        mismatch.map_or(Self::Declared, Self::Mismatch)
    }
}
