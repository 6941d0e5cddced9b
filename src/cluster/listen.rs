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
    /// announced while disconnected is missed: held requests still end at
    /// their deadline, and owners still poll on schedule.
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
        loop {
            let note = tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                note = listener.recv() => note?,
            };
            match note.channel() {
                CHANGED => self.changed(note.payload()).await,
                SIGNAL => self.signal(note.payload()).await,
                _ => {}
            }
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
