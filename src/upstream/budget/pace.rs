//! Spreading routine polls over the rest of the day, and measuring load.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket whose rate is recomputed on every use: the routine budget
/// left divided by the time left until the reset. While load stays under that
/// even pace the bucket stays full and nothing waits; above it, the bucket
/// (`window` worth of the pace) drains and then polls go at the pace, in the
/// order they fell due. Every transfer is slowed alike, none is starved.
#[derive(Debug)]
pub struct Pacer {
    tokens: f64,
    at: Instant,
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: f64::INFINITY,
            at: now,
        }
    }

    /// Start the new day with a full bucket.
    pub fn reset(&mut self, now: Instant) {
        *self = Self::new(now);
    }

    /// How long until one request may go at `rate` (requests/s), with
    /// `window` worth of the rate as burst. Takes nothing; see [`take`].
    ///
    /// [`take`]: Self::take
    pub fn wait(&mut self, now: Instant, rate: f64, window: Duration) -> Duration {
        let capacity = (rate * window.as_secs_f64()).max(1.0);
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + rate * elapsed).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else if rate <= 0.0 {
            Duration::MAX
        } else {
            Duration::from_secs_f64(((1.0 - self.tokens) / rate).min(86_400.0))
        }
    }

    /// Spend one request (after `wait` said zero).
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// True when requests are being spaced out rather than passing freely.
    pub fn is_pacing(&self) -> bool {
        self.tokens < 1.0
    }
}

/// Requests per second, exponentially weighted over `TAU`: the "current
/// load" the exhaustion forecast extrapolates.
#[derive(Debug)]
pub struct Load {
    rate: f64,
    at: Instant,
}

/// Long enough to smooth bursts, short enough to follow the day's shape.
const TAU: f64 = 300.0;

impl Load {
    pub fn new(now: Instant) -> Self {
        Self { rate: 0.0, at: now }
    }

    pub fn record(&mut self, now: Instant) {
        self.rate = self.rate_at(now) + 1.0 / TAU;
        self.at = now;
    }

    pub fn rate_at(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.rate * (-dt / TAU).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_the_pace_nothing_waits_above_it_requests_are_spaced() {
        let t0 = Instant::now();
        let window = Duration::from_secs(5);
        let mut pacer = Pacer::new(t0);
        // 1 request/s with a 5 s window: a burst of 5 passes...
        for _ in 0..5 {
            assert_eq!(pacer.wait(t0, 1.0, window), Duration::ZERO);
            pacer.take();
        }
        assert!(pacer.is_pacing());
        // ...then the next may go a second later, and so on.
        assert_eq!(pacer.wait(t0, 1.0, window), Duration::from_secs(1));
        let later = t0 + Duration::from_millis(1500);
        assert_eq!(pacer.wait(later, 1.0, window), Duration::ZERO);
        pacer.take();
        assert_eq!(pacer.wait(later, 1.0, window), Duration::from_millis(500));
        // The bucket refills at the pace, up to the window.
        let much_later = t0 + Duration::from_secs(60);
        assert_eq!(pacer.wait(much_later, 1.0, window), Duration::ZERO);
        assert!(!pacer.is_pacing());
    }

    #[test]
    fn load_follows_a_steady_rate() {
        let t0 = Instant::now();
        let mut load = Load::new(t0);
        for i in 0..6000 {
            load.record(t0 + Duration::from_millis(i * 500));
        }
        let rate = load.rate_at(t0 + Duration::from_millis(6000 * 500));
        assert!((rate - 2.0).abs() < 0.1, "{rate}");
    }
}
