//! A request's turn: past a 429's pause and the day's cap, with a
//! reservation from the store, and a spike-limiter token, for which
//! returned-call signals go first. A routine request can be raised to a
//! signal's turn while it waits (see [`Budget::acquire_raisable`]).

use std::sync::atomic::Ordering;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Budget, LEDGER_RETRY, Priority};

/// Who waits: a priority and, for a routine request, what can raise it.
struct Asker<'a> {
    priority: Priority,
    raised: Option<&'a Notify>,
}

impl Asker<'_> {
    fn as_is(priority: Priority) -> Self {
        Self {
            priority,
            raised: None,
        }
    }

    /// Waits for `wait` unless raised first: then it is a signal from now
    /// on, and says so.
    async fn unless_raised(&mut self, wait: impl Future<Output = ()>) -> bool {
        let Some(raised) = self.raised else {
            wait.await;
            return false;
        };
        tokio::select! {
            biased;
            () = raised.notified() => {
                self.priority = Priority::Signal;
                self.raised = None;
                true
            }
            () = wait => false,
        }
    }
}

impl Budget {
    /// Wait until a request may leave, then count it against today's budget.
    /// Routine polls are expected to have been admitted by
    /// [`Self::admit_routine`] first, so they wait in the tracker's timer
    /// wheel rather than in flight.
    pub async fn acquire(&self, priority: Priority) {
        // No deadline: a poll waits its turn, however long that is.
        let _ = self.acquire_by(priority, None).await;
    }

    /// As [`Budget::acquire`] for a routine request that waits as a signal's
    /// once `raised` is notified: a returned-call signal for the transfer it
    /// polls. Routine requests yield to every waiting signal, so in a storm
    /// of signals over the spike limit it would otherwise wait for the whole
    /// storm, not for its place in it. A reservation from the store under
    /// way is finished first, never given up half-way.
    pub async fn acquire_raisable(&self, raised: &Notify) {
        let asker = Asker {
            priority: Priority::Routine,
            raised: Some(raised),
        };
        let _ = self.wait_turn(asker, None).await;
    }

    /// As [`Budget::acquire`], but when a 429's pause or the day's cap holds
    /// every request back past `deadline`, give up at once with the instant
    /// it lifts: for a request someone waits on (a create), who should hear
    /// "later" rather than hang until midnight. A store too slow to count
    /// the request by `deadline` (a stalled PostgreSQL) gives up then, with
    /// `LEDGER_RETRY` as the hint. (A reservation given up in flight may
    /// still count against the day: at most one batch, as after a crash.)
    pub async fn acquire_by(
        &self,
        priority: Priority,
        deadline: Option<Instant>,
    ) -> Result<(), Instant> {
        let asker = Asker::as_is(priority);
        let Some(by) = deadline else {
            return self.wait_turn(asker, None).await;
        };
        match tokio::time::timeout_at(by, self.wait_turn(asker, deadline)).await {
            Ok(turn) => turn,
            Err(_) => Err(Instant::now() + LEDGER_RETRY),
        }
    }

    async fn wait_turn(
        &self,
        mut asker: Asker<'_>,
        deadline: Option<Instant>,
    ) -> Result<(), Instant> {
        loop {
            let priority = asker.priority;
            if let Some(until) = self.blocked_until(priority) {
                if deadline.is_some_and(|deadline| until > deadline) {
                    return Err(until);
                }
                asker.unless_raised(tokio::time::sleep_until(until)).await;
                continue;
            }
            let (held, batch) = {
                let state = self.lock();
                (state.held, state.grant.size())
            };
            if held == 0 {
                self.refill(priority, 1).await;
                continue;
            }
            // Routine polls top the batch up before it runs out, so a
            // returned-call signal rarely waits for the store's write.
            if priority == Priority::Routine && held <= batch / 2 {
                self.refill(priority, batch / 2 + 1).await;
            }
            // No token when raised meanwhile: look again, as a signal.
            if self.spike_token(&mut asker).await && self.count_with_token(asker.priority).await {
                return Ok(());
            }
        }
    }

    /// Count a request that holds a spike token. If the reservation ran out
    /// while it waited for the token, it reserves again and keeps the token:
    /// going round again would waste the token and queue it behind every
    /// request that came after it.
    async fn count_with_token(&self, priority: Priority) -> bool {
        if self.try_count(priority) {
            return true;
        }
        let ran_out = self.lock().held == 0;
        if !ran_out || self.blocked_until(priority).is_some() {
            return false;
        }
        self.refill(priority, 1).await;
        self.try_count(priority)
    }

    /// A spike-limiter token; a signal overtakes every routine request that
    /// is still waiting. False when the request was raised instead.
    async fn spike_token(&self, asker: &mut Asker<'_>) -> bool {
        if asker.priority == Priority::Signal {
            let _waiting = SignalWaiting::enter(self);
            let _turn = self.turn.lock().await;
            self.spike_ready().await;
            return true;
        }
        loop {
            if asker.unless_raised(self.no_signal_waiting()).await {
                return false;
            }
            let turn = self.turn.lock().await;
            if self.signals_waiting.load(Ordering::SeqCst) > 0 {
                drop(turn);
                continue;
            }
            self.spike_ready().await;
            return true;
        }
    }

    async fn spike_ready(&self) {
        self.spike.ready().await
    }

    async fn no_signal_waiting(&self) {
        loop {
            let idle = self.signals_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.signals_waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Counts a waiting signal for as long as it waits (dropped futures too).
struct SignalWaiting<'a>(&'a Budget);

impl<'a> SignalWaiting<'a> {
    fn enter(budget: &'a Budget) -> Self {
        budget.signals_waiting.fetch_add(1, Ordering::SeqCst);
        Self(budget)
    }
}

impl Drop for SignalWaiting<'_> {
    fn drop(&mut self) {
        if self.0.signals_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.signals_idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    /// Acquire for a signal, then say in which place it got through.
    fn signal(budget: &Arc<Budget>, order: &Arc<AtomicUsize>) -> tokio::task::JoinHandle<usize> {
        let (budget, order) = (budget.clone(), order.clone());
        tokio::spawn(async move {
            budget.acquire(Priority::Signal).await;
            order.fetch_add(1, Ordering::SeqCst)
        })
    }

    /// A routine request behind a stream of signals (10/s, 30 queued),
    /// raised after a second, goes before the signals that came after the
    /// raise, not after the whole stream, and after every signal queued
    /// before it (one that got its token as the reservation ran out keeps
    /// its token and its place).
    #[tokio::test(start_paused = true)]
    async fn a_raised_routine_request_takes_its_place_among_the_signals() {
        let mut config = Config::from_figment(Config::embedded()).unwrap().upstream;
        config.rate_limit_per_s = 10;
        let budget = Arc::new(Budget::new(&config));
        let order = Arc::new(AtomicUsize::new(0));
        let earlier: Vec<_> = (0..30).map(|_| signal(&budget, &order)).collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let raised = Arc::new(Notify::new());
        let routine = {
            let (budget, order, raised) = (budget.clone(), order.clone(), raised.clone());
            tokio::spawn(async move {
                budget.acquire_raisable(&raised).await;
                order.fetch_add(1, Ordering::SeqCst)
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        raised.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let later: Vec<_> = (0..10).map(|_| signal(&budget, &order)).collect();
        let place = routine.await.unwrap();
        for task in later {
            let after = task.await.unwrap();
            assert!(
                place < after,
                "raised at place {place}, a later signal at {after}"
            );
        }
        for task in earlier {
            assert!(
                task.await.unwrap() < place,
                "an earlier signal went after it"
            );
        }
    }
}
