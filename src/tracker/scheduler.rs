//! The tracker loop: a timer wheel (tokio-util's `DelayQueue`) of transfers
//! and a bounded set of in-flight polls. No task lives per transfer.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};

use super::poll::{PollDeps, Step, poll_once};
use super::state::TrackState;
use crate::transfer::TransferId;

pub(super) enum Command {
    Track(TrackState, Duration),
    Untrack(TransferId),
    /// Poll now with priority; replies whether the transfer is tracked.
    PollNow(TransferId, oneshot::Sender<bool>),
    /// Live poll count, for the API.
    Polls(TransferId, oneshot::Sender<Option<u32>>),
}

struct Entry {
    key: Option<delay_queue::Key>,
    /// `None` while a poll of it is in flight (the poll owns the state).
    state: Option<TrackState>,
    /// A signal arrived mid-poll: poll again right after.
    again: bool,
    polls: u32,
}

type Polling = BoxFuture<'static, (TrackState, Step)>;

pub(super) struct Scheduler {
    deps: PollDeps,
    queue: DelayQueue<TransferId>,
    entries: HashMap<TransferId, Entry>,
    inflight: FuturesUnordered<Polling>,
    max_in_flight: usize,
}

impl Scheduler {
    pub(super) fn new(deps: PollDeps) -> Self {
        let max_in_flight = deps.config.max_in_flight;
        Self {
            deps,
            queue: DelayQueue::new(),
            entries: HashMap::new(),
            inflight: FuturesUnordered::new(),
            max_in_flight,
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        cancel: CancellationToken,
        drain: Duration,
    ) {
        loop {
            let room = self.inflight.len() < self.max_in_flight;
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(cmd) = rx.recv() => self.command(cmd),
                Some((st, step)) = self.inflight.next(), if !self.inflight.is_empty() => self.settle(st, step),
                Some(expired) = self.queue.next(), if room => self.start(expired.into_inner()),
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

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Track(state, delay) => {
                if self.entries.contains_key(&state.id) {
                    return;
                }
                let key = self.queue.insert(state.id.clone(), delay);
                let entry = Entry {
                    key: Some(key),
                    polls: state.polls,
                    state: Some(state),
                    again: false,
                };
                self.entries
                    .insert(entry.state.as_ref().expect("just set").id.clone(), entry);
                self.gauge();
            }
            Command::Untrack(id) => {
                if let Some(entry) = self.entries.remove(&id)
                    && let Some(key) = entry.key
                {
                    self.queue.remove(&key);
                }
                self.gauge();
            }
            Command::PollNow(id, reply) => {
                let _ = reply.send(self.poll_now(&id));
            }
            Command::Polls(id, reply) => {
                let _ = reply.send(self.entries.get(&id).map(|e| e.polls));
            }
        }
    }

    fn poll_now(&mut self, id: &TransferId) -> bool {
        let Some(entry) = self.entries.get_mut(id) else {
            return false;
        };
        match (&mut entry.state, entry.key.take()) {
            (Some(state), Some(key)) => {
                state.returned = true;
                // Jump the queue: due now, ahead of routine polls.
                self.queue.remove(&key);
                let key = self.queue.insert(id.clone(), Duration::ZERO);
                entry.key = Some(key);
            }
            _ => entry.again = true,
        }
        true
    }

    fn start(&mut self, id: TransferId) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        entry.key = None;
        let Some(mut state) = entry.state.take() else {
            return;
        };
        let deps = self.deps.clone();
        self.inflight.push(Box::pin(async move {
            let step = poll_once(&deps, &mut state).await;
            (state, step)
        }));
    }

    fn settle(&mut self, mut state: TrackState, step: Step) {
        let Some(entry) = self.entries.get_mut(&state.id) else {
            return; // untracked while in flight
        };
        entry.polls = state.polls;
        match step {
            Step::Done => {
                self.entries.remove(&state.id);
                self.gauge();
            }
            Step::Again(delay) => {
                let delay = if std::mem::take(&mut entry.again) {
                    state.returned = true;
                    Duration::ZERO
                } else {
                    delay
                };
                entry.key = Some(self.queue.insert(state.id.clone(), delay));
                entry.state = Some(state);
            }
        }
    }

    fn gauge(&self) {
        metrics::gauge!("bridge_tracked_transfers").set(self.entries.len() as f64);
    }
}
