//! When the adaptive policy fits its scale again.
//!
//! Early on every doubling of the learned completions moves the fit a lot,
//! so each one recalibrates. After that a recalibration every hundred
//! completions kept up with drift at a few a second, but at a few hundred
//! a second it ran twice a second and was 5% of a signalled transfer's CPU
//! (its simulated schedules, `perf record` on the e2e `signalled` stage),
//! while a hundred completions among thousands moved the scale by little.
//! So the hundred-steps are at least `MIN_GAP` apart: at low rates nothing
//! changes (a hundred completions take longer than that), at high rates the
//! scale is fitted every `MIN_GAP`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Recalibrate the scale after this many learned completions...
const EVERY: u64 = 100;
/// ...but not sooner than this after the last one (doublings excepted).
const MIN_GAP: Duration = Duration::from_secs(10);

/// What going from one count of learned completions to another passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Crossing {
    None,
    /// The first completion, or a new power of two.
    Doubling,
    /// A new multiple of [`EVERY`].
    Step,
}

impl Crossing {
    pub(super) fn of(before: u64, after: u64) -> Self {
        if after <= before {
            Self::None
        } else if before == 0 || after.ilog2() > before.ilog2() {
            Self::Doubling
        } else if after / EVERY > before / EVERY {
            Self::Step
        } else {
            Self::None
        }
    }
}

/// One calibration at a time, and the hundred-steps spaced out.
#[derive(Debug)]
pub(super) struct Gate {
    min_gap: Duration,
    running: AtomicBool,
    last: Mutex<Option<Instant>>,
    started: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Self::spaced(MIN_GAP)
    }
}

impl Gate {
    /// Hundred-steps at least `min_gap` apart.
    pub(super) fn spaced(min_gap: Duration) -> Self {
        Self {
            min_gap,
            running: AtomicBool::new(false),
            last: Mutex::new(None),
            started: AtomicU64::new(0),
        }
    }

    /// Whether a calibration starts now for `crossing`; if so it counts as
    /// running until [`Gate::done`].
    pub(super) fn start(&self, crossing: Crossing, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let soon = last.is_some_and(|at| now.saturating_duration_since(at) < self.min_gap);
        match crossing {
            Crossing::None => return false,
            Crossing::Step if soon => return false,
            _ => {}
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return false;
        }
        *last = Some(now);
        self.started.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub(super) fn done(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Calibrations started so far.
    #[cfg(test)]
    pub(super) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doublings_and_hundreds_are_crossings() {
        assert_eq!(Crossing::of(0, 1), Crossing::Doubling);
        assert_eq!(Crossing::of(63, 64), Crossing::Doubling);
        assert_eq!(Crossing::of(99, 100), Crossing::Step);
        assert_eq!(Crossing::of(101, 102), Crossing::None);
        assert_eq!(Crossing::of(5, 5), Crossing::None);
        assert_eq!(
            Crossing::of(150, 260),
            Crossing::Doubling,
            "a batch from elsewhere"
        );
    }

    #[test]
    fn hundred_steps_wait_for_the_gap_and_doublings_do_not() {
        let gate = Gate::default();
        let t0 = Instant::now();
        assert!(gate.start(Crossing::Doubling, t0));
        assert!(!gate.start(Crossing::Doubling, t0), "one at a time");
        gate.done();
        assert!(!gate.start(Crossing::Step, t0 + MIN_GAP / 2), "too soon");
        assert!(gate.start(Crossing::Doubling, t0 + MIN_GAP / 2));
        gate.done();
        let later = t0 + MIN_GAP / 2 + MIN_GAP;
        assert!(gate.start(Crossing::Step, later), "the gap has passed");
        gate.done();
        assert!(!gate.start(Crossing::None, later + MIN_GAP));
        assert_eq!(gate.started(), 3);
    }
}
