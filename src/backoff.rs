//! The one doubling backoff and the one jitter every retry loop uses.
//!
//! A leaf: it imports nothing from the crate, so any module may use it
//! without adding an edge to the module graph.
//!
//! Why not `backon` (lapin depends on it): its builders yield delays as an
//! iterator meant to drive a retried future, so "the delay before attempt n"
//! costs n steps, and its jitter adds `0..delay` rather than scaling by
//! `1 ± fraction`. Our loops keep their own state instead (a persisted
//! attempt count, a circuit's current probe delay, a reconnect loop), so two
//! small functions fit them better than a builder.

use std::time::Duration;

/// Doubling from `initial`, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// Delay before the 1-based `attempt`: `initial * 2^(attempt-1)`, capped
    /// at `max`. Attempt 0 is treated as 1; any attempt count is safe (the
    /// product saturates instead of overflowing).
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut left = attempt.saturating_sub(1);
        let mut delay = self.initial;
        // At most 2^31 per step keeps the factor in a u32; once past `max`
        // (or stuck at zero) more doubling cannot change the answer.
        while left > 0 && delay < self.max && !delay.is_zero() {
            let step = left.min(31);
            delay = delay.saturating_mul(1 << step);
            left -= step;
        }
        delay.min(self.max)
    }

    /// The delay after `current` for loops that keep their current delay
    /// rather than an attempt count.
    pub fn next(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max)
    }
}

/// Scale `delay` by a random factor in `1 ± fraction`, so clients failing or
/// registered together drift apart instead of retrying in lockstep.
///
/// `fraction` is clamped to `0..=1` (NaN or infinite means none), so a bad
/// config can neither panic nor make a delay negative; a zero delay stays
/// zero, so an immediate attempt stays immediate.
pub fn jitter(delay: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if fraction == 0.0 || delay.is_zero() {
        return delay;
    }
    let factor = rand::random_range(1.0 - fraction..=1.0 + fraction);
    Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_and_caps() {
        let b = Backoff::new(250 * MS, Duration::from_secs(1));
        let steps: Vec<_> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(steps, [250, 500, 1000, 1000, 1000]);
    }

    #[test]
    fn attempt_zero_is_attempt_one() {
        let b = Backoff::new(250 * MS, Duration::from_secs(60));
        assert_eq!(b.delay(0), 250 * MS);
        assert_eq!(b.delay(1), 250 * MS);
    }

    #[test]
    fn huge_attempts_saturate_at_max() {
        let b = Backoff::new(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(b.delay(1000), Duration::MAX);
        assert_eq!(b.delay(u32::MAX), Duration::MAX);
        let capped = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(capped.delay(1000), Duration::from_secs(300));
        // Beyond the 2^16 plateau the old hand-written formulas had.
        let wide = Backoff::new(MS, Duration::from_secs(3600));
        assert_eq!(wide.delay(19), 262_144 * MS);
    }

    #[test]
    fn initial_above_max_is_capped_and_zero_stays_zero() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.delay(1), Duration::from_secs(1));
        let zero = Backoff::new(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(zero.delay(1000), Duration::ZERO);
    }

    #[test]
    fn next_doubles_caps_and_saturates() {
        let b = Backoff::new(100 * MS, Duration::from_secs(1));
        let mut d = b.initial;
        let mut seen = vec![d.as_millis()];
        for _ in 0..5 {
            d = b.next(d);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [100, 200, 400, 800, 1000, 1000]);
        let unbounded = Backoff::new(MS, Duration::MAX);
        assert_eq!(unbounded.next(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let base = Duration::from_secs(10);
        let samples: Vec<_> = (0..1000).map(|_| jitter(base, 0.2)).collect();
        for d in &samples {
            assert!(*d >= base.mul_f64(0.8) && *d <= base.mul_f64(1.2), "{d:?}");
        }
        assert!(samples.iter().any(|d| *d != samples[0]), "not jittered");
    }

    #[test]
    fn no_jitter_is_identity() {
        let base = Duration::from_millis(1234);
        for fraction in [0.0, -0.5, f64::NAN, f64::INFINITY] {
            assert_eq!(jitter(base, fraction), base, "fraction {fraction}");
        }
        assert_eq!(jitter(Duration::ZERO, 0.5), Duration::ZERO);
    }

    #[test]
    fn extreme_fraction_is_clamped_not_negative() {
        let base = Duration::from_secs(5);
        for _ in 0..1000 {
            assert!(jitter(base, 5.0) <= Duration::from_secs(10));
        }
        // Scaling past Duration::MAX saturates instead of panicking.
        assert!(jitter(Duration::MAX, 1.0) > Duration::ZERO);
    }
}
