//! What the adaptive policy learns about conversation lengths, kept and
//! shared. Each instance writes the lengths it observed in batches every
//! `polling.learn_sync_interval` (never one write per completion), reads
//! back what the others observed since, and at start loads the recent
//! history, so a restart or a new instance does not begin from the prior.
//! The store implements [`DurationLog`] (wired in the app); the tracker
//! does not know the store.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Where learned lengths are kept, in seconds, each at a position (`seq`).
pub trait DurationLog: Send + Sync + 'static {
    /// Record lengths this instance observed.
    fn record(&self, seconds: Vec<f64>) -> BoxFuture<'_, anyhow::Result<()>>;
    /// The latest `limit` lengths recorded by anyone, oldest first.
    fn recent(&self, limit: u32) -> BoxFuture<'_, anyhow::Result<Vec<(i64, f64)>>>;
    /// Lengths other instances recorded after position `after`, oldest
    /// first, at most `limit`.
    fn since(&self, after: i64, limit: u32) -> BoxFuture<'_, anyhow::Result<Vec<(i64, f64)>>>;
    /// Keep about the latest `keep` lengths.
    fn prune(&self, keep: u32) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// Applies lengths learned elsewhere to the policy's model.
pub(super) type Sink = Box<dyn Fn(&[Duration]) + Send + Sync>;

/// History kept and loaded, in learning windows: older observations weigh
/// e^-2 or less in the model.
const HISTORY_WINDOWS: u32 = 2;
/// Rows read per query.
const PAGE: u32 = 1000;
/// Unwritten lengths kept while the store is unreachable; beyond, the oldest
/// are dropped (statistics, not records).
const MAX_PENDING: usize = 10_000;

/// The hub between an adaptive policy and a [`DurationLog`]; cheap to clone.
#[derive(Clone, Default)]
pub struct Learned {
    inner: Arc<Inner>,
}

struct Inner {
    pending: Mutex<Vec<f64>>,
    sink: Mutex<Option<Arc<Sink>>>,
    /// Position of the last length read back; -1 until the history is loaded.
    cursor: AtomicI64,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            sink: Mutex::default(),
            cursor: AtomicI64::new(-1),
        }
    }
}

impl Learned {
    /// The policy that learned lengths are applied to (the latest attached).
    pub(super) fn attach(&self, sink: Sink) {
        *lock(&self.inner.sink) = Some(Arc::new(sink));
    }

    /// A length this instance observed, to be written with the next batch.
    pub(super) fn observed(&self, length: Duration) {
        let mut pending = lock(&self.inner.pending);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push(length.as_secs_f64());
    }

    fn apply(&self, rows: &[(i64, f64)]) {
        let Some((last, _)) = rows.last() else {
            return;
        };
        self.inner.cursor.fetch_max(*last, Ordering::SeqCst);
        let sink = lock(&self.inner.sink).clone();
        if let Some(sink) = sink {
            let lengths: Vec<Duration> = rows
                .iter()
                // A row out of range (written by hand, or corrupted) is
                // skipped: `from_secs_f64` would panic on it.
                .filter_map(|(_, s)| Duration::try_from_secs_f64(*s).ok())
                .collect();
            sink(&lengths);
        }
    }

    /// Learn the recent history; true once done (it is done once).
    pub async fn load(&self, log: &dyn DurationLog, window: u32) -> anyhow::Result<bool> {
        if self.inner.cursor.load(Ordering::SeqCst) >= 0 {
            return Ok(false);
        }
        let rows = log.recent(window.saturating_mul(HISTORY_WINDOWS)).await?;
        self.inner.cursor.store(0, Ordering::SeqCst);
        self.apply(&rows);
        tracing::info!(lengths = rows.len(), "loaded learned conversation lengths");
        Ok(true)
    }

    /// Write this instance's new lengths and learn the others'; the number
    /// learned from others.
    pub async fn exchange(&self, log: &dyn DurationLog, window: u32) -> anyhow::Result<usize> {
        self.flush(log).await?;
        let mut learned = 0;
        loop {
            let after = self.inner.cursor.load(Ordering::SeqCst).max(0);
            let rows = log.since(after, PAGE).await?;
            learned += rows.len();
            self.apply(&rows);
            if rows.len() < PAGE as usize {
                break;
            }
        }
        log.prune(window.saturating_mul(HISTORY_WINDOWS * 2))
            .await?;
        Ok(learned)
    }

    async fn flush(&self, log: &dyn DurationLog) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut *lock(&self.inner.pending));
        if batch.is_empty() {
            return Ok(());
        }
        if let Err(e) = log.record(batch.clone()).await {
            let mut pending = lock(&self.inner.pending);
            let newer = std::mem::replace(&mut *pending, batch);
            pending.extend(newer);
            let excess = pending.len().saturating_sub(MAX_PENDING);
            pending.drain(..excess);
            return Err(e);
        }
        Ok(())
    }

    /// Load, then exchange every `every` until `stop`; a last write at stop.
    pub async fn sync(
        self,
        log: Arc<dyn DurationLog>,
        every: Duration,
        window: u32,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            // Exchanging before the history is loaded would skip it.
            let synced = match self.load(log.as_ref(), window).await {
                Ok(_) => self.exchange(log.as_ref(), window).await.map(drop),
                Err(e) => Err(e),
            };
            if let Err(e) = synced {
                tracing::warn!(error = %e, "cannot share learned conversation lengths; retrying");
            }
        }
        if let Err(e) = self.flush(log.as_ref()).await {
            tracing::warn!(error = %e, "learned conversation lengths not written at stop");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoned only by a panic mid-push; the data is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
