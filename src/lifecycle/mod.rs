//! Every change of a transfer's state has its one home here.
//!
//! Each transition runs in one transaction: record it, plan the actions it
//! causes (routing), enqueue them (the outbox), commit. Only then are the
//! dispatcher and any request held for the transfer (`?wait=`) woken. The
//! API and the tracker call these functions; neither touches the outbox, the
//! router or the store's transaction-level SQL itself.

mod adopt;
mod group;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

pub use adopt::From as AdoptFrom;

use crate::outbox::{ActionView, repo};
use crate::routing::Router;
use crate::store::{self, Backend, Conn, NewTransfer, Registered, Store, StoreError};
use crate::transfer::{BridgeState, Transfer, TransferId, Waiters};
use crate::upstream::CallTransfer;

/// What the upstream said: the typed resource and the raw body (secrets
/// redacted) that the store keeps and the API shows.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub resource: &'a CallTransfer,
    pub raw: &'a Value,
}

/// A transfer leaving TRACKING.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// COMPLETED, EXPIRED, FAILED or CANCELLED.
    pub state: BridgeState,
    /// Why it FAILED or was CANCELLED.
    pub reason: Option<&'a str>,
    /// What the upstream said, recorded in the same transaction.
    pub seen: Option<Seen<'a>>,
    /// Upstream GETs so far (the tracker's count); `None` keeps the stored one.
    pub polls: Option<u32>,
}

/// How a [`Lifecycle::finish`] went.
#[derive(Debug)]
pub enum Finished {
    /// It left TRACKING now, with this many actions enqueued.
    Changed { transfer: Transfer, actions: usize },
    /// It had already left TRACKING: that change has its actions; nothing new.
    AlreadyEnded(Transfer),
    /// No transfer has this id.
    Unknown,
}

/// How a headers-only SIP return went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// The bridge did not know the transfer: registered and completed now.
    Created,
    /// A tracked transfer completed now, or a repeat changed nothing.
    Existing,
}

/// The handles every transition needs; cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    store: Store,
    router: Router,
    outbox_wake: Arc<Notify>,
    waiters: Arc<Waiters>,
    /// This instance (`cluster.instance_id`): what it registers, it owns.
    instance: Arc<str>,
    /// The group committer's queue (`None` in the committer's own copy, so
    /// it stops once every other copy is gone).
    committer: Option<tokio::sync::mpsc::Sender<group::Job>>,
}

impl Lifecycle {
    pub fn new(
        store: Store,
        router: Router,
        outbox_wake: Arc<Notify>,
        waiters: Arc<Waiters>,
        instance: Arc<str>,
    ) -> Self {
        let mut lifecycle = Self {
            store,
            router,
            outbox_wake,
            waiters,
            instance,
            committer: None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(group::QUEUE);
        tokio::spawn(group::run(lifecycle.clone(), rx));
        lifecycle.committer = Some(tx);
        lifecycle
    }

    /// Registered: insert it (or recognise a repeat) and, when new, enqueue
    /// its `transfer.tracking` audit record. `created` is the upstream's
    /// answer when the bridge created the transfer upstream.
    pub async fn register(
        &self,
        new: &NewTransfer,
        created: Option<&CallTransfer>,
    ) -> Result<Registered, StoreError> {
        let mut tx = self.store.begin().await?;
        let registered = store::register(&mut tx, new, &self.instance).await?;
        if let Registered::Created(transfer) = &registered {
            let plan = self.router.plan(transfer, BridgeState::Tracking, created);
            repo::enqueue(&mut tx, &plan.actions).await?;
        }
        tx.commit().await?;
        if matches!(registered, Registered::Created(_)) {
            metrics::counter!("bridge_transfers_registered_total").increment(1);
            self.outbox_wake.notify_one();
        }
        Ok(registered)
    }

    /// Upstream seen: a new status that does not end tracking (ACTIVE to
    /// ONGOING, say). One write, no actions.
    pub async fn upstream_seen(
        &self,
        id: &TransferId,
        seen: Seen<'_>,
        polls: u32,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.pool().acquire().await?;
        let status = seen.resource.status.as_str();
        store::record_upstream(&mut conn, id, status, seen.raw, polls).await
    }

    /// Completed, expired, failed or cancelled: the state, its actions and
    /// what the upstream said, in one transaction; then the wake-ups.
    /// Changes that arrive together commit together (see `group`).
    pub async fn finish(
        &self,
        id: &TransferId,
        finish: Finish<'_>,
    ) -> Result<Finished, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = group::Job {
            id: id.clone(),
            finish: group::OwnedFinish::new(&finish),
            reply,
        };
        let Some(committer) = &self.committer else {
            return self.finish_alone(id, &finish).await;
        };
        if committer.send(job).await.is_err() {
            return self.finish_alone(id, &finish).await;
        }
        match answer.await {
            Ok(result) => result,
            // The committer stopped without answering: nothing committed.
            Err(_) => self.finish_alone(id, &finish).await,
        }
    }

    /// One change in a transaction of its own.
    async fn finish_alone(
        &self,
        id: &TransferId,
        finish: &Finish<'_>,
    ) -> Result<Finished, StoreError> {
        let mut tx = self.store.begin().await?;
        let finished = self.finish_in(&mut tx, id, finish).await?;
        if let Finished::Changed { .. } = &finished {
            tx.commit().await?;
            self.finished(id, &finished);
        }
        Ok(finished)
    }

    /// Completed by a headers-only SIP return (no upstream call): register
    /// the transfer if the bridge did not know it, and complete it, in one
    /// transaction. A transfer that already ended is left as it is.
    pub async fn sip_return(
        &self,
        new: &NewTransfer,
        seen: Seen<'_>,
    ) -> Result<Returned, StoreError> {
        let mut tx = self.store.begin().await?;
        let returned = match store::fetch(&mut tx, &new.id).await? {
            Some(existing) if existing.state.is_terminal() => return Ok(Returned::Existing),
            Some(_) => Returned::Existing,
            None => match store::register(&mut tx, new, &self.instance).await? {
                Registered::Created(_) => Returned::Created,
                _ => return Ok(Returned::Existing),
            },
        };
        let finish = Finish {
            state: BridgeState::Completed,
            reason: None,
            seen: Some(seen),
            polls: None,
        };
        let finished = self.finish_in(&mut tx, &new.id, &finish).await?;
        tx.commit().await?;
        self.finished(&new.id, &finished);
        Ok(returned)
    }

    /// Enqueue every action of a transfer again, same ids and bodies.
    pub async fn redeliver(&self, id: &TransferId) -> Result<u64, StoreError> {
        let requeued = repo::redeliver(self.store.pool(), id).await?;
        self.outbox_wake.notify_one();
        Ok(requeued)
    }

    /// The transfer's actions and how their delivery stands.
    pub async fn actions(&self, id: &TransferId) -> Result<Vec<ActionView>, StoreError> {
        repo::for_transfer(self.store.reader(), id).await
    }

    async fn finish_in(
        &self,
        tx: &mut Conn,
        id: &TransferId,
        f: &Finish<'_>,
    ) -> Result<Finished, StoreError> {
        let Some(mut transfer) = store::fetch(tx, id).await? else {
            return Ok(Finished::Unknown);
        };
        if transfer.state.is_terminal() {
            return Ok(Finished::AlreadyEnded(transfer));
        }
        if let Some(seen) = f.seen {
            let polls = f.polls.unwrap_or(transfer.polls);
            store::record_upstream(tx, id, seen.resource.status.as_str(), seen.raw, polls).await?;
        }
        transfer.state = f.state;
        transfer.reason = f.reason.map(str::to_owned);
        transfer.polls = f.polls.unwrap_or(transfer.polls);
        let plan = self
            .router
            .plan(&transfer, f.state, f.seen.map(|s| s.resource));
        // A route that could not run in full says why in the event; keep it.
        let reason = f.reason.or(plan.event.reason.as_deref());
        let sip = plan.event.sip.as_ref();
        if !store::finish(tx, id, f.state, reason, f.polls, sip).await? {
            return Ok(Finished::AlreadyEnded(transfer));
        }
        repo::enqueue(tx, &plan.actions).await?;
        if self.store.backend() == Backend::Postgres {
            // Delivered at commit to every instance: held requests wake
            // wherever they wait, and the owner stops polling.
            store::notify(tx, store::CHANGED, id.as_str()).await?;
        }
        transfer.reason = reason.map(str::to_owned);
        transfer.sip = plan.event.sip;
        let actions = plan.actions.len();
        Ok(Finished::Changed { transfer, actions })
    }

    /// After the commit: count it, say it, wake the dispatcher and the
    /// requests held for this transfer.
    fn finished(&self, id: &TransferId, finished: &Finished) {
        let Finished::Changed { transfer, actions } = finished else {
            return;
        };
        let state = transfer.state;
        metrics::counter!("bridge_transfers_finished_total", "state" => state.as_str())
            .increment(1);
        tracing::info!(call_transfer_id = %id, state = %state, polls = transfer.polls, actions, "transfer finished");
        self.outbox_wake.notify_one();
        self.waiters.wake(id);
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
