//! Reads of one transfer with its actions that arrive together share one
//! statement.
//!
//! On SQLite every statement is a round trip to a connection's worker
//! thread, and sqlx adds a second one when the connection goes back to the
//! pool: two thread hand-offs per read, each waking a thread and switching
//! to it. In a burst of 10,000 `/returned` signals (64 in flight, each
//! reading its transfer), one read was 13% of the bridge's CPU (0.035 of
//! 0.265 ms per completion, measured by reading twice). So the reads go to
//! one task that starts a statement for what is queued (at most
//! `MAX_BATCH` transfers) while fewer than `IN_FLIGHT` run; what arrives
//! meanwhile waits for the next. A lone read starts at once, with the
//! single-transfer statement: nothing lingers, so an idle bridge answers as
//! fast as before.
//!
//! If a shared statement fails, each read of it runs again alone, so every
//! caller gets the answer its own statement would have given.
//!
//! On SQLite the task keeps the reader connections it used (at most
//! `IN_FLIGHT`) instead of giving each back to the pool, and takes the one
//! used last first. Each connection given back cost a second round trip to
//! its worker thread (sqlx pings it on the way back: 2,000 signalled
//! transfers, one read each: the SQLite threads went to sleep 24,557 times
//! with it, 22,779 without), and the pool hands its idle connections out in
//! turn, so in a burst every read took the connection idle longest. On
//! PostgreSQL the readers are the store's one pool, shared with the
//! writes, so each goes back.

use std::sync::{Arc, Mutex};

use sqlx::Any;
use sqlx::pool::PoolConnection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::views::{Viewed, with_transfer, with_transfers};
use crate::store::{Backend, Store, StoreError};
use crate::transfer::TransferId;

/// Statements running at once. Two cores run at most two; a few more keep
/// one waiting on the disk from holding the rest.
const IN_FLIGHT: usize = 4;
/// Transfers per statement at most.
const MAX_BATCH: usize = 64;
/// Reads waiting for a statement; callers wait when it is full.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Option<Viewed>, StoreError>>;

/// The handle the API's single-transfer reads go through; cheap to clone.
/// The task stops once every handle is gone.
#[derive(Clone)]
pub struct ViewReads {
    store: Store,
    queue: mpsc::Sender<(TransferId, Reply)>,
}

impl ViewReads {
    /// Start the reading task (on the current runtime).
    pub fn start(store: Store) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(store.clone(), rx));
        Self { store, queue }
    }

    /// The transfer and its actions, read together; `None` when no transfer
    /// has this id.
    pub async fn get(&self, id: &TransferId) -> Result<Option<Viewed>, StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.queue.send((id.clone(), reply)).await.is_ok()
            && let Ok(result) = answer.await
        {
            return result;
        }
        // The task is gone (the runtime is shutting down): read alone.
        let mut reader = self.store.reader().acquire().await?;
        with_transfer(&mut reader, self.store.backend(), id).await
    }
}

/// The reader connections the task keeps between its statements, the one
/// used last on top (SQLite; see the module's note).
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<PoolConnection<Any>>>>);

impl Kept {
    /// The connection used last, or one from the pool.
    async fn take(&self, store: &Store) -> Result<PoolConnection<Any>, StoreError> {
        let kept = self.0.lock().expect("no panic while held").pop();
        match kept {
            Some(conn) => Ok(conn),
            None => Ok(store.reader().acquire().await?),
        }
    }

    /// Keep a connection whose statement succeeded; on PostgreSQL, or once
    /// the pool is closing, it goes back (and is closed).
    fn keep(&self, store: &Store, conn: PoolConnection<Any>) {
        let mut kept = self.0.lock().expect("no panic while held");
        // Under the lock: once `until_closed` has emptied it, nothing stays.
        if store.backend() == Backend::Sqlite && !store.reader().is_closed() {
            kept.push(conn);
        }
    }

    /// Give every kept connection back when the pool closes: its `close`
    /// waits for every connection out of it.
    fn until_closed(&self, store: &Store) {
        let (kept, reader) = (self.clone(), store.reader().clone());
        tokio::spawn(async move {
            reader.close_event().await;
            kept.0.lock().expect("no panic while held").clear();
        });
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<(TransferId, Reply)>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let kept = Kept::default();
    kept.until_closed(&store);
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let mut batch = Vec::new();
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let (store, kept) = (store.clone(), kept.clone());
        tokio::spawn(async move {
            answer(&store, &kept, batch).await;
            drop(slot);
        });
    }
}

/// One statement for the whole batch; each read alone if it fails.
async fn answer(store: &Store, kept: &Kept, mut batch: Vec<(TransferId, Reply)>) {
    if batch.len() == 1 {
        let (id, reply) = batch.pop().expect("one read");
        let _ = reply.send(alone(store, kept, &id).await);
        return;
    }
    let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
    match together(store, kept, &ids).await {
        Ok(mut found) => {
            let last = last_reads(&ids);
            for ((id, reply), last) in batch.into_iter().zip(last) {
                // The same transfer read twice in one batch: a copy for all
                // but the last.
                let view = match last {
                    true => found.remove(id.as_str()),
                    false => found.get(id.as_str()).cloned(),
                };
                let _ = reply.send(Ok(view));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, reads = batch.len(), "shared read failed; each alone");
            for (id, reply) in batch {
                let _ = reply.send(alone(store, kept, &id).await);
            }
        }
    }
}

/// One transfer's read, on a kept connection. A connection whose statement
/// failed goes back to the pool, which pings it and drops it if broken.
async fn alone(store: &Store, kept: &Kept, id: &TransferId) -> Result<Option<Viewed>, StoreError> {
    let mut conn = kept.take(store).await?;
    let read = with_transfer(&mut conn, store.backend(), id).await?;
    kept.keep(store, conn);
    Ok(read)
}

/// [`alone`] for many transfers in one statement.
async fn together(
    store: &Store,
    kept: &Kept,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, Viewed>, StoreError> {
    let mut conn = kept.take(store).await?;
    let read = with_transfers(&mut conn, store.backend(), ids).await?;
    kept.keep(store, conn);
    Ok(read)
}

/// For each read, whether no later read in the batch is of the same transfer.
fn last_reads(ids: &[&str]) -> Vec<bool> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut last: Vec<bool> = ids.iter().rev().map(|id| seen.insert(*id)).collect();
    last.reverse();
    last
}

#[cfg(test)]
#[path = "view_reads_tests.rs"]
mod tests;
