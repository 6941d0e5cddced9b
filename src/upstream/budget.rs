//! The upstream request budget: one limiter shared by every request.
//!
//! The vendor enforces a spike limit (requests/s) and a daily quota that
//! resets at 00:00 UTC; past either, every call gets 429 (UPSTREAM.md,
//! "Rate limits"). So, for every request, in this order:
//! - routine polls are paced so the rest of the day's budget lasts until the
//!   reset (`pace::Pacer`): under load they slow down together, none starve;
//! - a 429 pauses the whole client (its `Retry-After`, else 1, 2, 4 s);
//! - the daily budget is never exceeded, and routine polls stop short of
//!   `signal_reserve`, which only returned-call signals and creates spend;
//! - the spike limit spaces requests evenly, signals first.
//!
//! The daily count is one for the whole deployment: requests are reserved
//! from a [`Ledger`] (the store, in the app) in batches (`budget_batch`, more
//! under load: `grant`) and spent locally; what this instance has not spent yet is its own, what
//! others reserved counts as spent. The spike limit is split among the live
//! instances ([`Budget::share_spike`]), and so is the even pace.
//!
//! Credentials refused (401/403) open the [`AuthCircuit`], which the tracker
//! consults before polling at all.

mod clock;
mod grant;
mod ledger;
mod pace;
mod snapshot;
mod spike;
#[cfg(test)]
#[path = "budget/budget_tests.rs"]
mod tests;
mod turn;

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::Date;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use clock::{TokioClock, UtcClock};
pub use ledger::{Grant, Ledger, MemoryLedger};
pub use snapshot::BudgetSnapshot;

use super::UpstreamConfig;
use super::circuit::AuthCircuit;
use super::client::Fetched;
use super::error::UpstreamError;
use crate::backoff::Backoff;
use grant::GrantSize;
use pace::{Load, Pacer};
use spike::Spike;

/// After the ledger failed, ask again this much later. Requests wait
/// meanwhile: without a reservation the cap could not be kept.
const LEDGER_RETRY: Duration = Duration::from_secs(1);

/// The 429 pause without `Retry-After`: vendor guidance is 1, 2, 4 s.
const PAUSE_429: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));

/// Who is asking; returned-call signals and creates are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Signal,
    Routine,
}

pub struct Budget {
    spike: Spike,
    ledger: Arc<dyn Ledger>,
    /// One reservation at a time: concurrent requests share its batch.
    refilling: tokio::sync::Mutex<()>,
    daily_limit: u32,
    signal_reserve: u32,
    pacing_window: Duration,
    state: Mutex<State>,
    /// Signals waiting for a spike token; routine requests yield to them.
    signals_waiting: AtomicUsize,
    signals_idle: Notify,
    /// One request at a time waits on the spike limiter, so order is ours.
    turn: tokio::sync::Mutex<()>,
    circuit: AuthCircuit,
}

struct State {
    clock: UtcClock,
    day: Date,
    /// The day's total reserved by every instance, as of our last reservation.
    spent: u32,
    /// The part of it reserved by this instance and not sent yet.
    held: u32,
    /// No request leaves before this instant (set by 429s).
    paused_until: Option<Instant>,
    consecutive_429: u32,
    pacer: Pacer,
    load: Load,
    /// Requests the next reservation asks for (see `grant`).
    grant: GrantSize,
}

impl Budget {
    pub fn new(config: &UpstreamConfig) -> Self {
        Self::with_clock(config, UtcClock::system())
    }

    pub fn with_clock(config: &UpstreamConfig, clock: UtcClock) -> Self {
        let now = Instant::now();
        Self {
            spike: Spike::new(config.rate_limit_per_s),
            ledger: Arc::new(MemoryLedger::default()),
            refilling: tokio::sync::Mutex::new(()),
            daily_limit: config.daily_budget,
            signal_reserve: config.signal_reserve.min(config.daily_budget),
            pacing_window: config.pacing_window,
            state: Mutex::new(State {
                day: clock.now().date(),
                clock,
                spent: 0,
                held: 0,
                paused_until: None,
                consecutive_429: 0,
                pacer: Pacer::new(now),
                load: Load::new(now),
                grant: GrantSize::new(config.budget_batch),
            }),
            signals_waiting: AtomicUsize::new(0),
            signals_idle: Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            circuit: AuthCircuit::new(config.auth_probe_initial, config.auth_probe_max),
        }
    }

    /// Count today's requests in `ledger`, shared with whoever else uses it.
    pub fn with_ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// Take this instance's share of the spike limit (and of the even pace)
    /// among `live_instances`; the cluster calls it after each lease renewal.
    pub fn share_spike(&self, live_instances: u32) {
        self.spike.split(live_instances);
    }

    /// This instance's spike limit, requests/s.
    pub fn spike_share(&self) -> u32 {
        self.spike.share()
    }

    pub fn circuit(&self) -> &AuthCircuit {
        &self.circuit
    }

    /// Learn from an answer: a 429 pauses every request, not just this one;
    /// 401/403 (and the answers that prove credentials) drive the circuit.
    pub fn observe(&self, result: &Result<Fetched, UpstreamError>) {
        self.circuit.record(result);
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.label(),
        };
        metrics::counter!("bridge_upstream_requests_total", "outcome" => outcome).increment(1);
        let mut state = self.lock();
        match result {
            Err(UpstreamError::Status {
                status: 429,
                retry_after,
                ..
            }) => {
                state.consecutive_429 = state.consecutive_429.saturating_add(1);
                let attempt = state.consecutive_429;
                drop(state);
                let pause = retry_after.unwrap_or_else(|| PAUSE_429.delay(attempt));
                self.pause_for(pause);
            }
            _ => state.consecutive_429 = 0,
        }
    }

    pub fn pause_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut state = self.lock();
        if state.paused_until.is_none_or(|current| current < until) {
            tracing::warn!(
                pause_ms = pause.as_millis() as u64,
                "upstream asked us to slow down; pausing all requests"
            );
            state.paused_until = Some(until);
        }
    }

    /// Requests left in today's budget (UTC day).
    pub fn remaining_today(&self) -> u32 {
        let mut state = self.lock();
        state.roll_day();
        self.daily_limit.saturating_sub(state.used())
    }

    /// When the next routine poll may start: `None` now, else when to ask
    /// again (the even pace, a 429 pause, or the reset once the routine part
    /// of the budget is spent). Takes nothing.
    pub fn routine_wait(&self) -> Option<Instant> {
        let mut state = self.lock();
        state.roll_day();
        let now = Instant::now();
        if let Some(until) = state.paused_until.filter(|u| *u > now) {
            return Some(until);
        }
        let reset = state.clock.next_reset().0;
        if state.used() >= self.limit_for(Priority::Routine) {
            return Some(reset);
        }
        let rate = self.even_pace(&state, reset.saturating_duration_since(now));
        let wait = state.pacer.wait(now, rate, self.pacing_window);
        (!wait.is_zero()).then(|| now + wait.min(reset.saturating_duration_since(now)))
    }

    /// Start a routine poll now if the pace allows; false: ask
    /// [`Self::routine_wait`] when.
    pub fn admit_routine(&self) -> bool {
        if self.routine_wait().is_some() {
            return false;
        }
        self.lock().pacer.take();
        true
    }

    fn limit_for(&self, priority: Priority) -> u32 {
        match priority {
            Priority::Signal => self.daily_limit,
            Priority::Routine => self.daily_limit - self.signal_reserve,
        }
    }

    /// Why this request cannot go now, as the instant to look again.
    fn blocked_until(&self, priority: Priority) -> Option<Instant> {
        let mut state = self.lock();
        state.roll_day();
        if let Some(until) = state.paused_until.filter(|u| *u > Instant::now()) {
            return Some(until);
        }
        (state.used() >= self.limit_for(priority)).then(|| state.clock.next_reset().0)
    }

    /// Count the request unless a pause or the daily cap arrived meanwhile.
    fn try_count(&self, priority: Priority) -> bool {
        let mut state = self.lock();
        state.roll_day();
        let paused = state.paused_until.is_some_and(|u| u > Instant::now());
        if paused || state.held == 0 || state.used() >= self.limit_for(priority) {
            return false;
        }
        state.held -= 1;
        state.load.record(Instant::now());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of a
        // few counters; the values are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn roll_day(&mut self) {
        if self.clock.now().date() != self.day {
            self.clock.resync();
            self.day = self.clock.now().date();
            // Yesterday's unsent reservation is void: it was yesterday's.
            self.spent = 0;
            self.held = 0;
            self.pacer.reset(Instant::now());
        }
    }

    /// Requests of the day spent or reserved by others: all that is not
    /// this instance's to spend.
    fn used(&self) -> u32 {
        self.spent.saturating_sub(self.held)
    }
}
