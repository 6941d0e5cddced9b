//! CPU per upstream GET: the bridge process polls 1,000 transfers every
//! 1 s (fixed policy) until each completes after 15-30 s (about 23 GETs
//! each), against a plain reqwest loop making GETs at the same rate. The
//! figure is taken in a window with nothing but polls (after every
//! registration, before the first completion); the whole run, registration
//! and completions included, is reported beside it.

use std::time::Duration;

use serde_json::json;
use sqlx::AnyPool;
use tokio::time::Instant;
use transfer_bridge::simulator::{Script, Step};

use crate::bare::{self, BareReqwest};
use crate::burst::{count_agent_messages, each, settled};
use crate::process::BridgeProcess;
use crate::stand::Env;

/// The shortest call; the steady window ends before it.
const SHORTEST: Duration = Duration::from_secs(15);
/// The steady window, from this long after the last registration.
const WINDOW: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(12));

const SETTINGS: [(&str, &str); 8] = [
    ("BRIDGE_POLLING__POLICY", "fixed"),
    ("BRIDGE_POLLING__ACTIVE_INTERVAL", "1s"),
    ("BRIDGE_POLLING__ONGOING_INTERVAL", "1s"),
    ("BRIDGE_POLLING__TRUST_SIGNALS", "never"),
    ("BRIDGE_HTTP__REGISTER_RATE_PER_S", "1000000"),
    ("BRIDGE_HTTP__REGISTER_BURST", "1000000"),
    // 1,000 GETs/s is over the vendor's spike limit; the limiter itself
    // still runs for every GET.
    ("BRIDGE_UPSTREAM__RATE_LIMIT_PER_S", "20000"),
    ("BRIDGE_UPSTREAM__DAILY_BUDGET", "1000000000"),
];

#[derive(Debug)]
pub struct Polling {
    pub transfers: usize,
    /// In the steady window.
    pub gets: u64,
    pub ms_per_get: f64,
    /// The whole run: registration, polls, completions and their publishes.
    pub run_gets: u64,
    pub run_ms_per_get: f64,
    pub bare: BareReqwest,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Polling> {
    let sim = env.simulator().await?;
    sim.script("bare", script(Duration::from_secs(3600)));
    let seconds = (WINDOW.1 - WINDOW.0).as_secs_f64();
    let bare = bare::reqwest(&sim, "bare", n as f64, seconds).await?;
    let bridge = BridgeProcess::start(env, &sim.base_url(), &SETTINGS).await?;
    let store = bridge.store().await?;
    let _received = count_agent_messages(env, &bridge).await?;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("poll{i:05}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let extra = SHORTEST.mul_f64(i as f64 / n as f64);
        sim.script(id, script(SHORTEST + extra));
    }
    let (cpu0, gets0) = (bridge.cpu_seconds(), sim.counters().gets);
    let register = |id: &str| json!({"callTransferId": id, "returnSignal": false});
    each(&bridge, &ids, "/v1/transfers", register, 201).await?;
    let registered = Instant::now();
    tokio::time::sleep_until(registered + WINDOW.0).await;
    let (cpu1, gets1) = (bridge.cpu_seconds(), sim.counters().gets);
    tokio::time::sleep_until(registered + WINDOW.1).await;
    let (cpu2, gets2) = (bridge.cpu_seconds(), sim.counters().gets);
    all_done(&store).await?;
    settled(&store).await?;
    let (cpu3, gets3) = (bridge.cpu_seconds(), sim.counters().gets);
    store.close().await;
    bridge.stop(env).await?;
    sim.stop();
    let per_get = |cpu: f64, gets: u64| cpu * 1000.0 / gets.max(1) as f64;
    Ok(Polling {
        transfers: n,
        gets: gets2 - gets1,
        ms_per_get: per_get(cpu2 - cpu1, gets2 - gets1),
        run_gets: gets3 - gets0,
        run_ms_per_get: per_get(cpu3 - cpu0, gets3 - gets0),
        bare,
    })
}

/// ONGOING for `ongoing`, then COMPLETED with an AGENT outcome.
fn script(ongoing: Duration) -> Script {
    let step = |status: &str, for_ms| Step {
        status: status.into(),
        for_ms,
    };
    Script {
        timeline: vec![
            step("ONGOING", Some(ongoing.as_millis() as u64)),
            step("COMPLETED", None),
        ],
        output_context: Some(json!({"transferType": "AGENT", "currentTaskName": "poll"})),
        ..Script::default()
    }
}

/// Until no transfer is TRACKING (at most two minutes).
pub async fn all_done(store: &AnyPool) -> anyhow::Result<()> {
    for _ in 0..1200 {
        let tracking: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM transfers WHERE state = 'TRACKING'")
                .fetch_one(store)
                .await?;
        if tracking == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("transfers still TRACKING after two minutes")
}
