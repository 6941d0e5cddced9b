//! Every change of a transfer's state has its one home here.
//!
//! Each transition runs in one transaction: record it, plan the actions it
//! causes (routing), enqueue them (the outbox), commit. Only then are the
//! dispatcher and any request held for the transfer (`?wait=`) woken. The
//! API and the tracker call these functions; neither touches the outbox, the
//! router or the store's transaction-level SQL itself.

mod adopt;
mod finish;
mod group;
mod job;
mod pace;
mod register;
mod sip_return;

use std::collections::HashMap;
use std::sync::Arc;

pub use adopt::From as AdoptFrom;
pub use register::Registration;
pub use sip_return::SipReturned;

use crate::outbox::{self, ActionView, Handoff, Slot, repo};
use crate::routing::Router;
use crate::store::{self, Backend, Conn, Ending, Store, StoreError, Upstream};
use crate::transfer::{Action, BridgeState, Transfer, TransferId, Waiters};
use crate::upstream::{CallTransfer, Fetched};

/// What the upstream said: the typed resource and the raw body's JSON text
/// (secrets redacted, `Fetched::text`) that the store keeps and the API
/// shows. A status that does not end tracking; an ending shares the whole
/// [`Fetched`] instead (see [`Finish::seen`]).
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub resource: &'a CallTransfer,
    pub raw: &'a str,
}

/// A transfer leaving TRACKING.
#[derive(Debug, Clone, Copy)]
pub struct Finish<'a> {
    /// COMPLETED, EXPIRED, FAILED or CANCELLED.
    pub state: BridgeState,
    /// Why it FAILED or was CANCELLED.
    pub reason: Option<&'a str>,
    /// What the upstream said, recorded in the same transaction. Shared,
    /// not borrowed: the change waits in the group committer's queue, and
    /// copying the resource, its JSON tree and the transfer there cost
    /// about 3% of a burst's CPU per completion (docs/perf-rounds.md,
    /// twenty-ninth round).
    pub seen: Option<&'a Arc<Fetched>>,
    /// Upstream GETs so far (the tracker's count); `None` keeps the stored one.
    pub polls: Option<u32>,
    /// The transfer as a read just before showed it (the read that answered
    /// the PBX's signal), its last upstream resource left out. On SQLite an
    /// ending that records what the upstream said (`seen`) takes it instead
    /// of reading the row again, and its UPDATE checks that the row still
    /// says the same (see [`store::Ending::expecting`]); if it does not, the
    /// group runs again, reading.
    pub known: Option<&'a Arc<Transfer>>,
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
    /// Shared: a Lifecycle is cloned per request and per poll.
    router: Arc<Router>,
    /// Where committed actions go: to this instance's dispatcher, claimed.
    outbox: Handoff,
    waiters: Arc<Waiters>,
    /// This instance (`cluster.instance_id`): what it registers, it owns.
    instance: Arc<str>,
    /// The API's single-transfer reads, batched (see `outbox::ViewReads`).
    reads: outbox::ViewReads,
    /// The group committer's queue (`None` in the committer's own copy, so
    /// it stops once every other copy is gone).
    committer: Option<tokio::sync::mpsc::Sender<job::Job>>,
}

impl Lifecycle {
    pub fn new(
        store: Store,
        router: Router,
        outbox: Handoff,
        waiters: Arc<Waiters>,
        instance: Arc<str>,
    ) -> Self {
        let mut lifecycle = Self {
            reads: outbox::ViewReads::start(store.clone()),
            store,
            router: Arc::new(router),
            outbox,
            waiters,
            instance,
            committer: None,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(group::QUEUE);
        tokio::spawn(group::run(lifecycle.clone(), rx));
        lifecycle.committer = Some(tx);
        lifecycle
    }

    /// Upstream seen: a new status that does not end tracking (ACTIVE to
    /// ONGOING, say). One write, no actions, committed with whatever else
    /// the group committer has (see `group`).
    pub async fn upstream_seen(
        &self,
        id: &TransferId,
        seen: Seen<'_>,
        polls: u32,
    ) -> Result<(), StoreError> {
        let row = Upstream::new(id, seen.resource.status.as_str(), seen.raw, polls);
        let job = |reply| {
            job::Job::Seen(job::SeenJob {
                row: row.clone(),
                reply,
            })
        };
        match job::submit(self.committer.as_ref(), job).await {
            Some(result) => result,
            None => self.seen_alone(&row).await,
        }
    }

    /// One status in a write of its own.
    async fn seen_alone(&self, row: &Upstream) -> Result<(), StoreError> {
        let mut conn = self.store.writer().await?;
        store::record_upstream(&mut conn, self.store.backend(), [row]).await
    }

    /// Completed, expired, failed or cancelled: the state, its actions and
    /// what the upstream said, in one transaction; then the wake-ups.
    /// Changes that arrive together commit together (see `group`).
    pub async fn finish(
        &self,
        id: &TransferId,
        finish: Finish<'_>,
    ) -> Result<Finished, StoreError> {
        let job = |reply| {
            job::Job::Finish(Box::new(job::FinishJob {
                id: id.clone(),
                finish: finish::OwnedFinish::new(&finish),
                reply,
            }))
        };
        match job::submit(self.committer.as_ref(), job).await {
            Some(result) => result,
            None => self.finish_alone(id, &finish).await,
        }
    }

    /// One change in a transaction of its own.
    async fn finish_alone(
        &self,
        id: &TransferId,
        finish: &Finish<'_>,
    ) -> Result<Finished, StoreError> {
        let slot = self.outbox.slot();
        let mut tx = self.store.begin().await?;
        let (finished, actions) = self.finish_one(&mut tx, id, finish, &slot).await?;
        match &finished {
            Finished::Changed { .. } => {
                tx.commit().await?;
                self.outbox.committed(slot, actions);
                self.finished(id, &finished);
            }
            Finished::AlreadyEnded(_) | Finished::Unknown => tx.rollback().await?,
        }
        Ok(finished)
    }

    /// Enqueue every action of a transfer again, same ids and bodies.
    pub async fn redeliver(&self, id: &TransferId) -> Result<u64, StoreError> {
        let requeued = repo::redeliver(&self.store, id).await?;
        self.outbox.wake();
        Ok(requeued)
    }

    /// The transfer and its actions, read together.
    pub async fn with_actions(
        &self,
        id: &TransferId,
    ) -> Result<Option<(Transfer, Vec<ActionView>)>, StoreError> {
        self.reads.get(id).await
    }

    /// The transfer's actions and how their delivery stands.
    pub async fn actions(&self, id: &TransferId) -> Result<Vec<ActionView>, StoreError> {
        outbox::for_transfer(&self.store, id).await
    }

    async fn finish_one(
        &self,
        tx: &mut Conn,
        id: &TransferId,
        finish: &Finish<'_>,
        slot: &Slot,
    ) -> Result<(Finished, Vec<Action>), StoreError> {
        let (mut outcomes, actions) = self.finish_in(tx, &[(id, *finish)], slot, None).await?;
        Ok((outcomes.pop().expect("one outcome per change"), actions))
    }

    /// End each of `changes` still TRACKING, in the caller's transaction:
    /// one read, one UPDATE and one INSERT for all of them (see
    /// `store::ending`). Outcomes in the order of `changes`; a second change
    /// of the same transfer finds it already ended. The actions enqueued
    /// come back for [`Handoff::committed`]. On SQLite the UPDATE and the
    /// INSERT wait to go with the COMMIT (see `store::Conn::with_next`):
    /// after the read, one hand-off to the writer thread. With `known` (the
    /// transfers as the changes saw them, see [`Finish::known`]) there is no
    /// read: each ending expects its row unchanged, and the UPDATE's check
    /// fails the transaction if one was not.
    async fn finish_in(
        &self,
        tx: &mut Conn,
        changes: &[(&TransferId, Finish<'_>)],
        slot: &Slot,
        known: Option<HashMap<String, Arc<Transfer>>>,
    ) -> Result<(Vec<Finished>, Vec<Action>), StoreError> {
        let backend = self.store.backend();
        let expecting = known.is_some();
        let known = match known {
            Some(known) => known,
            None => {
                let ids: Vec<&str> = changes.iter().map(|(id, _)| id.as_str()).collect();
                let read = store::fetch_many(tx, backend, &ids).await?;
                read.into_iter().map(|(id, t)| (id, Arc::new(t))).collect()
            }
        };
        // The stamp the rows get, so each outcome's transfer is what a read
        // after the commit gives.
        let now = store::now_text();
        let at = store::parse_time(&now)?;
        let (outcomes, endings, actions) = self.plan_group(changes, known, at, expecting);
        store::end_many(tx, backend, &endings, &now).await?;
        repo::enqueue(tx, backend, &actions, slot.claim()).await?;
        if backend == Backend::Postgres {
            // Delivered at commit to every instance: held requests wake
            // wherever they wait, and the owners stop polling.
            let ended: Vec<&str> = endings.iter().map(|e| e.id).collect();
            store::notify_many(tx, store::CHANGED, &ended).await?;
        }
        Ok((outcomes, actions))
    }

    /// Each change's outcome, the rows of the endings and their actions,
    /// from the transfers the group read (`known`, by id). A transfer the
    /// group read is moved into its outcome, not cloned: the upstream's
    /// resource in it is a tree of allocations. One a change brought is
    /// cloned, once (the change still holds it). A second change of a
    /// transfer this group ends finds it ended, as the row will say.
    /// `expecting`: `known` was not read under the write lock, so each
    /// ending checks its row.
    fn plan_group<'a>(
        &self,
        changes: &'a [(&'a TransferId, Finish<'a>)],
        mut known: HashMap<String, Arc<Transfer>>,
        at: time::OffsetDateTime,
        expecting: bool,
    ) -> (Vec<Finished>, Vec<Ending<'a>>, Vec<Action>) {
        let mut outcomes = Vec::with_capacity(changes.len());
        let mut endings = Vec::with_capacity(changes.len());
        let mut actions = Vec::new();
        let mut ending_at: HashMap<&str, usize> = HashMap::with_capacity(changes.len());
        for (id, f) in changes {
            let outcome = match ending_at.get(id.as_str()).map(|&i| &outcomes[i]) {
                Some(Finished::Changed { transfer, .. }) => Some(transfer),
                _ => known
                    .get(id.as_str())
                    .map(|t| &**t)
                    .filter(|t| t.state.is_terminal()),
            };
            if let Some(ended) = outcome.cloned() {
                outcomes.push(Finished::AlreadyEnded(ended));
                continue;
            }
            let Some(mut transfer) = known.remove(id.as_str()).map(Arc::unwrap_or_clone) else {
                outcomes.push(Finished::Unknown);
                continue;
            };
            let (mut ending, planned) = self.plan_end(&mut transfer, id, f);
            if expecting {
                ending = ending.expecting(&transfer);
            }
            transfer.updated_at = at;
            endings.push(ending);
            ending_at.insert(id.as_str(), outcomes.len());
            outcomes.push(Finished::Changed {
                transfer,
                actions: planned.len(),
            });
            actions.extend(planned);
        }
        (outcomes, endings, actions)
    }

    /// The row and the actions of `transfer` ending as `f` says; `transfer`
    /// becomes what the row will hold.
    fn plan_end<'a>(
        &self,
        transfer: &mut Transfer,
        id: &'a TransferId,
        f: &Finish<'a>,
    ) -> (Ending<'a>, Vec<Action>) {
        transfer.state = f.state;
        transfer.reason = f.reason.map(str::to_owned);
        transfer.polls = f.polls.unwrap_or(transfer.polls);
        let plan = self
            .router
            .plan(transfer, f.state, f.seen.map(|s| &s.resource));
        // A route that could not run in full says why in the event; keep it.
        transfer.reason = f.reason.map(str::to_owned).or(plan.event.reason);
        let mut ending =
            Ending::new(id, f.state, transfer.reason.clone()).sip(plan.event.sip.as_ref());
        ending.polls = f.polls;
        if let Some(seen) = f.seen {
            ending = ending.seen(seen.resource.status.as_str(), seen.text());
            transfer.upstream_status = Some(seen.resource.status.as_str().to_owned());
            transfer.upstream = Some(seen.raw.clone());
        }
        transfer.sip = plan.event.sip;
        (ending, plan.actions)
    }

    /// After the commit (and the handoff of its actions): count it, say
    /// it, wake the requests held for this transfer.
    fn finished(&self, id: &TransferId, finished: &Finished) {
        let Finished::Changed { transfer, actions } = finished else {
            return;
        };
        let state = transfer.state;
        metrics::counter!("bridge_transfers_finished_total", "state" => state.as_str())
            .increment(1);
        tracing::info!(call_transfer_id = %id, state = %state, polls = transfer.polls, actions, "transfer finished");
        self.waiters.wake(id, Some(transfer));
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "handoff_tests.rs"]
mod handoff_tests;

#[cfg(test)]
#[path = "group_tests.rs"]
mod group_tests;

#[cfg(test)]
#[path = "known_tests.rs"]
mod known_tests;

#[cfg(test)]
#[path = "pace_tests.rs"]
mod pace_tests;
