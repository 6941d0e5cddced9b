//! A change to end a transfer, as it waits for the group committer, and
//! the transfers a group's endings take as known instead of reading them.

use std::collections::HashMap;
use std::sync::Arc;

use super::Finish;
use crate::store::Conn;
use crate::transfer::{BridgeState, Transfer, TransferId};
use crate::upstream::Fetched;

/// A [`Finish`] that can wait in the committer's queue: what it shares is
/// shared, not copied.
pub(super) struct OwnedFinish {
    state: BridgeState,
    reason: Option<String>,
    seen: Option<Arc<Fetched>>,
    polls: Option<u32>,
    known: Option<Arc<Transfer>>,
}

impl OwnedFinish {
    pub(super) fn new(f: &Finish<'_>) -> Self {
        Self {
            state: f.state,
            reason: f.reason.map(str::to_owned),
            seen: f.seen.cloned(),
            polls: f.polls,
            known: f.known.cloned(),
        }
    }

    /// Whether it came with the transfer it ends (see [`Finish::known`]).
    pub(super) fn carries_known(&self) -> bool {
        self.known.is_some()
    }

    pub(super) fn as_finish(&self) -> Finish<'_> {
        Finish {
            state: self.state,
            reason: self.reason.as_deref(),
            seen: self.seen.as_ref(),
            polls: self.polls,
            known: self.known.as_ref(),
        }
    }
}

/// The transfers `changes` end, as each change saw them (see
/// [`Finish::known`]), when every change came with its transfer, still
/// TRACKING, and records what the upstream said (which replaces the stored
/// resource the brought transfer leaves out): then the endings need no
/// read. Only where statements queue
/// (SQLite, see `store::Conn::with_next`), which is where the read is a
/// hand-off of its own.
pub(super) fn as_known(
    changes: &[(&TransferId, Finish<'_>)],
    tx: &Conn,
) -> Option<HashMap<String, Arc<Transfer>>> {
    if !tx.queues() {
        return None;
    }
    // Sized up front: collecting into an `Option` hides the count from the
    // map, which then rehashed its way up a burst's group of 128 (0.75% of
    // the bridge's CPU over a 10,000-completion drain, `perf`). Shared, not
    // cloned: a map of 128 whole transfers was over 84 KiB, a large page
    // of the allocator's, mapped from the OS for each group (see `alloc`).
    let mut known = HashMap::with_capacity(changes.len());
    for (id, f) in changes {
        let tracking = |t: &&Arc<Transfer>| t.id == **id && t.state == BridgeState::Tracking;
        let transfer = f.known.filter(tracking).filter(|_| f.seen.is_some())?;
        known.insert(id.as_str().to_owned(), Arc::clone(transfer));
    }
    Some(known)
}
