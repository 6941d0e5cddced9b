//! The store behind the deployment-wide request budget and the shared
//! learned durations: adapters from the upstream's [`Ledger`] and the
//! tracker's [`DurationLog`] to the store's SQL, so neither of those modules
//! depends on the store.

use std::sync::Arc;

use futures::future::BoxFuture;
use time::Date;

use crate::store::Store;
use crate::tracker::DurationLog;
use crate::upstream::{Grant, Ledger};

/// Today's request count in `budget_days`, shared by every instance.
pub struct StoreLedger {
    store: Store,
}

impl StoreLedger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

impl Ledger for StoreLedger {
    fn reserve(&self, day: Date, want: u32, cap: u32) -> BoxFuture<'_, anyhow::Result<Grant>> {
        Box::pin(async move {
            let r = self
                .store
                .reserve_budget(&day.to_string(), want, cap)
                .await?;
            Ok(Grant {
                granted: r.granted,
                spent: r.spent,
            })
        })
    }

    fn release(&self, day: Date, unused: u32) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.store.release_budget(&day.to_string(), unused).await?) })
    }

    fn spent(&self, day: Date) -> BoxFuture<'_, anyhow::Result<u32>> {
        Box::pin(async move { Ok(self.store.budget_spent(&day.to_string()).await?) })
    }
}

/// Learned conversation lengths in `learned_durations`, as this instance.
pub struct StoreDurationLog {
    store: Store,
    instance: Arc<str>,
}

impl StoreDurationLog {
    pub fn new(store: Store, instance: Arc<str>) -> Self {
        Self { store, instance }
    }
}

impl DurationLog for StoreDurationLog {
    fn record(&self, seconds: Vec<f64>) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            Ok(self
                .store
                .record_durations(&self.instance, &seconds)
                .await?)
        })
    }

    fn recent(&self, limit: u32) -> BoxFuture<'_, anyhow::Result<Vec<(i64, f64)>>> {
        Box::pin(async move { Ok(self.store.recent_durations(limit).await?) })
    }

    fn since(&self, after: i64, limit: u32) -> BoxFuture<'_, anyhow::Result<Vec<(i64, f64)>>> {
        Box::pin(async move {
            let rows = self.store.durations_since(after, &self.instance, limit);
            Ok(rows.await?)
        })
    }

    fn prune(&self, keep: u32) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.store.prune_durations(keep).await.map(drop)?) })
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
