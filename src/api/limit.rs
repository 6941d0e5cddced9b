//! Per-token registration rate limit (governor, keyed by token).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::HttpConfig;

/// Which configured token authenticated a request (its index, never the
/// token itself); absent when auth is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenId(pub usize);

pub struct RegisterLimiter {
    limiter: DefaultKeyedRateLimiter<Option<usize>>,
}

impl RegisterLimiter {
    pub fn new(cfg: &HttpConfig) -> Self {
        let rate = NonZeroU32::new(cfg.register_rate_per_s).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(cfg.register_burst).unwrap_or(rate);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// `Err(wait)` when this token is over its rate.
    pub fn check(&self, token: Option<TokenId>) -> Result<(), Duration> {
        self.limiter
            .check_key(&token.map(|t| t.0))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}
