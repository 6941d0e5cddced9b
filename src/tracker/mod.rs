//! Poll scheduling: every TRACKING transfer is polled until the upstream says
//! COMPLETED or EXPIRED, or the bridge gives up (FAILED).

mod adaptive;
mod config;
mod crossing_point;
mod durations;
mod feedback;
mod gate;
mod integrations;
mod learned;
mod policy;
mod poll;
mod recalibration;
mod scheduler;
mod signals;
mod slack;
mod state;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use adaptive::AdaptivePolicy;
pub use config::{PolicyKind, PollingConfig, TrustSignals};
pub use durations::Durations;
pub use integrations::{IntegrationId, Integrations, SHARED as SHARED_INTEGRATION};
pub use learned::{DurationLog, Learned};
pub use policy::{
    Completion, FixedPolicy, PollPolicy, backoff, from_config as policy_from_config, sharing_policy,
};
pub use poll::{PollDeps, Step, Turn, fail_auth, finish, poll_once};
pub use signals::SignalAware;
pub use state::{Phase, Signal, TrackState};

use crate::transfer::{Transfer, TransferId};
use scheduler::{Command, Scheduler};

/// Commands waiting for the loop; registration awaits when it is full, which
/// is the API's backpressure.
const COMMAND_QUEUE: usize = 10_000;

/// Handle to the tracker loop; cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Command>,
    integrations: Arc<Integrations>,
}

impl Tracker {
    /// Start the loop on `tasks`; it stops when `cancel` fires, draining
    /// in-flight polls for at most `drain`.
    pub fn spawn(
        deps: PollDeps,
        tasks: &TaskTracker,
        cancel: CancellationToken,
        drain: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let integrations = deps.integrations.clone();
        tasks.spawn(Scheduler::new(deps).run(rx, cancel, drain));
        Self { tx, integrations }
    }

    /// The id of an integration name (`None`: the shared bucket).
    /// Whether the polling loop still runs (it takes commands): `/readyz`
    /// reports a bridge whose loop has stopped as not ready.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    pub fn integration(&self, name: Option<&str>) -> IntegrationId {
        self.integrations.id(name)
    }

    /// Start tracking; the first poll happens after `delay`.
    pub async fn track(&self, state: TrackState, delay: Duration) {
        let _ = self.tx.send(Command::Track(state, Some(delay))).await;
    }

    /// Start tracking when the policy says: at once if the upstream status
    /// is unknown, else as if `state` had just been polled.
    pub async fn track_per_policy(&self, state: TrackState) {
        let _ = self.tx.send(Command::Track(state, None)).await;
    }

    pub async fn untrack(&self, id: TransferId) {
        let _ = self.tx.send(Command::Untrack(id)).await;
    }

    /// The call came back: poll now, ahead of routine polls. The polls
    /// made so far (the API's answer shows them, and asking in the same
    /// message spares it a second round trip to the scheduler); `None` when
    /// the transfer is not being tracked.
    /// `known`: the transfer as the caller just read it, for the ending
    /// that poll may bring (see [`TrackState::known`]).
    pub async fn poll_now(
        &self,
        id: TransferId,
        known: Option<Arc<Transfer>>,
        signal: Signal,
    ) -> Option<u32> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::PollNow(id, known, signal, reply))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Polls made so far, if the transfer is tracked.
    pub async fn polls(&self, id: TransferId) -> Option<u32> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Polls(id, reply)).await.ok()?;
        rx.await.ok().flatten()
    }
}
