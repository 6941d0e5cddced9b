//! Settling delivered actions in batches.
//!
//! Every confirm used to cost its own `UPDATE` and commit, and so its own
//! fsync under `synchronous = FULL`; under a burst those commits queued for
//! SQLite's single write lock and capped the drain at a few dozen actions a
//! second. Here delivery tasks hand their confirmed ids to one settler,
//! which writes whatever has arrived meanwhile as one statement: the batch
//! grows with the load. It also waits up to `LINGER` for company: a mark
//! changes nothing outside (the message is out, the caller routed), and at
//! a steady few hundred confirms a second this turns one commit (one fsync)
//! per confirm into one per sixty. At 20 ms it was one per dozen, and the
//! settle commits, each a write transaction on SQLite's one writer with
//! their hand-offs to its thread, were 7% of a signalled transfer's CPU
//! more than at 100 ms (e2e `signalled`, four alternating pairs); the mark
//! shows in the API's action status that much later, and a crash within it
//! redelivers those actions, as it always could.
//!
//! The guarantee is unchanged: an id reaches the settler only after its
//! confirm (or 2xx), and one that never gets its mark (a crash, a full disk
//! for longer than the lease) is claimed again and redelivered with the
//! same id.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::repo;
use crate::linger::linger;
use crate::store::{self, Store, StoreError};

/// Ids per statement: well under the backends' bound-variable and
/// statement limits, large enough that a burst needs few commits.
const MAX_BATCH: usize = 1024;
/// How long a batch waits for more confirms before it is written.
const LINGER: Duration = Duration::from_millis(100);

/// One delivered action on its way to its mark.
#[derive(Debug)]
pub struct Confirmed<T> {
    pub id: String,
    /// Handed back to `after` once the mark is written (the dispatcher's
    /// report of the delivery).
    pub then: T,
}

/// Write marks for whatever `rx` brings until it closes, a batch at a time;
/// call `after` with each batch once its marks are committed. A batch whose
/// mark cannot be written while the disk is full is retried until half of
/// `lease` has passed; after that its actions are redelivered when their
/// claim expires, which is the at-least-once contract.
pub async fn run<T: Send>(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Confirmed<T>>,
    lease: Duration,
    mut after: impl FnMut(Vec<Confirmed<T>>),
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        linger(&mut rx, &mut batch, MAX_BATCH, LINGER).await;
        let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
        if let Err(e) = mark_with_retry(&store, &ids, lease / 2).await {
            // The claim lease expires and these actions are tried again.
            tracing::error!(actions = ids.len(), error = %e, "cannot record deliveries");
        }
        metrics::histogram!("bridge_outbox_settle_batch").record(ids.len() as f64);
        after(std::mem::take(&mut batch));
    }
}

/// A delivered action whose mark cannot be written (a full disk) would be
/// sent again once its lease expires. Retrying the mark while the lease
/// holds makes that one delivery once space is back.
async fn mark_with_retry(
    store: &Store,
    ids: &[String],
    within: Duration,
) -> Result<(), StoreError> {
    let until = Some(Instant::now() + within);
    let mark = || repo::mark_delivered_many(store, ids);
    store::while_unavailable("mark delivered", until, mark)
        .await
        .map(drop)
}
