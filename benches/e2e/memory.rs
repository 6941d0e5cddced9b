//! Resident memory per tracked transfer: 100k transfers registered straight
//! into the tracker (no HTTP, no store rows), due in an hour, measured as the
//! growth of VmRSS.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transfer_bridge::lifecycle::Lifecycle;
use transfer_bridge::tracker::{
    Integrations, Phase, PollDeps, TrackState, Tracker, policy_from_config,
};
use transfer_bridge::transfer::TransferId;
use transfer_bridge::transfer::Waiters;
use transfer_bridge::upstream::{Budget, UpstreamClient};

use crate::proc::status_kib;
use crate::stand::Env;

#[derive(Debug)]
pub struct Memory {
    pub tracked: usize,
    pub bytes_per_transfer: f64,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Memory> {
    // A bridge's configuration; nothing here sends a request.
    let stand = env.stand(|_| {}).await?;
    let config = stand.config.clone();
    let store = stand.store.clone();
    let measured = env
        .bridge_rt
        .spawn(async move {
            let budget = Arc::new(Budget::new(&config.upstream));
            let integrations = Integrations::new();
            let waiters = Waiters::new(config.http.max_waiters);
            let router = config.router();
            let wake = Arc::new(Notify::new());
            let deps = PollDeps {
                lifecycle: Lifecycle::new(
                    store.clone(),
                    router,
                    transfer_bridge::outbox::Handoff::wake_only(wake),
                    waiters.clone(),
                    "bench".into(),
                ),
                upstream: UpstreamClient::new(&config.upstream, budget)?,
                config: config.polling.clone(),
                policy: policy_from_config(&config.polling, integrations.clone()),
                integrations,
                waiters,
                auth_fail_after: config.upstream.auth_fail_after,
            };
            track(deps, n).await
        })
        .await??;
    stand.stop(&env.broker).await?;
    Ok(measured)
}

async fn track(deps: PollDeps, n: usize) -> anyhow::Result<Memory> {
    let tasks = TaskTracker::new();
    let cancel = CancellationToken::new();
    let tracker = Tracker::spawn(deps, &tasks, cancel.clone(), Duration::from_secs(1));
    let before = status_kib("VmRSS");
    let mut last = None;
    for _ in 0..n {
        // Ids as long as the vendor's examples (a UUID), allocated here so
        // they count.
        let id = TransferId::parse(&uuid::Uuid::new_v4().to_string()).expect("uuids are valid ids");
        last = Some(id.clone());
        let mut state = TrackState::new(id, OffsetDateTime::now_utc());
        state.phase = Phase::Ongoing;
        tracker.track(state, Duration::from_secs(3600)).await;
    }
    let last = last.expect("n > 0");
    // The tracker handles commands in order: once it answers for the last
    // one, it holds all of them.
    anyhow::ensure!(
        tracker.polls(last).await.is_some(),
        "tracker lost a transfer"
    );
    let after = status_kib("VmRSS");
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(Memory {
        tracked: n,
        bytes_per_transfer: (after.saturating_sub(before) * 1024) as f64 / n as f64,
    })
}
