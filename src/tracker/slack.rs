//! Timer slack for routine polls: their due times fall on a coarse grid,
//! so the polls of many transfers start on one wake-up.

use std::time::Duration;

use tokio::time::Instant;

/// Routine polls come due on a grid of this step, so the polls of many
/// transfers start together: one timer wake-up, and one burst of requests
/// and answers, per step instead of one per poll. At 1,000 polls a second
/// this halved the CPU per GET (README, "Throughput and CPU"). It is timer
/// slack, what Linux's `round_jiffies` does for timers that need no
/// precision: a delay of at least `MIN_COALESCED` ends at most one step
/// (a tenth of it) later, or, within a step of the policy's ceiling
/// (`max_interval`), up to one step sooner, so the worst-case gap between
/// polls stays what the policy promises. Signalled polls never wait for
/// the grid.
const GRID: Duration = Duration::from_millis(50);
/// Shorter delays (a retry's backoff, a paced poll put back in line) are
/// kept as they are.
const MIN_COALESCED: Duration = Duration::from_millis(500);

/// The furthest a poll is put off. The timer wheels hold deadlines up to
/// about two years from their start and panic past that; no policy, backoff
/// or `Retry-After` needs more than this (a transfer is tracked for hours).
pub(super) const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// When a routine poll `delay` from now is due: on the grid that starts
/// at `epoch`, rounded up, or down where up could pass `ceiling`.
pub(super) fn coalesced(epoch: Instant, delay: Duration, ceiling: Duration) -> Instant {
    let delay = delay.min(MAX_DELAY);
    let due = Instant::now() + delay;
    if delay < MIN_COALESCED {
        return due;
    }
    let since = due.saturating_duration_since(epoch).as_nanos();
    let step = GRID.as_nanos();
    let steps = match delay.saturating_add(GRID) > ceiling {
        true => since / step,
        false => since.div_ceil(step),
    };
    epoch + Duration::from_nanos((steps * step) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_due_times_fall_on_the_grid_at_most_one_step_late() {
        let epoch = Instant::now() - Duration::from_millis(7);
        for ms in [500, 501, 999, 1_000, 1_049, 5_000, 600_000] {
            let delay = Duration::from_millis(ms);
            let earliest = Instant::now() + delay;
            let due = coalesced(epoch, delay, Duration::MAX);
            let latest = Instant::now() + delay + GRID;
            assert!(due >= earliest && due <= latest, "{ms} ms: off the bounds");
            let offset = (due - epoch).as_nanos();
            assert_eq!(offset % GRID.as_nanos(), 0, "{ms} ms: off the grid");
        }
    }

    #[test]
    fn a_delay_near_the_ceiling_never_passes_it() {
        let epoch = Instant::now() - Duration::from_millis(7);
        let ceiling = Duration::from_secs(30);
        for ms in [29_940, 29_950, 29_951, 29_999, 30_000] {
            let delay = Duration::from_millis(ms);
            let before = Instant::now();
            let due = coalesced(epoch, delay, ceiling);
            assert!(due <= Instant::now() + ceiling, "{ms} ms: past the ceiling");
            assert!(due + GRID >= before + delay, "{ms} ms: over a step sooner");
            assert_eq!((due - epoch).as_nanos() % GRID.as_nanos(), 0);
        }
    }

    #[test]
    fn short_delays_are_kept() {
        let epoch = Instant::now() - Duration::from_millis(7);
        for ms in [0, 1, 250, 499] {
            let delay = Duration::from_millis(ms);
            let before = Instant::now() + delay;
            let due = coalesced(epoch, delay, Duration::MAX);
            assert!(
                due >= before && due <= Instant::now() + delay,
                "{ms} ms moved"
            );
        }
    }
}
