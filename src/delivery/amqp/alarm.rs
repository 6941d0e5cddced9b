//! The broker's resource alarm as the bridge's connection sees it.
//!
//! RabbitMQ blocks a publishing connection when a memory or disk alarm goes
//! off and tells clients that announce the `connection.blocked` capability
//! (lapin does) with `connection.blocked{reason}`, then
//! `connection.unblocked` when every alarm has cleared
//! (<https://www.rabbitmq.com/docs/connection-blocked>).

use lapin::Event;
use tokio::sync::watch;

/// Said when lapin's status flag shows a block whose notice we missed.
const NO_REASON: &str = "connection.blocked (no reason given)";

pub(super) struct Alarm {
    /// The broker's reason (`low on memory`, `low on disk`) while blocked.
    reason: watch::Sender<Option<String>>,
}

impl Default for Alarm {
    fn default() -> Self {
        metrics::gauge!("bridge_amqp_blocked").set(0.0);
        Self {
            reason: watch::Sender::new(None),
        }
    }
}

impl Alarm {
    pub(super) fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// Resolves at once when not blocked, else when the alarm clears.
    pub(super) async fn cleared(&self) {
        let mut rx = self.reason.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(Option::is_none).await;
    }

    pub(super) fn on_event(&self, event: &Event) {
        match event {
            Event::ConnectionBlocked(reason) => self.set(Some(reason.clone())),
            Event::ConnectionUnblocked => self.set(None),
            _ => {}
        }
    }

    /// Align with lapin's own flag (or clear, when the connection is gone).
    pub(super) fn sync(&self, blocked: bool) {
        match (blocked, self.reason().is_some()) {
            (true, false) => self.set(Some(NO_REASON.into())),
            (false, true) => self.set(None),
            _ => {}
        }
    }

    fn set(&self, reason: Option<String>) {
        let changed = self.reason.send_if_modified(|slot| {
            let changed = *slot != reason;
            *slot = reason.clone();
            changed
        });
        if !changed {
            return;
        }
        match &reason {
            Some(reason) => tracing::warn!(
                reason = %reason,
                "broker resource alarm: it blocks every publish; deliveries wait until it clears"
            ),
            None => tracing::info!("broker alarm cleared; publishing resumes"),
        }
        metrics::gauge!("bridge_amqp_blocked").set(if reason.is_some() { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blocked_until_the_broker_says_unblocked() {
        let alarm = Alarm::default();
        assert_eq!(alarm.reason(), None);
        alarm.cleared().await;
        alarm.on_event(&Event::ConnectionBlocked("low on memory".into()));
        assert_eq!(alarm.reason().as_deref(), Some("low on memory"));
        // lapin's flag agrees: the broker's reason is kept.
        alarm.sync(true);
        assert_eq!(alarm.reason().as_deref(), Some("low on memory"));
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), alarm.cleared());
        assert!(waiting.await.is_err(), "cleared while blocked");
        alarm.on_event(&Event::ConnectionUnblocked);
        alarm.cleared().await;
    }

    #[test]
    fn a_missed_notice_is_caught_from_the_status_flag() {
        let alarm = Alarm::default();
        alarm.sync(true);
        assert_eq!(alarm.reason().as_deref(), Some(NO_REASON));
        // A lost connection clears it: a new one starts unblocked.
        alarm.sync(false);
        assert_eq!(alarm.reason(), None);
    }
}
