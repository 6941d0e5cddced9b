//! The upstream request budget: one limiter shared by every request.
//!
//! The vendor enforces a spike limit (requests/s) and a daily quota that
//! resets at 00:00 UTC; past either, every call gets 429 (UPSTREAM.md,
//! "Rate limits"). A 429 therefore pauses the whole client, not one transfer.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use time::{Date, OffsetDateTime};
use tokio::time::Instant;

use super::client::Fetched;
use super::error::UpstreamError;

/// The vendor's first 429 back-off step when no `Retry-After` is given.
const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);

/// Who is asking; returned-call signals and creates are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Signal,
    Routine,
}

pub struct Budget {
    limiter: DefaultDirectRateLimiter,
    daily_limit: u32,
    state: Mutex<State>,
}

struct State {
    /// No request leaves before this instant (set by 429s).
    paused_until: Option<Instant>,
    day: Date,
    used_today: u32,
}

impl Budget {
    pub fn new(rate_limit_per_s: u32, daily_limit: u32) -> Self {
        let rate = NonZeroU32::new(rate_limit_per_s).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate)),
            daily_limit,
            state: Mutex::new(State {
                paused_until: None,
                day: OffsetDateTime::now_utc().date(),
                used_today: 0,
            }),
        }
    }

    /// Wait until a request may leave, then count it against today's budget.
    pub async fn acquire(&self, _priority: Priority) {
        loop {
            let pause = self.lock().paused_until;
            match pause {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => break,
            }
        }
        self.limiter.until_ready().await;
        let mut state = self.lock();
        state.roll_day();
        state.used_today = state.used_today.saturating_add(1);
        metrics::gauge!("bridge_upstream_budget_remaining")
            .set(self.daily_limit.saturating_sub(state.used_today) as f64);
    }

    /// Learn from an answer: a 429 pauses every request, not just this one.
    pub fn observe(&self, result: &Result<Fetched, UpstreamError>) {
        if let Err(UpstreamError::Status {
            status: 429,
            retry_after,
            ..
        }) = result
        {
            let pause = retry_after.unwrap_or(DEFAULT_429_PAUSE);
            self.pause_for(pause);
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
        self.daily_limit.saturating_sub(state.used_today)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of two
        // counters; the values are still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn roll_day(&mut self) {
        let today = OffsetDateTime::now_utc().date();
        if today != self.day {
            self.day = today;
            self.used_today = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_request() {
        let budget = Budget::new(1000, 10);
        budget.observe(&Err(UpstreamError::Status {
            status: 429,
            envelope: None,
            retry_after: Some(Duration::from_secs(3)),
        }));
        let start = Instant::now();
        budget.acquire(Priority::Routine).await;
        assert!(start.elapsed() >= Duration::from_secs(3));
        assert_eq!(budget.remaining_today(), 9);
    }
}
