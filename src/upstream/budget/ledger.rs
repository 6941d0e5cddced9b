//! Where the day's request count lives. The budget reserves small batches
//! of the UTC day's requests from a [`Ledger`] and spends them locally, so
//! several instances (and a restarted one) share one count without a write
//! per request. The store implements it for a deployment (wired in the app);
//! [`MemoryLedger`] serves one process that may forget at restart (tests,
//! benches).

use std::sync::Mutex;

use futures::future::BoxFuture;
use time::Date;

/// What a reservation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Requests now reserved for the caller (0: the cap was reached).
    pub granted: u32,
    /// The day's total reserved by everyone, this grant included.
    pub spent: u32,
}

/// The day's shared request count.
pub trait Ledger: Send + Sync + 'static {
    /// Reserve up to `want` of `day`'s requests, never taking the day's total
    /// past `cap`; atomic against every other reserver.
    fn reserve(&self, day: Date, want: u32, cap: u32) -> BoxFuture<'_, anyhow::Result<Grant>>;

    /// Give back `unused` requests reserved from `day` and never sent.
    fn release(&self, day: Date, unused: u32) -> BoxFuture<'_, anyhow::Result<()>>;

    /// The day's total reserved by everyone.
    fn spent(&self, day: Date) -> BoxFuture<'_, anyhow::Result<u32>>;
}

/// A ledger in this process's memory: the count starts at zero at start.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    day: Mutex<Option<(Date, u32)>>,
}

impl MemoryLedger {
    fn update<T>(&self, day: Date, f: impl FnOnce(&mut u32) -> T) -> T {
        let mut guard = self.day.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none_or(|(d, _)| d != day) {
            *guard = Some((day, 0));
        }
        let (_, spent) = guard.as_mut().expect("set above");
        f(spent)
    }
}

impl Ledger for MemoryLedger {
    fn reserve(&self, day: Date, want: u32, cap: u32) -> BoxFuture<'_, anyhow::Result<Grant>> {
        let grant = self.update(day, |spent| {
            let granted = want.min(cap.saturating_sub(*spent));
            *spent += granted;
            Grant {
                granted,
                spent: *spent,
            }
        });
        Box::pin(async move { Ok(grant) })
    }

    fn release(&self, day: Date, unused: u32) -> BoxFuture<'_, anyhow::Result<()>> {
        self.update(day, |spent| *spent = spent.saturating_sub(unused));
        Box::pin(async { Ok(()) })
    }

    fn spent(&self, day: Date) -> BoxFuture<'_, anyhow::Result<u32>> {
        let spent = self.update(day, |spent| *spent);
        Box::pin(async move { Ok(spent) })
    }
}

impl super::Budget {
    /// Reserve the next batch of today's requests for `priority` (routine
    /// reservations stop short of the signal reserve) unless this instance
    /// already holds `enough`. One at a time; a request that finds the batch
    /// already refilled goes on with it.
    pub(super) async fn refill(&self, priority: super::Priority, enough: u32) {
        let _one = self.refilling.lock().await;
        let cap = self.limit_for(priority);
        let (day, want) = {
            let mut state = self.lock();
            state.roll_day();
            if state.held >= enough {
                return;
            }
            let left = cap.saturating_sub(state.spent);
            let now = tokio::time::Instant::now();
            (state.day, state.grant.next(now, self.spike.share(), left))
        };
        match self.ledger.reserve(day, want, cap).await {
            Ok(grant) => {
                let mut state = self.lock();
                state.grant.granted(tokio::time::Instant::now());
                // Past midnight the grant belongs to a day that is over.
                if state.day == day {
                    state.held += grant.granted;
                    state.spent = grant.spent.max(state.held);
                }
            }
            Err(e) => {
                metrics::counter!("bridge_upstream_budget_ledger_errors_total").increment(1);
                tracing::warn!(error = %e, "cannot reserve upstream requests; retrying");
                tokio::time::sleep(super::LEDGER_RETRY).await;
            }
        }
    }

    /// Reserve the first batch before any request needs it (at start), so
    /// the first requests do not wait for the store, and learn the day's
    /// total meanwhile. A failure is logged; requests reserve again.
    pub async fn reserve_ahead(&self) {
        self.refill(super::Priority::Routine, 1).await;
    }

    /// Read the day's total from the ledger: at start, so `/readyz` shows
    /// what earlier runs and other instances spent before this one sends
    /// anything, and whenever a fresher view is worth a read.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let _one = self.refilling.lock().await;
        let day = {
            let mut state = self.lock();
            state.roll_day();
            state.day
        };
        let spent = self.ledger.spent(day).await?;
        let mut state = self.lock();
        if state.day == day {
            // The ledger's total includes what this instance holds.
            state.spent = spent.max(state.held);
        }
        Ok(())
    }

    /// Give back what this instance reserved and did not send, at a clean
    /// stop, so the others (or the next start) may spend it. After a crash
    /// it simply stays counted.
    pub async fn release_unused(&self) {
        let _one = self.refilling.lock().await;
        let (day, unused) = {
            let mut state = self.lock();
            let unused = std::mem::take(&mut state.held);
            state.spent -= unused;
            (state.day, unused)
        };
        if unused == 0 {
            return;
        }
        match self.ledger.release(day, unused).await {
            Ok(()) => tracing::info!(unused, "returned unsent upstream requests to the budget"),
            Err(e) => tracing::warn!(error = %e, unused, "cannot return unsent requests"),
        }
    }
}
