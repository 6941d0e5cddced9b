//! Delivers due actions with bounded concurrency and settles each one.
//!
//! At-least-once: an action is marked delivered only after its sink says so.
//! A crash between the sink's ack and the database update redelivers the
//! action with the same id, which consumers use to dedupe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::OutboxConfig;
use super::failure;
use super::handoff::{Fresh, Handoff};
use super::repo::{self, Claimed};
use super::settle::{self, Confirmed};
use crate::delivery::{Outcome, Sinks};
use crate::store::{self, Store, StoreError};
use crate::transfer::{Action, Target};

/// Committed batches (one per commit) waiting for the claim loop.
const HANDOFF_QUEUE: usize = 1024;

/// Sent after every settled attempt (the demo prints these).
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub action_id: String,
    pub transfer_id: String,
    pub kind: String,
    pub outcome: Outcome,
}

/// Whether the table may hold due actions that were not handed over, so a
/// claim could find some: at start, after a wake (actions recorded
/// unclaimed), at each poll tick (retries come due, claims lapse), after a
/// claim that filled its room, and when the broker unblocks. Room freed by
/// confirms alone claims nothing: in a burst every action is handed over,
/// and each such claim was an empty write transaction on the store's one
/// writer (219 in a 3 s drain of 10,000 completions, sqlx's statement log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backlog {
    Maybe,
    None,
}

impl Backlog {
    /// After a claim of at most `room` that got `claimed`: a full one may
    /// have left more behind.
    fn after_claim(claimed: usize, room: u32) -> Self {
        match claimed as u64 >= u64::from(room) {
            true => Self::Maybe,
            false => Self::None,
        }
    }
}

#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    sinks: Sinks,
    config: OutboxConfig,
    audit_exchange: String,
    /// This instance, named on the actions it claims.
    instance: Arc<str>,
    wake: Arc<Notify>,
    handoff: Handoff,
    /// The handoff's receiving end, taken by `run`.
    fresh: Arc<std::sync::Mutex<Option<mpsc::Receiver<Fresh>>>>,
    reports: broadcast::Sender<DeliveryReport>,
}

impl Dispatcher {
    pub fn new(
        store: Store,
        sinks: Sinks,
        config: OutboxConfig,
        audit_exchange: String,
        instance: Arc<str>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let lease = config.claim_timeout;
        let (handoff, fresh) =
            Handoff::channel(wake.clone(), instance.clone(), lease, HANDOFF_QUEUE);
        Self {
            store,
            sinks,
            config,
            audit_exchange,
            instance,
            wake,
            handoff,
            fresh: Arc::new(std::sync::Mutex::new(Some(fresh))),
            reports: broadcast::channel(1024).0,
        }
    }

    /// Call after committing new actions so they go out without waiting for
    /// the next poll tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How the lifecycle hands this dispatcher what it commits.
    pub fn handoff(&self) -> Handoff {
        self.handoff.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DeliveryReport> {
        self.reports.subscribe()
    }

    /// Deliver until `cancel`; then wait for in-flight deliveries (and the
    /// marks of those delivered) up to `drain`.
    /// Claims of a previous run are void (see `repo::release_claims`).
    /// Call before anything can commit actions: the claims this run's
    /// commits write must survive it.
    pub async fn release_stale_claims(&self) {
        if let Err(e) = repo::release_claims(&self.store, &self.instance).await {
            tracing::error!(error = %e, "cannot release stale outbox claims");
        }
    }

    pub async fn run(self, cancel: CancellationToken, drain: Duration) {
        let (confirmed, settled) = mpsc::unbounded_channel();
        let reports = self.reports.clone();
        let settler = tokio::spawn(settle::run(
            self.store.clone(),
            settled,
            self.config.claim_timeout,
            move |batch| {
                for c in batch {
                    let _ = reports.send(c.then);
                }
            },
        ));
        let inflight = TaskTracker::new();
        self.deliver_until(&cancel, &inflight, confirmed).await;
        inflight.close();
        let drained = tokio::time::timeout(drain, async {
            inflight.wait().await;
            // Every sender is gone now: the settler writes what is left and ends.
            let _ = settler.await;
        });
        if drained.await.is_err() {
            tracing::warn!(
                "outbox drain deadline passed; unsettled actions will be redelivered on next start"
            );
        }
    }

    /// The claim loop. Batches handed over at commit (see `handoff`) start
    /// at once, with no claim of their own. Deliveries run as their own
    /// tasks, so the next batch is claimed while earlier ones still wait for
    /// their confirms. Claims wait until at least half the room is free: a
    /// backlog then costs one claim (one commit) per half-window, not one per
    /// confirm.
    async fn deliver_until(
        &self,
        cancel: &CancellationToken,
        inflight: &TaskTracker,
        confirmed: mpsc::UnboundedSender<Confirmed<DeliveryReport>>,
    ) {
        let taken = self.fresh.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut fresh) = taken else {
            tracing::error!("the dispatcher runs once per process");
            return;
        };
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let refill = (self.config.concurrency / 2).max(1);
        let start = |items: Vec<Claimed>| self.start(items, &permits, inflight, &confirmed, cancel);
        let mut backlog = Backlog::Maybe;
        let tick = tokio::time::sleep(self.config.poll_interval);
        tokio::pin!(tick);
        while !cancel.is_cancelled() {
            let room = (permits.available_permits() as u32).min(self.config.batch_size);
            if backlog == Backlog::Maybe && permits.available_permits() >= refill {
                let claimed = self.claim(room).await;
                backlog = Backlog::after_claim(claimed.len(), room);
                start(claimed).await;
                if backlog == Backlog::Maybe && permits.available_permits() >= refill {
                    continue;
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(batch) = fresh.recv() => {
                    if let Some(claimed) = self.handed_over(batch).await {
                        start(claimed).await;
                    }
                }
                _ = self.wake.notified() => backlog = Backlog::Maybe,
                () = &mut tick => {
                    backlog = Backlog::Maybe;
                    tick.as_mut().reset(tokio::time::Instant::now() + self.config.poll_interval);
                }
                // Enough room freed up for another batch.
                _ = permits.acquire_many(refill as u32), if permits.available_permits() < refill => {}
                // Broker actions held back (no connection, or a resource
                // alarm) go at once.
                _ = self.sinks.amqp.opened(), if !self.sinks.amqp.is_open() => backlog = Backlog::Maybe,
            }
        }
    }

    /// What to start of a batch handed over at commit: nothing when its
    /// claim is close to lapsing (the poll takes it then).
    async fn handed_over(&self, batch: Fresh) -> Option<Vec<Claimed>> {
        if batch.at.elapsed() >= self.config.claim_timeout / 2 {
            tracing::warn!(
                actions = batch.claimed.len(),
                "a handed-over batch waited past half its claim; leaving it to the claim's expiry"
            );
            return None;
        }
        Some(self.held_back_while_closed(batch.claimed).await)
    }

    /// A handed-over batch without its broker actions while this instance
    /// cannot publish: under a resource alarm each would wait it out holding
    /// a permit, and enough of them stall every delivery, webhooks included;
    /// with no connection each would fail and back off. Their claims go back
    /// (`repo::release_unused`): another instance that can publish claims
    /// them, or this one's claim loop once the broker is open.
    async fn held_back_while_closed(&self, items: Vec<Claimed>) -> Vec<Claimed> {
        if self.sinks.amqp.is_open() {
            return items;
        }
        let (held, go): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|item| matches!(item.action.target, Target::Amqp(_)));
        let ids: Vec<String> = held.into_iter().map(|item| item.action.id).collect();
        if !ids.is_empty()
            && let Err(e) = repo::release_unused(&self.store, &self.instance, &ids).await
        {
            // Still claimed: taken again once the claim lapses.
            tracing::warn!(error = %e, "cannot give back broker actions held back");
        }
        go
    }

    /// Deliver each of `items` as its own task, one permit each (waiting for
    /// room as needed).
    async fn start(
        &self,
        items: Vec<Claimed>,
        permits: &Arc<Semaphore>,
        inflight: &TaskTracker,
        confirmed: &mpsc::UnboundedSender<Confirmed<DeliveryReport>>,
        cancel: &CancellationToken,
    ) {
        for item in items {
            // A stop is not held up waiting for room: what is not started
            // stays claimed and is taken again when its claim expires.
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit,
                _ = cancel.cancelled() => break,
            };
            let Ok(permit) = permit else {
                break;
            };
            let (this, confirmed) = (self.clone(), confirmed.clone());
            inflight.spawn(async move {
                this.attempt(item, &confirmed).await;
                drop(permit);
            });
        }
    }

    async fn claim(&self, room: u32) -> Vec<Claimed> {
        if room == 0 {
            return Vec::new();
        }
        let lease = self.config.claim_timeout.as_millis() as i64;
        let broker_open = self.sinks.amqp.is_open();
        match repo::claim_due(&self.store, &self.instance, lease, room, broker_open).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim outbox actions");
                Vec::new()
            }
        }
    }

    /// One attempt at one action. A delivered one goes to the settler, which
    /// marks it (in a batch) and then reports it; any other outcome is
    /// recorded here, since retries and failures are rare and need their
    /// own row each.
    async fn attempt(
        &self,
        item: Claimed,
        confirmed: &mpsc::UnboundedSender<Confirmed<DeliveryReport>>,
    ) {
        let Claimed { action, attempts } = item;
        let outcome = self.sinks.deliver(&action).await;
        metrics::counter!("bridge_deliveries_total", "kind" => action.kind.to_string(), "outcome" => outcome.label()).increment(1);
        let report = DeliveryReport {
            action_id: action.id.clone(),
            transfer_id: action.transfer_id.to_string(),
            kind: action.kind.to_string(),
            outcome,
        };
        let result = match &report.outcome {
            Outcome::Delivered => {
                let id = action.id.clone();
                // The receiver outlives every delivery task (see `run`).
                let _ = confirmed.send(Confirmed { id, then: report });
                return;
            }
            Outcome::Retry { error, after } => self.retry(&action, attempts, error, *after).await,
            Outcome::Failed { error } => self.give_up(&action, error).await,
        };
        if let Err(e) = result {
            // The claim lease expires and the action is tried again.
            tracing::error!(action_id = %action.id, error = %e, "cannot record delivery result");
        }
        let _ = self.reports.send(report);
    }

    async fn retry(
        &self,
        action: &Action,
        attempts: u32,
        error: &str,
        hint: Option<Duration>,
    ) -> Result<(), StoreError> {
        let Some(delay) = self.retry_delay(action, attempts, hint) else {
            let why = format!("retries exhausted after {attempts} attempts: {error}");
            return self.give_up(action, &why).await;
        };
        tracing::warn!(action_id = %action.id, attempts, error = %error, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
        let delay_ms = delay.as_millis() as i64;
        let mark = || {
            repo::mark_retry(
                self.store.pool(),
                &action.id,
                &self.instance,
                delay_ms,
                error,
            )
        };
        let marked =
            store::while_unavailable("record a delivery retry", self.while_claimed(), mark);
        if !marked.await? {
            tracing::warn!(action_id = %action.id, "the claim lapsed meanwhile: this attempt's result is not recorded");
        }
        Ok(())
    }

    /// Until when a result may still be recorded under this attempt's claim
    /// (half the lease, as for marks): after that the claim lapses, the
    /// action is tried again and that attempt records its own result.
    fn while_claimed(&self) -> Option<Instant> {
        Some(Instant::now() + self.config.claim_timeout / 2)
    }

    fn retry_delay(
        &self,
        action: &Action,
        attempts: u32,
        hint: Option<Duration>,
    ) -> Option<Duration> {
        let amqp = (self.config.retry_initial, self.config.retry_max);
        self.sinks.retry_delay(&action.target, attempts, hint, amqp)
    }

    /// Mark failed and, in the same transaction, record a `delivery.failed`
    /// audit event so the failure itself is never lost.
    async fn give_up(&self, action: &Action, error: &str) -> Result<(), StoreError> {
        tracing::error!(action_id = %action.id, error = %error, "delivery failed for good");
        let record = || {
            failure::record(
                &self.store,
                &self.instance,
                &self.audit_exchange,
                action,
                error,
            )
        };
        store::while_unavailable("record a delivery failure", self.while_claimed(), record).await?;
        self.wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn only_a_claim_that_filled_its_room_may_have_left_some_behind() {
        assert_eq!(Backlog::after_claim(32, 32), Backlog::Maybe);
        assert_eq!(Backlog::after_claim(31, 32), Backlog::None);
        assert_eq!(Backlog::after_claim(0, 32), Backlog::None);
    }
}
