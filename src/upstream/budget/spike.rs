//! The spike limit (requests/s), this instance's share of it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::TokioClock;

/// Spacing margin of the spike limiter: requests are replenished at
/// 1/1.02 of the steady rate, so network jitter of up to ~20 ms cannot put
/// one more request than the limit into a 1-second window the upstream counts.
const SPIKE_HEADROOM: f64 = 1.02;

type SpikeLimiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// The deployment's spike limit split among its live instances: each one
/// spaces its own requests at `limit / live` per second (at least 1/s), so
/// together they stay under `limit`.
pub struct Spike {
    limit: u32,
    live: AtomicU32,
    share: AtomicU32,
    limiter: RwLock<Arc<SpikeLimiter>>,
    clock: TokioClock,
}

impl Spike {
    pub fn new(limit: u32) -> Self {
        let clock = TokioClock::default();
        let limit = limit.max(1);
        Self {
            limit,
            live: AtomicU32::new(1),
            share: AtomicU32::new(limit),
            limiter: RwLock::new(Arc::new(limiter(limit, clock))),
            clock,
        }
    }

    /// Live instances, this one included, as last told.
    pub fn live(&self) -> u32 {
        self.live.load(Ordering::Relaxed)
    }

    /// This instance's requests/s.
    pub fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// Take `limit / live` as this instance's limit. The limiter is rebuilt
    /// only when that changes, and starts with its burst spent: the old one's
    /// recent requests are forgotten, and a fresh burst on top of them could
    /// put more than the new share into one second.
    pub fn split(&self, live: u32) {
        let live = live.max(1);
        self.live.store(live, Ordering::Relaxed);
        let share = (self.limit / live).max(1);
        if self.share.swap(share, Ordering::Relaxed) == share {
            return;
        }
        let fresh = limiter(share, self.clock);
        for _ in 0..burst(share) {
            let _ = fresh.check();
        }
        *self.limiter.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        tracing::info!(live, per_instance = share, "upstream spike limit shared");
    }

    /// Wait for a token of the current limiter.
    pub async fn ready(&self) {
        loop {
            let limiter = self
                .limiter
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

fn limiter(limit: u32, clock: TokioClock) -> SpikeLimiter {
    RateLimiter::direct_with_clock(spike_quota(limit), clock)
}

fn burst(limit: u32) -> u32 {
    (limit / 20).max(1)
}

/// A burst of 5% of the limit and the rest as a steady rate: any 1-second
/// window holds the burst plus `rate - 1` more, at most the limit. The burst matters at
/// high limits, where sub-millisecond spacing would otherwise need sleeps
/// shorter than the timer's 1 ms resolution.
fn spike_quota(limit: u32) -> Quota {
    let limit = limit.max(1);
    let burst = burst(limit);
    let steady = f64::from(limit - burst + 1);
    let period = Duration::from_secs_f64(SPIKE_HEADROOM / steady);
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}
