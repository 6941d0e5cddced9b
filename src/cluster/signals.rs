//! Returned signals across instances: a signal that reaches a non-owner
//! goes to the owner (NOTIFY), or is taken over at once when the owner is
//! dead, and is looked at again once an owner that died with its lease
//! live would have been adopted from.

use std::sync::Arc;
use std::time::Duration;

use super::Cluster;
use crate::lifecycle::AdoptFrom;
use crate::store::{Backend, StoreError};
use crate::tracker::Signal;
use crate::transfer::{Transfer, TransferId};

/// Where a returned signal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signalled {
    /// This instance polls the transfer now; its upstream GETs so far.
    Here { polls: u32 },
    /// Sent to the instance that owns it.
    Forwarded,
}

impl Signalled {
    /// The live poll count, when this instance tracks the transfer.
    pub fn polls(self) -> Option<u32> {
        match self {
            Self::Here { polls } => Some(polls),
            Self::Forwarded => None,
        }
    }
}

impl Cluster {
    /// The call came back (or a request held here asks again): have
    /// `transfer` polled now, wherever it is owned. `None` only when nobody
    /// can (this instance's tracker is not running).
    pub async fn poll_now(&self, transfer: &Transfer, signal: Signal) -> Option<Signalled> {
        let tracker = &self.inner.tracker;
        let here = |polls: u32| Signalled::Here { polls };
        // For the ending this poll may bring, which records what the GET
        // says: the stored resource it replaces need not travel.
        let known = Some(Arc::new(transfer.without_upstream()));
        if let Some(polls) = tracker.poll_now(transfer.id.clone(), known, signal).await {
            return Some(here(polls));
        }
        let owner = transfer.owner.as_deref();
        if self.inner.store.backend() == Backend::Sqlite || owner == Some(self.instance()) {
            return None;
        }
        match self.take_over(transfer).await {
            Ok(true) => tracker
                .poll_now(transfer.id.clone(), None, signal)
                .await
                .map(here),
            Ok(false) => {
                let owner = owner.unwrap_or_default();
                let sent = self
                    .inner
                    .lifecycle
                    .forward_signal(owner, &transfer.id, signal == Signal::Held)
                    .await;
                if signal == Signal::Returned {
                    self.recheck_forwarded(transfer.id.clone(), owner.to_owned());
                }
                sent.inspect_err(|e| tracing::warn!(error = %e, "cannot forward a returned signal"))
                    .ok()
                    .map(|()| Signalled::Forwarded)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot adopt a returned transfer");
                None
            }
        }
    }

    /// A forwarded signal can be lost: with an owner that died before its
    /// lease lapsed, or in a gap of the owner's LISTEN connection. Whoever
    /// owns the transfer then polls it on schedule, which for a transfer
    /// whose signals are trusted is `safety_interval` away. So once the
    /// owner's lease would have lapsed and been adopted from (`lease_ttl` +
    /// `renew_interval`, and a second), look again: if the transfer is still
    /// TRACKING, signal whoever owns it now, the same owner included (as a
    /// repeated signal, it is spaced like any other).
    fn recheck_forwarded(&self, id: TransferId, owner: String) {
        let config = &self.inner.config;
        let after = config.lease_ttl + config.renew_interval + Duration::from_secs(1);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Ok(Some(now)) = this.inner.store.get(&id).await else {
                return;
            };
            let Some(to) = now.owner.filter(|_| !now.state.is_terminal()) else {
                return;
            };
            tracing::info!(call_transfer_id = %id, from = %owner, to = %to, "a returned signal still unanswered: signalling the owner again");
            if to == this.instance() {
                this.signalled(id, Signal::Returned).await;
            } else if let Err(e) = (this.inner.lifecycle).forward_signal(&to, &id, false).await {
                tracing::warn!(error = %e, "cannot forward a returned signal");
            }
        });
    }

    /// Adopt `transfer` now if its owner is dead; true when this instance
    /// tracks it afterwards.
    async fn take_over(&self, transfer: &Transfer) -> Result<bool, StoreError> {
        let from = AdoptFrom::One(&transfer.id, transfer.owner.as_deref());
        let adopted = self.inner.lifecycle.adopt(from).await?;
        let took = !adopted.is_empty();
        self.track(adopted).await;
        Ok(took)
    }

    /// A signal forwarded to this instance: poll its transfer now.
    pub(super) async fn signalled(&self, id: TransferId, signal: Signal) {
        if self
            .inner
            .tracker
            .poll_now(id.clone(), None, signal)
            .await
            .is_none()
        {
            tracing::debug!(call_transfer_id = %id, "forwarded signal for a transfer no longer tracked here");
        }
    }

    /// Another instance ended this transfer: stop polling it.
    pub(super) async fn ended_elsewhere(&self, id: TransferId) {
        self.inner.tracker.untrack(id).await;
    }
}
