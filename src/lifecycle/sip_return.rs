//! A headers-only SIP return: the PBX says the call came back and with what
//! outcome, and the bridge completes the transfer without asking the
//! upstream, registering it first when it did not know it. A caller waits
//! on the line for the answer, and when many calls come back at once each
//! return was a FULL commit of its own, queued on the store's one writer:
//! with 64 in flight the median answer took 62-119 ms. Returns that arrive
//! together share the group committer's transaction (see `group`), and a
//! return new to the bridge is answered from its commit, with no read:
//! 11-13 ms (README, "Throughput and CPU").

use std::sync::Arc;

use super::{Finish, Finished, Lifecycle, Returned, job, register};
use crate::outbox::ActionView;
use crate::store::{Conn, NewTransfer, StoreError};
use crate::transfer::{BridgeState, Transfer};
use crate::upstream::Fetched;

/// How a headers-only SIP return went.
#[derive(Debug)]
pub struct SipReturned {
    pub returned: Returned,
    /// A transfer new to the bridge, as its commit left it, with the
    /// actions it enqueued: what a read right after the commit gives, so
    /// the PBX's answer needs no read (a third of a return's CPU).
    pub created: Option<(Transfer, Vec<ActionView>)>,
}

impl SipReturned {
    /// After the commit: a return's answer, and how its completion went
    /// with the views of the actions that completion enqueued.
    pub(super) fn new(returned: Returned, finished: Finished, views: Vec<ActionView>) -> Self {
        let created = match (returned, finished) {
            (Returned::Created, Finished::Changed { transfer, .. }) => Some((transfer, views)),
            _ => None,
        };
        Self { returned, created }
    }
}

/// The completion a return records.
pub(super) fn completion(seen: &Arc<Fetched>) -> Finish<'_> {
    Finish {
        state: BridgeState::Completed,
        reason: None,
        seen: Some(seen),
        polls: None,
        known: None,
    }
}

impl Lifecycle {
    /// Completed by a headers-only SIP return (no upstream call): register
    /// the transfer if the bridge did not know it, and complete it, in one
    /// transaction. A transfer that already ended is left as it is.
    pub async fn sip_return(
        &self,
        new: &NewTransfer,
        seen: Arc<Fetched>,
    ) -> Result<SipReturned, StoreError> {
        let job = |reply| {
            job::Job::Return(Box::new(job::ReturnJob {
                new: new.clone(),
                seen: seen.clone(),
                reply,
            }))
        };
        match job::submit(self.committer.as_ref(), job).await {
            Some(result) => result,
            None => self.sip_return_alone(new, &seen).await,
        }
    }

    /// One return in a transaction of its own.
    pub(super) async fn sip_return_alone(
        &self,
        new: &NewTransfer,
        seen: &Arc<Fetched>,
    ) -> Result<SipReturned, StoreError> {
        let slot = self.outbox.slot();
        let mut tx = self.store.begin().await?;
        let returned = self.returns_in(&mut tx, &[new]).await?.remove(0);
        let (finished, actions) = self
            .finish_one(&mut tx, &new.id, &completion(seen), &slot)
            .await?;
        tx.commit().await?;
        let views = register::views(&actions, slot.claim().is_some());
        self.outbox.committed(slot, actions);
        self.finished(&new.id, &finished);
        Ok(SipReturned::new(returned, finished, views))
    }

    /// The transfers returns complete, in the caller's transaction: each
    /// registered now when the bridge did not know it, all in one
    /// statement. Each completion is then an ending like any other (see
    /// `finish_in`), which leaves a transfer that already ended as it is.
    /// Answers in the order of `news`; an id named twice is new once.
    pub(super) async fn returns_in(
        &self,
        tx: &mut Conn,
        news: &[&NewTransfer],
    ) -> Result<Vec<Returned>, StoreError> {
        let mut inserted = self.insert_new(tx, news).await?;
        let answer = |new: &&NewTransfer| match inserted.remove(new.id.as_str()) {
            Some(_) => Returned::Created,
            None => Returned::Existing,
        };
        Ok(news.iter().map(answer).collect())
    }
}
