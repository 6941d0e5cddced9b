//! Per-transfer wake-ups for requests held with `?wait=`.
//!
//! A held request registers here before it reads the store, and the state
//! change that ends TRACKING fires [`Waiters::wake`] after its commit, so the
//! request answers the moment the transfer leaves TRACKING. The change that
//! ended it comes with the wake-up, so a request that needs only the
//! transfer (the PBX's `GET …/sip?wait=`) answers without reading it again:
//! on SQLite that read is a hand-off to a reader thread and a dozen page
//! reads of the WAL the commit just wrote, on the path a caller waits on.
//! Nothing sleeps in a loop over the store, and a transfer nobody waits for
//! costs nothing here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::{Transfer, TransferId};

/// Every held request, by transfer; bounded by `http.max_waiters`.
pub struct Waiters {
    slots: Mutex<Slots>,
    max: usize,
}

#[derive(Default)]
struct Slots {
    by_id: HashMap<TransferId, Slot>,
    held: usize,
}

/// One channel per transfer that has at least one held request.
struct Slot {
    tx: watch::Sender<Ended>,
    holders: usize,
}

/// `http.max_waiters` requests are held already.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0} requests are held already (http.max_waiters)")]
pub struct Full(pub usize);

/// A held request's place in line; leaving it (drop) frees the slot.
pub struct Waiter {
    waiters: Arc<Waiters>,
    id: TransferId,
    rx: watch::Receiver<Ended>,
}

/// The transfer as the change that ended TRACKING committed it, when the
/// waker had it (a change made by another instance comes without).
type Ended = Option<Arc<Transfer>>;

impl Waiters {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(Slots::default()),
            max,
        })
    }

    /// Register interest in `id`'s next state change. Any [`Self::wake`]
    /// after this returns is seen by [`Waiter::changed`].
    pub fn hold(self: &Arc<Self>, id: &TransferId) -> Result<Waiter, Full> {
        let mut slots = self.lock();
        if slots.held >= self.max {
            return Err(Full(slots.held));
        }
        slots.held += 1;
        let slot = slots.by_id.entry(id.clone()).or_insert_with(|| Slot {
            tx: watch::Sender::new(None),
            holders: 0,
        });
        slot.holders += 1;
        let rx = slot.tx.subscribe();
        let held = slots.held;
        drop(slots);
        metrics::gauge!("bridge_held_requests").set(held as f64);
        Ok(Waiter {
            waiters: self.clone(),
            id: id.clone(),
            rx,
        })
    }

    /// The transfer's state changed: every request held for it answers now.
    /// `ended`: the transfer as that change committed it, if known.
    pub fn wake(&self, id: &TransferId, ended: Option<&Transfer>) {
        if let Some(slot) = self.lock().by_id.get(id) {
            slot.tx.send_replace(ended.map(|t| Arc::new(t.clone())));
        }
    }

    /// Every transfer a request is held for right now.
    pub fn held(&self) -> Vec<TransferId> {
        self.lock().by_id.keys().cloned().collect()
    }

    /// Whether a request is held for `id` right now.
    pub fn is_held(&self, id: &TransferId) -> bool {
        self.lock().by_id.contains_key(id)
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Waiter {
    /// Resolves at the first state change after [`Waiters::hold`].
    pub async fn changed(&mut self) {
        // The sender lives while this waiter does, so this cannot fail.
        let _ = self.rx.changed().await;
    }

    /// The transfer as the change that woke this waiter committed it; `None`
    /// before a wake-up, or when the waker did not have it.
    pub fn ended(&self) -> Ended {
        self.rx.borrow().clone()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut slots = self.waiters.lock();
        slots.held -= 1;
        if let Some(slot) = slots.by_id.get_mut(&self.id) {
            slot.holders -= 1;
            if slot.holders == 0 {
                slots.by_id.remove(&self.id);
            }
        }
        let held = slots.held;
        drop(slots);
        metrics::gauge!("bridge_held_requests").set(held as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id(raw: &str) -> TransferId {
        TransferId::parse(raw).unwrap()
    }

    /// Two requests held for the same transfer.
    fn two_held(waiters: &Arc<Waiters>, raw: &str) -> (Waiter, Waiter) {
        (
            waiters.hold(&id(raw)).unwrap(),
            waiters.hold(&id(raw)).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_wake_after_hold_reaches_every_waiter_of_that_transfer_only() {
        let waiters = Waiters::new(10);
        let (mut a, mut b) = two_held(&waiters, "t1");
        let mut other = waiters.hold(&id("t2")).unwrap();
        waiters.wake(&id("t1"), None);
        let soon = Duration::from_millis(200);
        assert!(tokio::time::timeout(soon, a.changed()).await.is_ok());
        assert!(tokio::time::timeout(soon, b.changed()).await.is_ok());
        assert!(tokio::time::timeout(soon, other.changed()).await.is_err());
    }

    /// The transfer the change committed reaches every waiter with the
    /// wake-up; a wake-up without one (another instance's change) says so.
    #[tokio::test]
    async fn a_wake_brings_the_transfer_it_ended_when_the_waker_had_it() {
        let waiters = Waiters::new(10);
        let (mut a, mut b) = two_held(&waiters, "t1");
        assert!(a.ended().is_none(), "nothing before a wake-up");
        let ended = Transfer {
            state: crate::transfer::BridgeState::Completed,
            upstream_status: Some("COMPLETED".into()),
            polls: 3,
            return_signal: Some(true),
            ..Transfer::tracking(id("t1"), time::OffsetDateTime::UNIX_EPOCH)
        };
        waiters.wake(&id("t1"), Some(&ended));
        a.changed().await;
        assert_eq!(a.ended().as_deref(), Some(&ended));
        assert_eq!(b.ended().as_deref(), Some(&ended));
        waiters.wake(&id("t1"), None);
        b.changed().await;
        assert!(b.ended().is_none(), "the last wake-up is what counts");
    }

    #[tokio::test]
    async fn the_cap_counts_held_requests_and_drops_free_them() {
        let waiters = Waiters::new(2);
        let a = waiters.hold(&id("t1")).unwrap();
        let _b = waiters.hold(&id("t2")).unwrap();
        assert!(matches!(waiters.hold(&id("t3")), Err(Full(2))));
        drop(a);
        assert_eq!(waiters.lock().held, 1);
        assert!(waiters.hold(&id("t3")).is_ok());
        assert!(waiters.lock().by_id.len() <= 2, "emptied slots are removed");
    }

    #[tokio::test]
    async fn a_wake_before_hold_is_not_seen() {
        let waiters = Waiters::new(10);
        waiters.wake(&id("t1"), None);
        let mut late = waiters.hold(&id("t1")).unwrap();
        let quick = tokio::time::timeout(Duration::from_millis(50), late.changed());
        assert!(quick.await.is_err());
    }
}
