//! Ownership changes: an instance adopts the TRACKING transfers of one whose
//! lease expired. Not a state change, but it has the same shape: one
//! transaction takes the rows and enqueues a `transfer.adopted` audit record
//! per transfer, then the dispatcher is woken.

use super::Lifecycle;
use crate::store::{self, Adopted, StoreError};
use crate::transfer::TransferId;

/// Whose transfers to adopt.
#[derive(Debug, Clone, Copy)]
pub enum From<'a> {
    /// Every TRACKING transfer: SQLite at start, where one instance owns all.
    Everyone,
    /// Up to `limit` transfers of a dead instance (`None`: of no owner).
    Dead(Option<&'a str>, u32),
    /// This one, if its owner (`None`: no owner) is still dead.
    One(&'a TransferId, Option<&'a str>),
    /// What this instance's id owned in an earlier run (PostgreSQL).
    Own,
}

impl Lifecycle {
    /// Take transfers over; what comes back is this instance's to poll.
    pub async fn adopt(&self, from: From<'_>) -> Result<Vec<Adopted>, StoreError> {
        let me = &*self.instance;
        let mut tx = self.store.begin().await?;
        let adopted = match from {
            From::Everyone => store::adopt_all(&mut tx, me).await?,
            From::Dead(owner, limit) => {
                store::adopt_from(&mut tx, self.store.backend(), me, owner, limit).await?
            }
            From::One(id, owner) => store::adopt_one(&mut tx, me, id, owner)
                .await?
                .into_iter()
                .collect(),
            From::Own => store::owned_by(&mut tx, me).await?,
        };
        // A restart on SQLite, or with the same instance id, takes back the
        // previous run's transfers: that is resuming, not adopting, and
        // says nothing.
        let audit: Vec<_> = match from {
            From::Everyone | From::Own => Vec::new(),
            _ => adopted
                .iter()
                .map(|a| self.router.adopted(&a.transfer, a.from.as_deref(), me))
                .collect(),
        };
        crate::outbox::repo::enqueue(&mut tx, self.store.backend(), &audit, None).await?;
        tx.commit().await?;
        if !audit.is_empty() {
            metrics::counter!("bridge_transfers_adopted_total").increment(audit.len() as u64);
            self.outbox.wake();
        }
        Ok(adopted)
    }

    /// Ask the owner of a TRACKING transfer to poll it now (PostgreSQL);
    /// `held`: a held request's nudge, not a returned call.
    pub async fn forward_signal(
        &self,
        owner: &str,
        id: &TransferId,
        held: bool,
    ) -> Result<(), StoreError> {
        let mut conn = self.store.writer().await?;
        let payload = store::signal_payload(owner, id, held);
        store::notify(&mut conn, store::SIGNAL, &payload).await
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}
