//! The tracker loop: two timer wheels (tokio-util's `DelayQueue`) of
//! transfers and polls in flight, at most `polling.max_in_flight` upstream
//! requests per lane. A poll's place is free again once its GET has its
//! answer, while what the answer causes still waits for its group commit.
//! No task lives per transfer.
//!
//! Returned-call signals have their own wheel and their own in-flight lane,
//! so a caller who is back is never queued behind routine polls; a signal's
//! poll, due at once, skips the wheel (see `Scheduler::now`). Routine
//! polls start only when the budget's pace admits them; until then they wait
//! in the wheel, where a signal can still pull them out. While the auth circuit is open, nothing
//! is polled but one probe at a time; past `auth_fail_after`, transfers that
//! come due end FAILED without a request.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

mod signal;

use super::gate::Gate;
use super::poll::{PollDeps, Step, Turn, fail_auth, poll_once};
use super::slack::coalesced;
use super::state::{Phase, PhaseCounts, Signal, TrackState};
use crate::transfer::{Transfer, TransferId};

pub(super) enum Command {
    /// Start tracking; `None` asks the policy for the first delay.
    Track(TrackState, Option<Duration>),
    Untrack(TransferId),
    /// Poll now with priority; replies whether the transfer is tracked.
    PollNow(
        TransferId,
        Option<Arc<Transfer>>,
        Signal,
        oneshot::Sender<Option<u32>>,
    ),
    /// Live poll count, for the API.
    Polls(TransferId, oneshot::Sender<Option<u32>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Signal,
    Routine,
}

struct Entry {
    key: Option<(Lane, delay_queue::Key)>,
    /// Waiting in the signal lane's queue of polls due now.
    now: bool,
    /// `None` while a poll of it is in flight (the poll owns the state).
    state: Option<TrackState>,
    /// A signal arrived mid-poll: poll again right after.
    again: bool,
    /// While a routine poll is in flight: raises it to a signal's turn.
    raise: Option<Arc<Notify>>,
    polls: u32,
    /// For the per-status gauge.
    phase: Phase,
}

struct Done {
    lane: Lane,
    state: TrackState,
    step: Step,
}

/// Polls of one lane in flight at most, counting those whose GET has its
/// answer and that wait for their commit: a bound on the memory they hold,
/// large enough to fill the group committer's groups.
const PENDING_PER_REQUEST: usize = 16;

/// One upstream request in flight. Dropped when the GET has its answer (see
/// [`poll_once`]); the scheduler then frees its place in the lane.
struct Request {
    lane: Lane,
    probe: bool,
    answered: mpsc::UnboundedSender<(Lane, bool)>,
}

impl Drop for Request {
    fn drop(&mut self) {
        // The scheduler is gone when this fails: nothing left to count.
        let _ = self.answered.send((self.lane, self.probe));
    }
}

type Polling = BoxFuture<'static, Done>;

pub(super) struct Scheduler {
    /// Shared with every poll in flight (cloning it is one increment).
    deps: Arc<PollDeps>,
    routine: DelayQueue<TransferId>,
    signal: DelayQueue<TransferId>,
    /// Signal-lane polls due at once. Not in the wheel: it rounds every
    /// deadline up to its next millisecond tick, and a caller on the line
    /// waited up to a millisecond or two for the GET its signal asked for.
    now: VecDeque<TransferId>,
    entries: HashMap<TransferId, Entry>,
    inflight: FuturesUnordered<Polling>,
    /// Upstream requests in flight per lane: [signal, routine].
    busy: [usize; 2],
    /// Polls in flight per lane (requests, and polls committing what their
    /// answer caused).
    pending: [usize; 2],
    max_in_flight: usize,
    /// Where each [`Request`] reports its answer.
    answered_tx: mpsc::UnboundedSender<(Lane, bool)>,
    answered: mpsc::UnboundedReceiver<(Lane, bool)>,
    probing: bool,
    circuit: watch::Receiver<bool>,
    by_phase: PhaseCounts,
    /// Where the grid of routine due times starts (see `slack`).
    epoch: Instant,
}

impl Scheduler {
    pub(super) fn new(deps: PollDeps) -> Self {
        let max_in_flight = deps.config.max_in_flight;
        let circuit = deps.upstream.budget().circuit().subscribe();
        let (answered_tx, answered) = mpsc::unbounded_channel();
        Self {
            deps: Arc::new(deps),
            routine: DelayQueue::new(),
            signal: DelayQueue::new(),
            now: VecDeque::new(),
            entries: HashMap::new(),
            inflight: FuturesUnordered::new(),
            busy: [0; 2],
            pending: [0; 2],
            max_in_flight,
            answered_tx,
            answered,
            probing: false,
            circuit,
            by_phase: PhaseCounts::default(),
            epoch: Instant::now(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
        drain: Duration,
    ) {
        loop {
            let gate = Gate::now(&self.deps, self.probing);
            let go = !matches!(gate, Gate::Hold(_));
            let signal_room = go && self.room(Lane::Signal);
            let mut routine_room = go && self.room(Lane::Routine);
            // Routine polls wait in the wheel for the budget's pace, not in flight.
            let paced = match (routine_room, gate) {
                (true, Gate::Open) => self.deps.upstream.budget().routine_wait(),
                _ => None,
            };
            routine_room &= paced.is_none();
            let wake = match gate {
                Gate::Hold(until) => Some(until),
                _ => paced,
            };
            let wake_at = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(cmd) = rx.recv() => self.command(cmd),
                Some((lane, probe)) = self.answered.recv() => {
                    self.busy[lane as usize] -= 1;
                    self.probing &= !probe;
                }
                Some(done) = self.inflight.next(), if !self.inflight.is_empty() => self.settle(done),
                () = std::future::ready(()), if signal_room && !self.now.is_empty() => self.start_now(gate),
                Some(due) = self.signal.next(), if signal_room => self.start(Lane::Signal, due.into_inner(), gate),
                Some(due) = self.routine.next(), if routine_room => self.start(Lane::Routine, due.into_inner(), gate),
                Ok(()) = self.circuit.changed() => {}
                _ = tokio::time::sleep_until(wake_at), if wake.is_some() => {}
            }
        }
        // Stop taking work, then let in-flight polls finish (their results are
        // committed or, past the deadline, redone after the next start).
        let drained = tokio::time::timeout(drain, async {
            while self.inflight.next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("tracker drain deadline passed; unfinished polls resume on next start");
        }
    }

    /// Whether a lane may start another poll.
    fn room(&self, lane: Lane) -> bool {
        let lane = lane as usize;
        self.busy[lane] < self.max_in_flight
            && self.pending[lane] < self.max_in_flight * PENDING_PER_REQUEST
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Track(state, delay) => self.track(state, delay),
            Command::Untrack(id) => {
                if let Some(entry) = self.entries.remove(&id) {
                    if let Some((lane, key)) = entry.key {
                        self.wheel(lane).remove(&key);
                    }
                    self.by_phase.moved(entry.phase, None);
                }
            }
            Command::PollNow(id, known, signal, reply) => {
                let _ = reply.send(self.poll_now(&id, known, signal));
            }
            Command::Polls(id, reply) => {
                let _ = reply.send(self.entries.get(&id).map(|e| e.polls));
            }
        }
    }

    fn track(&mut self, state: TrackState, delay: Option<Duration>) {
        if self.entries.contains_key(&state.id) {
            return;
        }
        let delay = delay.unwrap_or_else(|| self.deps.policy.first_delay(&state));
        let id = state.id.clone();
        let ceiling = self.deps.policy.ceiling(&state);
        let key = self
            .routine
            .insert_at(id.clone(), coalesced(self.epoch, delay, ceiling));
        self.by_phase.moved(None, state.phase);
        let entry = Entry {
            key: Some((Lane::Routine, key)),
            now: false,
            polls: state.polls,
            phase: state.phase,
            state: Some(state),
            again: false,
            raise: None,
        };
        self.entries.insert(id, entry);
    }

    fn start(&mut self, lane: Lane, id: TransferId, gate: Gate) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.key = None;
        let Some(mut state) = entry.state.take() else {
            return;
        };
        let (probe, fail) = match gate {
            Gate::Probe | Gate::Fail { probe: true } => (true, false),
            Gate::Fail { probe: false } => (false, true),
            Gate::Open | Gate::Hold(_) => (false, false),
        };
        if lane == Lane::Routine
            && gate == Gate::Open
            && !self.deps.upstream.budget().admit_routine()
        {
            // The pace moved on since we looked: back in line.
            entry.key = Some((lane, self.routine.insert(id, Duration::ZERO)));
            entry.state = Some(state);
            return;
        }
        if !fail {
            state.last_sent = Some(Instant::now());
        }
        let turn = match lane {
            Lane::Signal => Turn::Signal,
            Lane::Routine => Turn::Routine(entry.raise.insert(Arc::default()).clone()),
        };
        self.probing |= probe;
        self.launch(lane, state, (turn, probe, fail));
    }

    /// Into flight: the poll (or, past `auth_fail_after`, the ending without
    /// a request) as one of the lane's.
    fn launch(
        &mut self,
        lane: Lane,
        mut state: TrackState,
        (turn, probe, fail): (Turn, bool, bool),
    ) {
        self.busy[lane as usize] += 1;
        self.pending[lane as usize] += 1;
        let request = Request {
            lane,
            probe,
            answered: self.answered_tx.clone(),
        };
        let deps = self.deps.clone();
        self.inflight.push(Box::pin(async move {
            let step = if fail {
                drop(request);
                fail_auth(&deps, &mut state).await
            } else {
                poll_once(&deps, &mut state, turn, request).await
            };
            Done { lane, state, step }
        }));
    }

    fn settle(&mut self, done: Done) {
        let Done { lane, state, step } = done;
        self.pending[lane as usize] -= 1;
        let Some(entry) = self.entries.get_mut(&state.id) else {
            return; // untracked while in flight
        };
        entry.polls = state.polls;
        entry.raise = None;
        let was = std::mem::replace(&mut entry.phase, state.phase);
        match step {
            Step::Done => {
                self.entries.remove(&state.id);
                self.by_phase.moved(was, None);
            }
            Step::Again(delay) => self.requeue(state, was, delay),
        }
    }

    /// Back in a wheel after a poll: the signal lane while a signal or a
    /// held request wants it quickly (due at once, for a zero delay), else
    /// the routine wheel on its grid.
    fn requeue(&mut self, mut state: TrackState, was: Phase, delay: Duration) {
        let Some(entry) = self.entries.get_mut(&state.id) else {
            return;
        };
        let delay = match std::mem::take(&mut entry.again) {
            true => signal::pulled(&self.deps.config, &mut state, delay),
            false => delay,
        };
        let lane = match super::poll::signalled(&self.deps, &state) {
            true => Lane::Signal,
            false => Lane::Routine,
        };
        entry.key = match lane {
            Lane::Signal if delay.is_zero() => None,
            Lane::Signal => {
                let delay = delay.min(super::slack::MAX_DELAY);
                Some((lane, self.signal.insert(state.id.clone(), delay)))
            }
            Lane::Routine => {
                let ceiling = self.deps.policy.ceiling(&state);
                let at = coalesced(self.epoch, delay, ceiling);
                Some((lane, self.routine.insert_at(state.id.clone(), at)))
            }
        };
        let due_now = entry.key.is_none().then(|| state.id.clone());
        entry.state = Some(state);
        self.by_phase.moved(was, entry.phase);
        if let Some(id) = due_now {
            self.due_now(id);
        }
    }

    fn wheel(&mut self, lane: Lane) -> &mut DelayQueue<TransferId> {
        match lane {
            Lane::Signal => &mut self.signal,
            Lane::Routine => &mut self.routine,
        }
    }
}
