//! Whether registrations wait for a commit to ride on.
//!
//! At a steady pace each transfer brings the committer two changes far
//! apart: its registration, and later its ending. At 200 transfers a second
//! they arrive a few milliseconds apart, each finds the committer idle, and
//! each paid a FULL commit of its own: `perf stat` counted 1.88 `fsync`s per
//! transfer in the `signalled` stage, and the commit is the largest single
//! share of its CPU. The linger after a busy group does not catch them: the
//! groups are of one.
//!
//! A registration's caller is the IVR, before the call is handed over; an
//! ending's is a call coming back. So when other changes (endings, statuses
//! seen, SIP returns) arrive often enough that one is due within
//! [`PATIENCE`], a group of registrations and nothing else waits for one,
//! at most that long, and commits the moment it comes. Nothing else ever
//! waits for a registration, and an idle bridge commits one at once.

use std::time::Duration;

use tokio::time::Instant;

/// The longest a registration waits for company: a few milliseconds on the
/// IVR's request, against an `fsync` saved.
pub(super) const PATIENCE: Duration = Duration::from_millis(5);
/// Registrations wait while other changes come at most this far apart on
/// average (100 a second), and the last came no longer ago.
const DUE: Duration = PATIENCE.saturating_mul(2);

/// How often changes other than registrations reach the committer.
#[derive(Debug, Default)]
pub(super) struct Pace {
    last: Option<Instant>,
    /// Moving average of the gap between them.
    gap: Duration,
}

impl Pace {
    /// `n` of them went into the group taken at `now`.
    pub fn saw(&mut self, n: usize, now: Instant) {
        let Ok(n) = u32::try_from(n) else { return };
        if n == 0 {
            return;
        }
        self.gap = match self.last {
            // A quarter of the newest gap: a few groups to follow a change
            // of pace, not one group's chance.
            Some(last) => {
                let gap = now.saturating_duration_since(last) / n;
                (self.gap.saturating_mul(3) + gap) / 4
            }
            // The first: not due until a few more have come.
            None => DUE.saturating_mul(2),
        };
        self.last = Some(now);
    }

    /// Whether one of them is due soon enough for a registration to wait.
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|last| self.gap.max(now.saturating_duration_since(last)) <= DUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paced(every: Duration, count: u32, start: Instant) -> (Pace, Instant) {
        let mut pace = Pace::default();
        for i in 0..count {
            pace.saw(1, start + every * i);
        }
        (pace, start + every * (count - 1))
    }

    #[test]
    fn due_while_changes_come_often_and_lately() {
        let start = Instant::now();
        assert!(!Pace::default().due(start), "nothing seen yet");
        let (pace, last) = paced(Duration::from_millis(5), 1, start);
        assert!(!pace.due(last), "one alone is no pace");
        let (pace, last) = paced(Duration::from_millis(5), 20, start);
        assert!(pace.due(last + Duration::from_millis(3)));
        assert!(pace.due(last + DUE));
        assert!(
            !pace.due(last + DUE + Duration::from_millis(1)),
            "they stopped"
        );
        let (pace, last) = paced(Duration::from_millis(30), 20, start);
        assert!(
            !pace.due(last + Duration::from_millis(1)),
            "too rare to wait for"
        );
    }

    #[test]
    fn a_group_of_many_counts_as_many() {
        let start = Instant::now();
        let (mut pace, last) = paced(Duration::from_millis(40), 20, start);
        for i in 1..=8 {
            pace.saw(8, last + Duration::from_millis(20) * i);
        }
        assert!(pace.due(last + Duration::from_millis(161)), "8 every 20 ms");
    }
}
