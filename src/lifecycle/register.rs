//! Registration: a new transfer and its `transfer.tracking` audit record,
//! in one transaction. Registrations that arrive together share the group
//! committer's transaction with whatever else it has (see `group`): at a
//! peak many calls are handed over at once, and each registration was a
//! FULL commit of its own, queued on the store's one writer.

use super::{Lifecycle, job};
use crate::outbox::{ActionView, repo};
use std::collections::HashMap;

use crate::store::{self, Conn, NewTransfer, Registered, StoreError};
use crate::transfer::{Action, BridgeState, Transfer};
use crate::upstream::CallTransfer;

/// How a registration went, with the actions its commit enqueued (none for
/// a repeat), so its answer needs no second read.
pub type Registration = (Registered, Vec<ActionView>);

/// A transaction's registrations sorted by id: the transfers inserted now,
/// and the repeats read (see `store::repeats`).
pub(super) type Sorted<'a> = (
    &'a mut HashMap<String, Transfer>,
    &'a mut HashMap<String, Registered>,
);

impl Lifecycle {
    /// Registered: insert it (or recognise a repeat) and, when new, enqueue
    /// its `transfer.tracking` audit record. `created` is the upstream's
    /// answer when the bridge created the transfer upstream.
    pub async fn register(
        &self,
        new: &NewTransfer,
        created: Option<&CallTransfer>,
    ) -> Result<Registered, StoreError> {
        Ok(self.register_viewed(new, created).await?.0)
    }

    /// [`Self::register`], with the views of the actions it enqueued.
    pub async fn register_viewed(
        &self,
        new: &NewTransfer,
        created: Option<&CallTransfer>,
    ) -> Result<Registration, StoreError> {
        let job = |reply| {
            job::Job::Register(Box::new(job::RegisterJob {
                new: new.clone(),
                created: created.cloned(),
                reply,
            }))
        };
        match job::submit(self.committer.as_ref(), job).await {
            Some(result) => result,
            None => self.register_alone(new, created).await,
        }
    }

    /// One registration in a transaction of its own.
    pub(super) async fn register_alone(
        &self,
        new: &NewTransfer,
        created: Option<&CallTransfer>,
    ) -> Result<Registration, StoreError> {
        let slot = self.outbox.slot();
        let mut tx = self.store.begin().await?;
        let mut inserted = self.insert_new(&mut tx, &[new]).await?;
        let sorted = (&mut inserted, &mut HashMap::new());
        let (registered, actions) = self.register_in(&mut tx, new, created, sorted).await?;
        repo::enqueue(&mut tx, self.store.backend(), &actions, slot.claim()).await?;
        tx.commit().await?;
        let views = views(&actions, slot.claim().is_some());
        self.outbox.committed(slot, actions);
        counted(&registered);
        Ok((registered, views))
    }

    /// Every one of `news` not stored yet, inserted in one statement (a
    /// group's registrations arrive together): the rows, by id, for
    /// [`Self::register_in`].
    pub(super) async fn insert_new(
        &self,
        tx: &mut Conn,
        news: &[&NewTransfer],
    ) -> Result<HashMap<String, Transfer>, StoreError> {
        store::insert_many(tx, self.store.backend(), news, &self.instance).await
    }

    /// [`Self::insert_new`], each of `news` taken to be new (see
    /// `store::insert_taken_as_new`); `None` where that does not apply.
    pub(super) async fn insert_taken_as_new(
        &self,
        tx: &mut Conn,
        news: &[&NewTransfer],
    ) -> Result<Option<HashMap<String, Transfer>>, StoreError> {
        let backend = self.store.backend();
        store::insert_taken_as_new(tx, backend, news, &self.instance).await
    }

    /// `new` as [`Self::insert_new`] left it, in the caller's transaction:
    /// inserted now (taken from `inserted`, so an id named twice is new
    /// once), or a repeat to tell from a conflicting body (taken from
    /// `repeats`, read beforehand, else read now). The actions a new
    /// transfer causes, for the caller to enqueue.
    pub(super) async fn register_in(
        &self,
        tx: &mut Conn,
        new: &NewTransfer,
        created: Option<&CallTransfer>,
        (inserted, repeats): Sorted<'_>,
    ) -> Result<(Registered, Vec<Action>), StoreError> {
        let id = new.id.as_str();
        let registered = match (inserted.remove(id), repeats.remove(id)) {
            (Some(transfer), _) => Registered::Created(transfer),
            (None, Some(repeat)) => repeat,
            (None, None) => store::repeat(tx, new).await?,
        };
        let actions = match &registered {
            Registered::Created(transfer) => {
                let plan = self.router.plan(transfer, BridgeState::Tracking, created);
                plan.actions
            }
            Registered::Identical(_) | Registered::Conflict(_) => Vec::new(),
        };
        Ok((registered, actions))
    }
}

/// The views of actions one commit enqueued (`claimed` for this instance's
/// dispatcher, or not), as a read right after it gives them: in the order
/// of creation (one commit), then id.
pub(super) fn views(actions: &[Action], claimed: bool) -> Vec<ActionView> {
    let view = |action| ActionView::enqueued(action, claimed);
    let mut views: Vec<_> = actions.iter().map(view).collect();
    views.sort_by(|a, b| a.id.cmp(&b.id));
    views
}

/// After the commit: count a new transfer.
pub(super) fn counted(registered: &Registered) {
    if matches!(registered, Registered::Created(_)) {
        metrics::counter!("bridge_transfers_registered_total").increment(1);
    }
}
