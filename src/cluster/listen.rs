//! LISTEN on PostgreSQL for what other instances announce: transfers that
//! left TRACKING (wake held requests, stop polling) and returned signals
//! for transfers this instance owns (poll now).

use std::sync::Arc;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{Cluster, RELISTEN};
use crate::store::{CHANGED, SIGNAL, parse_signal};
use crate::tracker::Signal;
use crate::transfer::{TransferId, Waiters};

pub struct Listener {
    cluster: Cluster,
    waiters: Arc<Waiters>,
}

impl Listener {
    pub fn new(cluster: Cluster, waiters: Arc<Waiters>) -> Self {
        Self { cluster, waiters }
    }

    /// Listen until `stop`, reconnecting after a lost connection. What is
    /// announced while disconnected is missed, so each (re)connection wakes
    /// the requests held here for transfers that left TRACKING meanwhile.
    /// A returned signal forwarded meanwhile is lost: a held pull nudges
    /// again every second, and the forwarder sends a plain one again after
    /// 14 s (`Cluster::recheck_forwarded`).
    pub async fn run(self, url: String, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if let Err(e) = self.listen(&url, &stop).await {
                metrics::counter!("bridge_listen_errors_total").increment(1);
                tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RELISTEN) => {}
                }
            }
        }
    }

    async fn listen(&self, url: &str, stop: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen_all([CHANGED, SIGNAL]).await?;
        self.catch_up().await;
        loop {
            let note = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                note = listener.try_recv() => note?,
            };
            // `None`: the connection was lost, and sqlx has opened a new
            // one and listens again (`recv` would hide that).
            let Some(note) = note else {
                metrics::counter!("bridge_listen_errors_total").increment(1);
                tracing::warn!("LISTEN connection lost; listening again");
                self.catch_up().await;
                continue;
            };
            match note.channel() {
                CHANGED => self.changed(note.payload()).await,
                SIGNAL => self.signal(note.payload()).await,
                _ => {}
            }
        }
    }

    /// Wake the requests held here whose transfer left TRACKING while no
    /// one listened (listening now, later changes are not missed).
    async fn catch_up(&self) {
        let held = self.waiters.held();
        if held.is_empty() {
            return;
        }
        match self.cluster.inner.store.not_tracking(&held).await {
            Ok(ended) => ended.iter().for_each(|id| self.waiters.wake(id, None)),
            Err(e) => tracing::warn!(error = %e, "cannot check held transfers after LISTEN"),
        }
    }

    async fn changed(&self, payload: &str) {
        let Ok(id) = TransferId::parse(payload) else {
            return;
        };
        // Changed by another instance: the held request reads it.
        self.waiters.wake(&id, None);
        self.cluster.ended_elsewhere(id).await;
    }

    async fn signal(&self, payload: &str) {
        let Some((owner, id, held)) = parse_signal(payload) else {
            return;
        };
        if owner == self.cluster.instance() {
            let signal = match held {
                true => Signal::Held,
                false => Signal::Returned,
            };
            self.cluster.signalled(id, signal).await;
        }
    }
}
