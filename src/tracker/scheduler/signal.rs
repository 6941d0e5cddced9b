//! Returned-call signals in the scheduler: a signal pulls the transfer's
//! next poll forward into the signal lane, at once the first time, then
//! spaced (see `TrackState::next_pull`).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Gate, Lane, Scheduler};
use crate::tracker::config::PollingConfig;
use crate::tracker::state::{Signal, TrackState};
use crate::transfer::{Transfer, TransferId};

impl Scheduler {
    /// The transfer's polls so far, `None` when it is not tracked here.
    /// `known` goes with the poll, unless one is in flight already. The
    /// signal pulls the next poll forward, at once for the first signal,
    /// later ones no sooner than [`TrackState::next_pull`] allows (a held
    /// request's nudge: [`TrackState::next_held_poll`]) or than the routine
    /// poll already due, which moves into the signal lane.
    pub(super) fn poll_now(
        &mut self,
        id: &TransferId,
        known: Option<Arc<Transfer>>,
        signal: Signal,
    ) -> Option<u32> {
        let entry = self.entries.get_mut(id)?;
        let polls = entry.polls;
        let (Some(state), Some((lane, key))) = (&mut entry.state, entry.key) else {
            // In flight: a signal polls again once it is back (a nudge: the
            // GET just sent will do), and a routine GET still waiting for its
            // turn waits as a signal's from now on. Or due at once already.
            if entry.state.is_none() && signal == Signal::Returned {
                entry.again = true;
                entry.raise.iter().for_each(|raise| raise.notify_one());
            }
            return Some(polls);
        };
        state.known = known;
        let now = Instant::now();
        // Not `self.wheel(lane)`: `entry` still borrows `self.entries`.
        let wheel = match lane {
            Lane::Signal => &mut self.signal,
            Lane::Routine => &mut self.routine,
        };
        let due = wheel.deadline(&key);
        let Some(at) = pull_to(&self.deps.config, state, signal, (lane, due), now) else {
            return Some(polls); // a poll comes by then anyway
        };
        if signal == Signal::Returned {
            state.pull(at);
        }
        drop(wheel.remove(&key));
        // Jump the queue: due now (or at `at`), in the signal lane.
        entry.key = (at > now).then(|| (Lane::Signal, self.signal.insert_at(id.clone(), at)));
        if entry.key.is_none() {
            self.due_now(id.clone());
        }
        Some(polls)
    }

    /// Into the signal lane's queue of polls due at once.
    pub(super) fn due_now(&mut self, id: TransferId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.now = true;
            self.now.push_back(id);
        }
    }

    /// The next poll due at once, if it still is (untracked meanwhile, it
    /// is gone).
    pub(super) fn start_now(&mut self, gate: Gate) {
        let Some(id) = self.now.pop_front() else {
            return;
        };
        let due = self
            .entries
            .get_mut(&id)
            .map(|e| std::mem::take(&mut e.now));
        if due == Some(true) {
            self.start(Lane::Signal, id, gate);
        }
    }
}

/// When `signal` polls a transfer whose next poll is due at `due` in `lane`:
/// `None` when that poll comes soon enough.
fn pull_to(
    cfg: &PollingConfig,
    state: &TrackState,
    signal: Signal,
    (lane, due): (Lane, Instant),
    now: Instant,
) -> Option<Instant> {
    let at = match signal {
        Signal::Returned => state.next_pull(now, cfg.returned_interval, cfg.max_interval),
        Signal::Held => state.next_held_poll(now),
    };
    if at <= now || due > at {
        return Some(at);
    }
    match lane {
        Lane::Signal => None,
        // A routine poll comes sooner, but routine polls wait for the
        // budget's pace (or, the day's share spent, for midnight): the
        // signal keeps its time and moves it into the signal lane.
        Lane::Routine => Some(due.max(now)),
    }
}

/// A signal came while a poll was in flight: the next poll is due after
/// `delay` or when the signal may pull it, whichever is sooner.
pub(super) fn pulled(cfg: &PollingConfig, state: &mut TrackState, delay: Duration) -> Duration {
    let now = Instant::now();
    let at = state.next_pull(now, cfg.returned_interval, cfg.max_interval);
    state.pull(at);
    delay.min(at - now)
}
