//! One poll of one transfer: the tracker's step function.
//!
//! The database sees a write per upstream status change and per state change,
//! never per unchanged poll.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::PollingConfig;
use super::integrations::Integrations;
use super::policy::{Completion, PollPolicy, backoff};
use super::state::{HELD_REPOLL, TrackState};
use crate::backoff::jitter;
use crate::lifecycle::{Finish, Finished, Lifecycle, Seen};
use crate::store::{self, StoreError};
use crate::transfer::{BridgeState, Waiters};
use crate::upstream::model::parse_time;
use crate::upstream::{
    CallTransfer, CircuitStatus, Disposition, Fetched, Priority, UpstreamClient, UpstreamError,
};

/// In the returned-call lane: within `returned_window` of a signal, or while
/// a request is held for it.
pub(super) fn signalled(deps: &PollDeps, st: &TrackState) -> bool {
    st.in_signal_window(deps.config.returned_window) || deps.waiters.is_held(&st.id)
}

/// Everything a poll needs; cheap to clone.
#[derive(Clone)]
pub struct PollDeps {
    /// Records what polls find and ends transfers (one transaction each).
    pub lifecycle: Lifecycle,
    pub upstream: UpstreamClient,
    pub config: PollingConfig,
    pub policy: Arc<dyn PollPolicy>,
    /// Names of the integrations whose signal trust the policy learns.
    pub integrations: Arc<Integrations>,
    /// Requests held with `?wait=`, woken when a transfer leaves TRACKING.
    pub waiters: Arc<Waiters>,
    /// `upstream.auth_fail_after`: how long refused credentials are waited
    /// out before transfers that come due end FAILED.
    pub auth_fail_after: Duration,
}

/// What the scheduler should do next with this transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Again(Duration),
    Done,
}

/// What a poll asks the budget for: the turn of the lane the scheduler
/// started it in, not what the state says by the time the poll runs (a
/// re-poll queued in the signal lane at the end of a signal's window would
/// otherwise wait, in flight, for the routine budget the scheduler never
/// asked: at the day's limit, until midnight).
pub enum Turn {
    Signal,
    /// Routine, until a returned-call signal for the transfer raises it
    /// (see [`UpstreamClient::get_routine`]).
    Routine(Arc<Notify>),
}

/// `request` is the caller's token for one upstream request in flight: it
/// is dropped as soon as the GET has its answer (or at once, when no GET is
/// needed), not when what the answer causes has been committed. So
/// `polling.max_in_flight` bounds requests to the upstream, and a burst of
/// completions waiting for their group commit does not hold the next GETs.
pub async fn poll_once<R>(deps: &PollDeps, st: &mut TrackState, turn: Turn, request: R) -> Step {
    let step = poll(deps, st, turn, request).await;
    // The transfer a signal's read saw stands for this poll only: what the
    // poll found may have changed the row since.
    st.known = None;
    step
}

async fn poll<R>(deps: &PollDeps, st: &mut TrackState, turn: Turn, request: R) -> Step {
    if st.age() > deps.config.max_tracking_time {
        drop(request);
        let reason = format!(
            "tracking time exceeded ({})",
            humantime::format_duration(deps.config.max_tracking_time)
        );
        return finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await;
    }
    st.polls += 1;
    let sent = Instant::now();
    let answer = match &turn {
        Turn::Signal => deps.upstream.get(st.id.as_str(), Priority::Signal).await,
        Turn::Routine(raised) => deps.upstream.get_routine(st.id.as_str(), raised).await,
    };
    drop(request);
    match answer {
        Ok(fetched) => on_resource(deps, st, fetched, sent).await,
        Err(e) => on_error(deps, st, e).await,
    }
}

/// The circuit has been open past `auth_fail_after`: end this transfer
/// without spending a request on it.
pub async fn fail_auth(deps: &PollDeps, st: &mut TrackState) -> Step {
    let reason = match deps.upstream.budget().circuit().status() {
        CircuitStatus::Open { error, .. } => format!("auth refused: {error}"),
        CircuitStatus::Closed => "auth refused".to_string(),
    };
    finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await
}

async fn on_resource(
    deps: &PollDeps,
    st: &mut TrackState,
    fetched: Fetched,
    sent: Instant,
) -> Step {
    st.failures = 0;
    let status = fetched.resource.status.clone();
    if let Some(done) = status.ends_tracking() {
        if done == BridgeState::Completed {
            let signalled = st.signalled_at.is_some();
            let lag = fetched
                .resource
                .completed_at()
                .filter(|_| !signalled)
                .map(|done| {
                    let late = OffsetDateTime::now_utc() - done;
                    Duration::try_from(late).unwrap_or_default()
                });
            deps.policy.observe_completion(&Completion {
                length: conversation_length(&fetched.resource),
                signalled,
                lag,
                integration: st.integration,
            });
        }
        let fetched = Arc::new(fetched);
        return finish_or_retry(deps, st, done, None, Some(&fetched)).await;
    }
    let phase = st.learn(&fetched.resource);
    if phase != st.phase {
        st.phase = phase;
        let seen = Seen {
            resource: &fetched.resource,
            raw: fetched.text(),
        };
        if let Err(e) = deps.lifecycle.upstream_seen(&st.id, seen, st.polls).await {
            tracing::warn!(call_transfer_id = %st.id, error = %e, "cannot record upstream status; will retry");
            st.phase = super::state::Phase::Unknown;
        }
    }
    // Intervals run from send to send: the time this GET (and the write
    // above) took is part of the wait, not added to it.
    Step::Again(next_delay(deps, st).saturating_sub(sent.elapsed()))
}

/// After a signal, re-poll at doubling intervals (in case the upstream lags
/// the PBX) for `returned_window`, though never sooner than the next signal
/// could pull a poll (so a PBX that keeps signalling does not restart the
/// quick re-polls each time); otherwise whatever the policy says, jittered,
/// but never past the policy's ceiling (`max_interval` for a transfer whose
/// signals are not trusted).
fn next_delay(deps: &PollDeps, st: &TrackState) -> Duration {
    if let Some(at) = st.signalled_at {
        let (interval, max) = (deps.config.returned_interval, deps.config.max_interval);
        let since = at.elapsed();
        // A signal has pulled a poll (`signalled_at` is set): the gap is
        // `returned_interval` or more.
        let delay = since.max(st.pull_gap(interval, max));
        if deps.waiters.is_held(&st.id) {
            return delay.min(HELD_REPOLL);
        }
        if since + delay <= deps.config.returned_window {
            return delay;
        }
    }
    let delay = jitter(deps.policy.next_delay(st), deps.config.jitter);
    delay.min(deps.policy.ceiling(st))
}

/// How long the agent had the call, by the upstream's own clock.
fn conversation_length(resource: &CallTransfer) -> Option<Duration> {
    let received = parse_time(resource.call_received_at.as_deref()?)?;
    (resource.completed_at()? - received).try_into().ok()
}

async fn on_error(deps: &PollDeps, st: &mut TrackState, e: UpstreamError) -> Step {
    st.failures += 1;
    match e.disposition() {
        Disposition::RetryLater { after } => {
            let delay = after.unwrap_or_else(|| backoff(&deps.config, st.failures));
            tracing::debug!(call_transfer_id = %st.id, error = %e, retry_in_ms = delay.as_millis() as u64, "upstream poll failed; retrying");
            Step::Again(delay)
        }
        Disposition::NotYetVisible if st.age() < deps.config.not_found_grace => {
            Step::Again(backoff(&deps.config, st.failures))
        }
        Disposition::NotYetVisible => {
            let reason = format!("upstream 404 past the not-found grace period: {e}");
            finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await
        }
        Disposition::FatalForTransfer => {
            finish_or_retry(deps, st, BridgeState::Failed, Some(e.to_string()), None).await
        }
        // The circuit is open now (the client saw the refusal); the scheduler
        // holds every transfer until it closes or `auth_fail_after` passes.
        Disposition::FatalForBridge => match deps.upstream.budget().circuit().status() {
            CircuitStatus::Open { open_for, .. } if open_for < deps.auth_fail_after => {
                Step::Again(Duration::ZERO)
            }
            _ => {
                let reason = format!("auth refused: {e}");
                finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await
            }
        },
    }
}

/// Commit the terminal state with its actions. While the store is
/// unavailable (a full disk) only the commit is retried, within a second of
/// the store's return: the outcome is known, so neither another upstream
/// request nor the poll backoff stands between it and the caller. Any other
/// database error keeps the transfer scheduled so nothing is lost. The poll's
/// upstream request was already given back, so a wait here holds no lane.
async fn finish_or_retry(
    deps: &PollDeps,
    st: &mut TrackState,
    state: BridgeState,
    reason: Option<String>,
    fetched: Option<&Arc<Fetched>>,
) -> Step {
    let commit = || finish(deps, st, state, reason.as_deref(), fetched);
    let result = store::while_unavailable("record a terminal state", None, commit).await;
    match result {
        Ok(()) => Step::Done,
        Err(e) => {
            st.failures += 1;
            tracing::error!(call_transfer_id = %st.id, error = %e, "cannot record terminal state; will retry");
            Step::Again(backoff(&deps.config, st.failures))
        }
    }
}

/// End tracking through the lifecycle (state, actions and what the
/// upstream said, in one transaction).
pub async fn finish(
    deps: &PollDeps,
    st: &TrackState,
    state: BridgeState,
    reason: Option<&str>,
    fetched: Option<&Arc<Fetched>>,
) -> Result<(), StoreError> {
    let finish = Finish {
        state,
        reason,
        seen: fetched,
        polls: Some(st.polls),
        known: st.known.as_ref(),
    };
    if let Finished::Changed { .. } = deps.lifecycle.finish(&st.id, finish).await? {
        record_finish(st, state, fetched);
    }
    Ok(())
}

/// Requests per transfer and, for completions, how late the bridge saw them.
fn record_finish(st: &TrackState, state: BridgeState, fetched: Option<&Arc<Fetched>>) {
    let signal = if st.signalled_at.is_some() {
        "true"
    } else {
        "false"
    };
    metrics::histogram!("bridge_upstream_requests_per_transfer", "state" => state.as_str(), "signal" => signal)
        .record(f64::from(st.polls));
    if state != BridgeState::Completed {
        return;
    }
    if let Some(done) = fetched.and_then(|f| f.resource.completed_at()) {
        let lag = (OffsetDateTime::now_utc() - done).as_seconds_f64().max(0.0);
        metrics::histogram!("bridge_detection_lag_seconds", "signal" => signal).record(lag);
    }
    if let Some(at) = st.signalled_at {
        metrics::histogram!("bridge_signal_to_detection_seconds")
            .record(at.elapsed().as_secs_f64());
    }
}
