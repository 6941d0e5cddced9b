//! Several instances on one database: who polls which transfer.
//!
//! Every instance holds a lease row and renews it every `renew_interval`,
//! one write for all the transfers it owns. A registration is owned by the
//! instance that received it. When an instance stops renewing for
//! `lease_ttl`, the others adopt its TRACKING transfers (in batches they can
//! split between them) and void its outbox claims, and resume polling. An
//! instance that finds its own lease lapsed, or cannot renew it within
//! `lease_ttl`, stops: its transfers may already be polled elsewhere, and a
//! transfer is never polled by two. Leases follow the database's clock
//! (`clock`), not each machine's.
//!
//! Any instance answers the API for any transfer. On PostgreSQL a state
//! change is announced with NOTIFY (held requests wake wherever they wait; the
//! owner stops polling), and a returned signal that reaches a non-owner is
//! forwarded to the owner, or taken over at once when the owner is dead.
//! SQLite has one instance: it adopts everything at start and that is all.

mod clock;
mod config;
mod ledger;
mod listen;
mod signals;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::ClusterConfig;
pub use ledger::{StoreDurationLog, StoreLedger};
pub use signals::Signalled;

use crate::lifecycle::{AdoptFrom, Lifecycle};
use crate::store::{Adopted, Backend, Renewal, Store, StoreError};
use crate::tracker::{TrackState, Tracker};
use crate::transfer::Waiters;

/// Transfers adopted per transaction.
const ADOPT_BATCH: u32 = 500;

/// This instance's part in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    lifecycle: Lifecycle,
    tracker: Tracker,
    config: ClusterConfig,
    /// This run's start time, to the nanosecond: with the instance id, whose
    /// lease it is (a later run with the same id takes it over).
    started: String,
    /// When `join` wrote the lease (just before).
    joined: std::sync::OnceLock<Instant>,
    /// Called with the number of live instances after each renewal (the
    /// upstream spike limit is shared among them).
    on_live: Box<dyn Fn(u32) + Send + Sync>,
}

impl Cluster {
    pub fn new(
        store: Store,
        lifecycle: Lifecycle,
        tracker: Tracker,
        config: ClusterConfig,
        on_live: impl Fn(u32) + Send + Sync + 'static,
    ) -> Self {
        let inner = Inner {
            store,
            lifecycle,
            tracker,
            config,
            started: crate::transfer::clock::now_rfc3339(),
            joined: std::sync::OnceLock::new(),
            on_live: Box::new(on_live),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    pub fn instance(&self) -> &str {
        self.inner.lifecycle.instance()
    }

    fn ttl_ms(&self) -> i64 {
        self.inner.config.lease_ttl.as_millis() as i64
    }

    /// Take the lease, and what this instance owned before (a run with the
    /// same id) or nobody owns; start tracking it. How many. On SQLite,
    /// everything TRACKING.
    pub async fn join(&self) -> Result<usize, StoreError> {
        let store = &self.inner.store;
        if store.backend() == Backend::Sqlite {
            let adopted = self.inner.lifecycle.adopt(AdoptFrom::Everyone).await?;
            let count = adopted.len();
            self.track(adopted).await;
            return Ok(count);
        }
        clock::follow_database(store).await;
        let written = Instant::now();
        store
            .join(self.instance(), &self.inner.started, self.ttl_ms())
            .await?;
        let _ = self.inner.joined.set(written);
        store.prune_instances().await?;
        // A run that keeps its predecessor's id takes back what it owned:
        // no one adopts from a lease that is live again.
        let own = self.inner.lifecycle.adopt(AdoptFrom::Own).await?;
        let count = own.len();
        self.track(own).await;
        // What the dead left is adopted by `run`'s first round, at once,
        // where renewals keep the lease while it takes long.
        Ok(count + self.adopt_round(None).await?)
    }

    /// Renew and adopt until `work_stop`, then only renew until `stop`, and
    /// give the lease up. `stop` comes after the last poll and delivery of a
    /// clean stop: until then the lease keeps others from adopting (and
    /// delivering again) what is still in flight here. Fires `fence` when
    /// the lease was lost (it expired, or a later run took this instance's
    /// id), so the process stops polling.
    pub async fn run(
        self,
        waiters: Arc<Waiters>,
        url: String,
        [work_stop, stop]: [CancellationToken; 2],
        fence: CancellationToken,
    ) {
        // SQLite has one instance: no lease to keep, nobody to adopt from.
        if self.inner.store.backend() == Backend::Sqlite {
            return;
        }
        let listener = listen::Listener::new(self.clone(), waiters);
        tokio::spawn(listener.run(url, stop.clone()));
        if let Err(why) = self.keep_lease(&work_stop, &stop).await {
            return self.fenced(&fence, &why);
        }
        let left = self.inner.store.leave(self.instance(), &self.inner.started);
        if let Err(e) = left.await {
            tracing::warn!(error = %e, "could not give the lease up; others adopt after lease_ttl");
        }
    }

    /// Renew every `renew_interval` until `stop`, and adopt from the dead
    /// after each renewal until `work_stop` (nothing adopted while stopping
    /// would be polled). `Err(why)` when the lease is lost.
    async fn keep_lease(
        &self,
        work_stop: &CancellationToken,
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let (ttl, interval) = (
            self.inner.config.lease_ttl,
            self.inner.config.renew_interval,
        );
        // The lease runs from when `join` wrote it.
        let joined = self.inner.joined.get().copied();
        let mut renewed = joined.unwrap_or_else(Instant::now);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            match self.renew_by(renewed + ttl).await? {
                Some(at) => renewed = at,
                None => continue,
            }
            // Adoption leaves a renewal interval for the next renewal.
            if !work_stop.is_cancelled() {
                self.adopt_by(renewed + ttl.saturating_sub(interval)).await;
            }
        }
    }

    fn fenced(&self, fence: &CancellationToken, why: &str) {
        metrics::counter!("bridge_lease_lost_total").increment(1);
        tracing::error!(
            instance = self.instance(),
            why,
            "lease lost: stopping so no transfer is polled twice"
        );
        fence.cancel();
    }

    /// Renew the lease before `deadline`, past which it may have lapsed
    /// and others adopted from this instance, however the database stalls.
    /// `Some(when)`: renewed as of `when`; `None`: failed, retried at the
    /// next tick; `Err(why)`: fence.
    async fn renew_by(&self, deadline: Instant) -> Result<Option<Instant>, String> {
        let sent = Instant::now();
        match tokio::time::timeout_at(deadline, self.renew()).await {
            Ok(Ok(Renewal::Held)) => Ok(Some(sent)),
            Ok(Ok(Renewal::Lost)) => Err("the lease had expired".into()),
            Err(_) => Err("no renewal within lease_ttl".into()),
            Ok(Err(e)) if Instant::now() >= deadline => Err(format!("cannot renew the lease: {e}")),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lease renewal failed; retrying");
                Ok(None)
            }
        }
    }

    /// One renewal: follow the database's clock, extend the lease, count
    /// the living.
    async fn renew(&self) -> Result<Renewal, StoreError> {
        let store = &self.inner.store;
        clock::follow_database(store).await;
        let renewal = store.renew(self.instance(), &self.inner.started, self.ttl_ms());
        if renewal.await? == Renewal::Lost {
            return Ok(Renewal::Lost);
        }
        let live = store.live_instances().await?.max(1);
        metrics::gauge!("bridge_instances_live").set(f64::from(live));
        (self.inner.on_live)(live);
        Ok(Renewal::Held)
    }

    /// Adopt from the dead, giving up at `deadline` (the lease needs
    /// renewing): the next round goes on where this one stopped.
    async fn adopt_by(&self, deadline: Instant) {
        match tokio::time::timeout_at(deadline, self.adopt_from_dead()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "adoption failed; the next round retries"),
            Err(_) => {
                tracing::warn!("adoption ran into the next renewal's time; the next round goes on")
            }
        }
    }

    /// Adopt from every instance whose lease expired, and void its claims.
    async fn adopt_from_dead(&self) -> Result<usize, StoreError> {
        let store = &self.inner.store;
        let mut count = 0;
        for dead in store.dead_instances().await? {
            let released = store.release_claims_of(&dead).await?;
            let adopted = self.adopt_round(Some(&dead)).await?;
            count += adopted;
            tracing::warn!(instance = self.instance(), from = %dead, transfers = adopted, outbox_claims = released, "adopted from an instance whose lease expired");
        }
        Ok(count)
    }

    /// Adopt and track every transfer of `from` this instance can get;
    /// how many. Each batch is tracked as it commits, so an adoption cut
    /// short (see [`Self::adopt_by`]) leaves nothing owned and unpolled.
    async fn adopt_round(&self, from: Option<&str>) -> Result<usize, StoreError> {
        let mut count = 0;
        loop {
            let batch = AdoptFrom::Dead(from, ADOPT_BATCH);
            let adopted = self.inner.lifecycle.adopt(batch).await?;
            let done = (adopted.len() as u32) < ADOPT_BATCH;
            count += adopted.len();
            self.track(adopted).await;
            if done {
                return Ok(count);
            }
        }
    }

    async fn track(&self, adopted: Vec<Adopted>) {
        for Adopted { transfer, .. } in adopted {
            let integration = self
                .inner
                .tracker
                .integration(transfer.integration.as_deref());
            let state = TrackState::resumed(&transfer, integration);
            self.inner.tracker.track_per_policy(state).await;
        }
    }
}

/// How long [`listen::Listener`] waits before reconnecting.
const RELISTEN: Duration = Duration::from_secs(1);
