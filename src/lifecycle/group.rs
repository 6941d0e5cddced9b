//! Group commit: state changes that arrive together share one transaction.
//! So do the upstream statuses that change without ending tracking (ACTIVE
//! to ONGOING): nearly every polled transfer has one besides its ending,
//! and each was a commit of its own.
//!
//! Under `synchronous = FULL` every commit waits for an fsync, and SQLite
//! takes one writer at a time, so a burst of completions committed one by
//! one queues on the disk. Every `finish` and `upstream_seen` goes to one
//! committer task. It takes what is already queued (at most `MAX_GROUP`)
//! and, when the last group was not alone (the bridge is under load),
//! lingers up to `LINGER` for more; then writes the whole group with four statements (one UPDATE
//! of the statuses seen, see `store::seen`; one read, one UPDATE, one INSERT
//! for the endings, see `store::ending`) in one transaction and commits
//! once. An idle bridge commits a lone change at once.
//!
//! Each ending keeps its own outcome (ended now, had already ended, or
//! unknown). If a statement or the commit fails, each change of the group
//! is run again alone, so every caller gets the answer its own transaction
//! would have given. Nobody is answered (and no dispatcher or held request
//! woken) before the commit.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{Finish, Finished, Lifecycle, Seen};
use crate::linger::linger;
use crate::store::{self, StoreError, Upstream};
use crate::transfer::{BridgeState, TransferId};
use crate::upstream::CallTransfer;

/// How long a group waits for company under load.
const LINGER: Duration = Duration::from_millis(2);
/// Changes per transaction at most.
const MAX_GROUP: usize = 256;
/// Changes waiting for the committer; callers wait when it is full.
pub(super) const QUEUE: usize = 4096;

/// A [`Finish`] that can wait in the committer's queue.
pub(super) struct OwnedFinish {
    state: BridgeState,
    reason: Option<String>,
    seen: Option<(CallTransfer, Value)>,
    polls: Option<u32>,
}

impl OwnedFinish {
    pub(super) fn new(f: &Finish<'_>) -> Self {
        Self {
            state: f.state,
            reason: f.reason.map(str::to_owned),
            seen: f.seen.map(|s| (s.resource.clone(), s.raw.clone())),
            polls: f.polls,
        }
    }

    fn as_finish(&self) -> Finish<'_> {
        Finish {
            state: self.state,
            reason: self.reason.as_deref(),
            seen: self
                .seen
                .as_ref()
                .map(|(resource, raw)| Seen { resource, raw }),
            polls: self.polls,
        }
    }
}

/// A change waiting for the committer.
pub(super) enum Job {
    /// Boxed: it holds the whole upstream resource, a status needs a tenth.
    Finish(Box<FinishJob>),
    Seen(SeenJob),
}

/// A transfer leaving TRACKING.
pub(super) struct FinishJob {
    pub id: TransferId,
    pub finish: OwnedFinish,
    pub reply: oneshot::Sender<Result<Finished, StoreError>>,
}

/// A new upstream status that does not end tracking.
pub(super) struct SeenJob {
    pub row: Upstream,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Commit groups until every sender is gone.
pub(super) async fn run(lifecycle: Lifecycle, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut busy = false;
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        if busy && group.len() < MAX_GROUP {
            linger(&mut rx, &mut group, MAX_GROUP, LINGER).await;
        }
        busy = group.len() > 1;
        commit(&lifecycle, std::mem::take(&mut group)).await;
    }
}

async fn commit(lifecycle: &Lifecycle, group: Vec<Job>) {
    metrics::histogram!("bridge_lifecycle_group_size").record(group.len() as f64);
    let (mut finishes, mut seen) = (Vec::new(), Vec::new());
    for job in group {
        match job {
            Job::Finish(f) => finishes.push(*f),
            Job::Seen(s) => seen.push(s),
        }
    }
    match write_group(lifecycle, &finishes, &seen).await {
        Ok(outcomes) => {
            for (job, finished) in finishes.into_iter().zip(outcomes) {
                lifecycle.finished(&job.id, &finished);
                let _ = job.reply.send(Ok(finished));
            }
            for job in seen {
                let _ = job.reply.send(Ok(()));
            }
        }
        Err(e) => {
            let changes = finishes.len() + seen.len();
            tracing::warn!(changes, error = %e, "group commit failed; committing each change alone");
            for job in finishes {
                let result = lifecycle
                    .finish_alone(&job.id, &job.finish.as_finish())
                    .await;
                let _ = job.reply.send(result);
            }
            for job in seen {
                let _ = job.reply.send(lifecycle.seen_alone(&job.row).await);
            }
        }
    }
}

/// One transaction for the whole group; the outcome of each ending.
async fn write_group(
    lifecycle: &Lifecycle,
    finishes: &[FinishJob],
    seen: &[SeenJob],
) -> Result<Vec<Finished>, StoreError> {
    let changes: Vec<_> = finishes
        .iter()
        .map(|job| (&job.id, job.finish.as_finish()))
        .collect();
    let slot = lifecycle.outbox.slot();
    let mut tx = lifecycle.store.begin().await?;
    let backend = lifecycle.store.backend();
    store::record_upstream(&mut tx, backend, seen.iter().map(|job| &job.row)).await?;
    let (outcomes, actions) = match changes.is_empty() {
        true => Default::default(),
        false => lifecycle.finish_in(&mut tx, &changes, &slot).await?,
    };
    tx.commit().await?;
    lifecycle.outbox.committed(slot, actions);
    Ok(outcomes)
}
