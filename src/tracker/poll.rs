//! One poll of one transfer: the tracker's step function.
//!
//! The database sees a write per upstream status change and per state change,
//! never per unchanged poll.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::policy::{PollPolicy, backoff};
use super::state::{Phase, TrackState};
use crate::config::PollingConfig;
use crate::outbox::repo;
use crate::routing::Router;
use crate::store::{self, Store, StoreError};
use crate::transfer::BridgeState;
use crate::upstream::{Disposition, Fetched, Priority, UpstreamClient, UpstreamError};

/// Everything a poll needs; cheap to clone.
#[derive(Clone)]
pub struct PollDeps {
    pub store: Store,
    pub upstream: UpstreamClient,
    pub router: Router,
    /// Wakes the outbox dispatcher after new actions commit.
    pub outbox_wake: Arc<Notify>,
    pub config: PollingConfig,
    pub policy: Arc<dyn PollPolicy>,
}

/// What the scheduler should do next with this transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Again(Duration),
    Done,
}

pub async fn poll_once(deps: &PollDeps, st: &mut TrackState) -> Step {
    if st.age() > deps.config.max_tracking_time {
        let reason = format!(
            "tracking time exceeded ({})",
            humantime::format_duration(deps.config.max_tracking_time)
        );
        return finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await;
    }
    st.polls += 1;
    let priority = if st.returned {
        Priority::Signal
    } else {
        Priority::Routine
    };
    let result = deps.upstream.get(st.id.as_str(), priority).await;
    metrics::counter!("bridge_upstream_requests_total", "outcome" => outcome_label(&result))
        .increment(1);
    match result {
        Ok(fetched) => on_resource(deps, st, fetched).await,
        Err(e) => on_error(deps, st, e).await,
    }
}

async fn on_resource(deps: &PollDeps, st: &mut TrackState, fetched: Fetched) -> Step {
    st.failures = 0;
    let status = fetched.resource.status.clone();
    if let Some(done) = BridgeState::after_upstream(&status) {
        if done == BridgeState::Completed {
            deps.policy.observe_completion(st);
        }
        return finish_or_retry(deps, st, done, None, Some(&fetched)).await;
    }
    let phase = Phase::of(&status);
    if let Some(expires) = fetched.resource.expires_at() {
        st.expires_at = Some(expires);
    }
    if phase != st.phase {
        if phase == Phase::Ongoing {
            st.ongoing_since = Some(Instant::now());
        }
        st.phase = phase;
        let write = async {
            let mut conn = deps.store.pool().acquire().await?;
            store::record_upstream(&mut conn, &st.id, status.as_str(), &fetched.raw, st.polls).await
        };
        if let Err(e) = write.await {
            tracing::warn!(call_transfer_id = %st.id, error = %e, "cannot record upstream status; will retry");
            st.phase = Phase::Unknown;
        }
    }
    Step::Again(deps.policy.next_delay(st))
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
        Disposition::FatalForBridge => {
            tracing::error!(call_transfer_id = %st.id, error = %e, "upstream refused our credentials");
            let reason = format!("auth refused: {e}");
            finish_or_retry(deps, st, BridgeState::Failed, Some(reason), None).await
        }
    }
}

/// Commit the terminal state with its actions; on a database error keep the
/// transfer scheduled so nothing is lost.
async fn finish_or_retry(
    deps: &PollDeps,
    st: &mut TrackState,
    state: BridgeState,
    reason: Option<String>,
    fetched: Option<&Fetched>,
) -> Step {
    match finish(deps, st, state, reason.as_deref(), fetched).await {
        Ok(()) => Step::Done,
        Err(e) => {
            st.failures += 1;
            tracing::error!(call_transfer_id = %st.id, error = %e, "cannot record terminal state; will retry");
            Step::Again(backoff(&deps.config, st.failures))
        }
    }
}

/// State change and the actions it causes, in one transaction.
pub async fn finish(
    deps: &PollDeps,
    st: &TrackState,
    state: BridgeState,
    reason: Option<&str>,
    fetched: Option<&Fetched>,
) -> Result<(), StoreError> {
    let mut tx = deps.store.begin().await?;
    if let Some(f) = fetched {
        store::record_upstream(
            &mut tx,
            &st.id,
            f.resource.status.as_str(),
            &f.raw,
            st.polls,
        )
        .await?;
    }
    let Some(mut transfer) = store::fetch(&mut tx, &st.id).await? else {
        return Ok(());
    };
    transfer.state = state;
    transfer.reason = reason.map(str::to_owned);
    transfer.polls = st.polls;
    let plan = deps
        .router
        .plan(&transfer, state, fetched.map(|f| &f.resource));
    let sip = plan.event.sip.as_ref();
    // A route that could not run in full says why in the event; keep it.
    let reason = reason.or(plan.event.reason.as_deref());
    if !store::finish(&mut tx, &st.id, state, reason, Some(st.polls), sip).await? {
        // Cancelled (or finished) meanwhile: that change already has its actions.
        return Ok(());
    }
    let actions = plan.actions;
    repo::enqueue(&mut tx, &actions).await?;
    tx.commit().await?;
    metrics::counter!("bridge_transfers_finished_total", "state" => state.as_str()).increment(1);
    metrics::histogram!("bridge_polls_per_transfer").record(f64::from(st.polls));
    tracing::info!(call_transfer_id = %st.id, state = %state, polls = st.polls, actions = actions.len(), "transfer finished");
    deps.outbox_wake.notify_one();
    Ok(())
}

fn outcome_label(result: &Result<Fetched, UpstreamError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.label(),
    }
}
