//! Actions handed from the commit that recorded them straight to this
//! instance's dispatcher.
//!
//! A state change's actions used to wait for the dispatcher to claim them:
//! one more write transaction (and fsync) before the first publish, while
//! the caller waits on the line. Instead, the transaction that records them
//! also claims them for this instance (`claimed_by`, `claimed_until`, first
//! attempt), and after the commit they go to the dispatcher in memory. The
//! claim is what keeps every other path off them: the dispatcher's own poll
//! and other instances skip claimed rows until the claim lapses. A crash
//! before delivery loses nothing: the rows are durable and their claim is
//! voided at the next start (or by the instance that adopts this one's
//! transfers), so they are delivered then, with the same ids.
//!
//! Room in the queue is taken before the transaction, so a claimed batch
//! always has a place to go. With no room (the dispatcher is far behind),
//! actions are recorded unclaimed and the dispatcher is woken to claim them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::repo::{Claim, Claimed};
use crate::transfer::Action;
use crate::transfer::clock::now_unix_ms;

/// A committed batch on its way to the dispatcher.
pub(crate) struct Fresh {
    pub claimed: Vec<Claimed>,
    /// When the claim was written; a batch that waited past half its lease
    /// is left to the claim's expiry instead (another claim may be near).
    pub at: Instant,
}

/// The lifecycle's side: how new actions reach the dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    wake: Arc<Notify>,
    queue: Option<mpsc::Sender<Fresh>>,
    instance: Arc<str>,
    lease: Duration,
}

/// Room for one batch, taken before the transaction that claims it.
pub struct Slot {
    permit: Option<mpsc::OwnedPermit<Fresh>>,
    claim: Claim,
}

impl Slot {
    /// The claim to record the batch with: `None` when there was no room
    /// (the dispatcher claims the batch itself later).
    pub fn claim(&self) -> Option<&Claim> {
        self.permit.as_ref().map(|_| &self.claim)
    }
}

impl Handoff {
    /// A handoff and the dispatcher's end of it, with room for `batches`
    /// (one per commit).
    pub(crate) fn channel(
        wake: Arc<Notify>,
        instance: Arc<str>,
        lease: Duration,
        batches: usize,
    ) -> (Self, mpsc::Receiver<Fresh>) {
        let (tx, rx) = mpsc::channel(batches);
        let handoff = Self {
            wake,
            queue: Some(tx),
            instance,
            lease,
        };
        (handoff, rx)
    }

    /// No dispatcher in this process takes batches: every action is recorded
    /// unclaimed and `wake` is notified (tests, benchmarks).
    pub fn wake_only(wake: Arc<Notify>) -> Self {
        Self {
            wake,
            queue: None,
            instance: "".into(),
            lease: Duration::ZERO,
        }
    }

    pub fn slot(&self) -> Slot {
        let permit = self
            .queue
            .clone()
            .and_then(|queue| queue.try_reserve_owned().ok());
        Slot {
            permit,
            claim: Claim {
                by: self.instance.clone(),
                until_ms: now_unix_ms() + self.lease.as_millis() as i64,
            },
        }
    }

    /// After the commit: `actions`, recorded with `slot`'s claim (if any),
    /// go to the dispatcher; unclaimed ones wake it.
    pub fn committed(&self, slot: Slot, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        match slot.permit {
            Some(permit) => {
                let claimed = actions
                    .into_iter()
                    .map(|action| Claimed {
                        action,
                        attempts: 1,
                    })
                    .collect();
                permit.send(Fresh {
                    claimed,
                    at: Instant::now(),
                });
            }
            None => self.wake.notify_one(),
        }
    }

    /// Actions were recorded unclaimed (redelivery, adoption audit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
