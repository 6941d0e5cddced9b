//! How many requests one reservation asks the ledger for.
//!
//! A reservation is a write to the store, on SQLite a FULL commit on its one
//! writer. At a fixed `budget_batch` (20), a burst of returned-call polls at
//! a few thousand GETs a second made some 165 reservations a second, each
//! queued behind the group commits while every GET in flight waited for it:
//! 499 of the drain's 1,100 write transactions when 10,000 calls came back
//! at once (e2e `burst`, sqlx's statement log). So the size follows the
//! load: a reservation used up within `FAST` of its grant doubles the next
//! one, up to one second of this instance's spike limit; one that lasted
//! longer than `SLOW` halves it, down to `budget_batch`. At the default
//! spike limit (50/s) twenty requests take 400 ms, so nothing grows.
//!
//! What a crash leaves counted but unsent grows with it: at most the larger
//! of `budget_batch` and a second of the spike limit.

use std::time::Duration;

use tokio::time::Instant;

/// A reservation used up sooner than this asks for twice as many next time.
const FAST: Duration = Duration::from_millis(250);
/// One that lasted longer than this asks for half as many.
const SLOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct GrantSize {
    /// `budget_batch`: the smallest reservation.
    base: u32,
    size: u32,
    granted_at: Option<Instant>,
}

impl GrantSize {
    pub(super) fn new(base: u32) -> Self {
        let base = base.max(1);
        Self {
            base,
            size: base,
            granted_at: None,
        }
    }

    /// The current size: routine polls top it up once half is spent.
    pub(super) fn size(&self) -> u32 {
        self.size
    }

    /// The size of the reservation asked for at `now`: at most `max` (a
    /// second of the spike limit) and half of what is `left` of the day's
    /// budget as last seen, unless `budget_batch` is larger. Near the end of
    /// the budget a grown batch would sit unsent in one instance while
    /// another, or a returned-call signal, finds the day spent.
    pub(super) fn next(&mut self, now: Instant, max: u32, left: u32) -> u32 {
        let max = max.max(self.base);
        if let Some(at) = self.granted_at {
            let lasted = now.saturating_duration_since(at);
            if lasted < FAST {
                self.size = self.size.saturating_mul(2);
            } else if lasted > SLOW {
                self.size /= 2;
            }
        }
        self.size = self.size.clamp(self.base, max);
        self.size.min(left / 2).max(self.base)
    }

    /// A reservation was granted at `now`.
    pub(super) fn granted(&mut self, now: Instant) {
        self.granted_at = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_spent_fast_up_to_the_bound_and_shrinks_when_slow() {
        let mut grant = GrantSize::new(20);
        let t0 = Instant::now();
        assert_eq!(
            grant.next(t0, 1000, u32::MAX),
            20,
            "the first is budget_batch"
        );
        grant.granted(t0);
        let mut at = t0;
        let mut sizes = Vec::new();
        for _ in 0..7 {
            at += Duration::from_millis(10);
            sizes.push(grant.next(at, 1000, u32::MAX));
            grant.granted(at);
        }
        assert_eq!(sizes, [40, 80, 160, 320, 640, 1000, 1000]);
        at += Duration::from_secs(1);
        assert_eq!(
            grant.next(at, 1000, u32::MAX),
            1000,
            "between FAST and SLOW: kept"
        );
        grant.granted(at);
        at += SLOW * 2;
        assert_eq!(grant.next(at, 1000, u32::MAX), 500);
        grant.granted(at);
        assert_eq!(
            grant.next(at + Duration::from_millis(1), 100, u32::MAX),
            100,
            "a smaller spike share bounds it"
        );
    }

    #[test]
    fn never_below_budget_batch() {
        let mut grant = GrantSize::new(20);
        let t0 = Instant::now();
        grant.granted(t0);
        assert_eq!(
            grant.next(t0 + SLOW * 3, 5, u32::MAX),
            20,
            "budget_batch above a second of the spike"
        );
        assert_eq!(GrantSize::new(0).next(t0, 0, 0), 1);
    }

    #[test]
    fn near_the_end_of_the_budget_a_grown_batch_takes_half_of_what_is_left() {
        let mut grant = GrantSize::new(20);
        let t0 = Instant::now();
        grant.granted(t0);
        let soon = t0 + Duration::from_millis(10);
        assert_eq!(grant.next(soon, 1000, 100), 40, "room enough");
        grant.granted(soon);
        assert_eq!(grant.next(soon, 1000, 100), 50, "half of 100");
        assert_eq!(grant.next(soon, 1000, 30), 20, "never below budget_batch");
    }
}
