//! Time for the budget, read from tokio's clock so tests can pause it.

use std::time::Duration;

use governor::clock::Clock;
use time::{OffsetDateTime, Time};
use tokio::time::Instant;

/// governor's clock, driven by tokio time: a limiter built on it sleeps and
/// refills deterministically under `#[tokio::test(start_paused = true)]`.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    base: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.base.elapsed()
    }
}

/// UTC wall time derived from tokio's monotonic clock and an anchor, so the
/// daily reset is testable with paused time. In production the anchor is
/// re-read at every reset, which bounds drift from NTP slewing to a day's.
#[derive(Debug, Clone, Copy)]
pub struct UtcClock {
    wall: OffsetDateTime,
    at: Instant,
    /// Re-anchor on the real wall clock at each reset (off in tests).
    resync: bool,
}

impl UtcClock {
    pub fn system() -> Self {
        Self {
            wall: OffsetDateTime::now_utc(),
            at: Instant::now(),
            resync: true,
        }
    }

    /// A clock that reads `wall` now and follows tokio time from there.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        Self {
            wall,
            at: Instant::now(),
            resync: false,
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        self.wall + self.at.elapsed()
    }

    pub fn resync(&mut self) {
        if self.resync {
            *self = Self::system();
        }
    }

    /// The next 00:00 UTC, as a tokio instant and as wall time.
    pub fn next_reset(&self) -> (Instant, OffsetDateTime) {
        let now = self.now();
        let midnight = now
            .date()
            .next_day()
            .map_or(now, |d| d.with_time(Time::MIDNIGHT).assume_utc());
        let wait: Duration = (midnight - now).try_into().unwrap_or_default();
        (Instant::now() + wait, midnight)
    }
}
