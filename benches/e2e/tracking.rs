//! One tracking run: N scripted transfers under one poll policy, with or
//! without returned-call signals, measured at the simulator and the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tokio::time::Instant;
use transfer_bridge::config::{Config, PolicyKind, TrustSignals};
use transfer_bridge::simulator::{Script, Step};

use crate::population::{self, Call};
use crate::proc::{Cpu, quantile};
use crate::stand::{Env, Stand};

/// After the upstream shows COMPLETED, the PBX's signal arrives this much later.
const SIGNAL_DELAY: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub policy: PolicyKind,
    /// Fixed: the interval; adaptive: the p95 lag target. Real seconds.
    pub seconds: f64,
    /// `Some`: the PBX signals every call, trusted this way.
    pub signals: Option<TrustSignals>,
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: Scenario,
    pub transfers: usize,
    pub gets_per_transfer: f64,
    /// Upstream completedAt to the bridge's commit, real-time seconds.
    pub lag: [f64; 3],
    /// Signal sent to the bridge's commit, milliseconds (not compressed).
    pub signal_lag_ms: Option<[f64; 3]>,
    pub completions_per_s: f64,
    pub cpu_per_1k: f64,
    /// Most GETs the simulator saw in any 1-second window, and the limit.
    pub peak_window: (usize, u32),
}

pub async fn run(env: &Env, s: &Scenario) -> anyhow::Result<Outcome> {
    let x = env.compression;
    let stand = env.stand(|c| configure(c, s, x)).await?;
    // The first `warmup` transfers run but are not counted: a running bridge
    // has learned its call lengths (the adaptive policy starts from a prior
    // that is deliberately off). Every policy gets the same treatment.
    let calls = population::calls(env.warmup + env.transfers, s.concurrency, x, 7);
    let signalled = Arc::new(Mutex::new(HashMap::new()));
    let cpu = Cpu::now();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, call) in calls.iter().enumerate() {
        tokio::time::sleep_until(start + call.arrives).await;
        let id = format!("t{i:06}-{}", uuid::Uuid::new_v4().simple());
        stand.sim.script(&id, script(call));
        let done_at = Instant::now() + call.active + call.ongoing;
        tasks.spawn(register(stand.http.clone(), stand.base.clone(), id.clone()));
        if s.signals.is_some() {
            let (http, base, log) = (stand.http.clone(), stand.base.clone(), signalled.clone());
            tasks.spawn(async move {
                tokio::time::sleep_until(done_at + SIGNAL_DELAY).await;
                log.lock()
                    .unwrap()
                    .insert(id.clone(), OffsetDateTime::now_utc());
                let url = format!("{base}/v1/transfers/{id}/returned");
                let status = http.post(url).send().await?.status();
                anyhow::ensure!(status.is_success(), "returned: {status}");
                Ok(())
            });
        }
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    wait_done(&stand).await?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = Cpu::now().bridge_since(&cpu);
    let signalled = signalled.lock().unwrap().clone();
    let outcome = measure(&stand, s, &signalled, env.warmup, x, wall, cpu).await;
    stand.stop(&env.broker).await?;
    outcome
}

fn configure(c: &mut Config, s: &Scenario, x: f64) {
    let scaled = |real: f64| Duration::from_secs_f64(real / x);
    let p = &mut c.polling;
    p.policy = s.policy;
    p.active_interval = scaled(s.seconds);
    p.ongoing_interval = scaled(s.seconds);
    p.target_lag = scaled(s.seconds);
    // The defaults' ratio (1 s for a 5 s target).
    p.min_interval = scaled(s.seconds / 5.0);
    p.max_interval = scaled(30.0);
    p.expiry_margin = scaled(0.5);
    p.prior_median = scaled(180.0);
    p.safety_interval = scaled(600.0);
    p.trust_signals = s.signals.unwrap_or(TrustSignals::Never);
    p.max_in_flight = 64;
    // The vendor's spike limit, in compressed time; the daily budget cannot
    // be compressed (it resets at real UTC midnight), so it is set out of
    // the way here and exercised by the tests instead.
    c.upstream.rate_limit_per_s = (100.0 * x) as u32;
    c.upstream.daily_budget = 1_000_000_000;
}

fn script(call: &Call) -> Script {
    let step = |status: &str, d: Option<Duration>| Step {
        status: status.into(),
        for_ms: d.map(|d| (d.as_millis() as u64).max(1)),
    };
    Script {
        timeline: vec![
            step("ACTIVE", Some(call.active)),
            step("ONGOING", Some(call.ongoing)),
            step("COMPLETED", None),
        ],
        output_context: Some(json!({"transferType": "SYSTEM", "currentTaskName": "bench"})),
        ..Script::default()
    }
}

async fn register(http: reqwest::Client, base: String, id: String) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/v1/transfers"))
        .json(&json!({"callTransferId": id}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status() == 201,
        "register {id}: {}",
        response.status()
    );
    Ok(())
}

async fn wait_done(stand: &Stand) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while stand.tracking().await? > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "transfers still tracking after 10 min"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn measure(
    stand: &Stand,
    s: &Scenario,
    signalled: &HashMap<String, OffsetDateTime>,
    warmup: usize,
    x: f64,
    wall: f64,
    cpu: f64,
) -> anyhow::Result<Outcome> {
    let all = sqlx::query(
        "SELECT id, state, updated_at, json_extract(upstream_json, '$.completedAt') AS done \
         FROM transfers ORDER BY id",
    )
    .fetch_all(stand.store.pool())
    .await?;
    let total = all.len();
    // Ids start with their arrival index, so this skips the warm-up.
    let rows = &all[warmup.min(total)..];
    let counters = stand.sim.counters();
    let (mut lags, mut signal_lags, mut gets) = (Vec::new(), Vec::new(), 0u64);
    for row in rows {
        let id: String = row.get("id");
        let state: String = row.get("state");
        anyhow::ensure!(state == "COMPLETED", "{id} ended {state}");
        let seen = parse(row.get("updated_at"))?;
        let done = parse(row.get("done"))?;
        lags.push((seen - done).as_seconds_f64() * x);
        if let Some(sent) = signalled.get(&id) {
            signal_lags.push((seen - *sent).as_seconds_f64() * 1000.0);
        }
        gets += counters.transfers.get(&id).map_or(0, |c| c.get);
    }
    let n = rows.len();
    lags.sort_by(f64::total_cmp);
    signal_lags.sort_by(f64::total_cmp);
    let q3 = |v: &[f64]| [quantile(v, 0.5), quantile(v, 0.95), quantile(v, 0.99)];
    Ok(Outcome {
        scenario: s.clone(),
        transfers: n,
        gets_per_transfer: gets as f64 / n as f64,
        lag: q3(&lags),
        signal_lag_ms: (!signal_lags.is_empty()).then(|| q3(&signal_lags)),
        completions_per_s: total as f64 / wall,
        cpu_per_1k: cpu / total as f64 * 1000.0,
        peak_window: (
            peak_window(stand).await?,
            stand.config.upstream.rate_limit_per_s,
        ),
    })
}

fn parse(raw: Option<String>) -> anyhow::Result<OffsetDateTime> {
    let raw = raw.context("missing timestamp")?;
    Ok(OffsetDateTime::parse(&raw, &Rfc3339)?)
}

/// The busiest 1-second window of GETs at the simulator (its last 100k).
async fn peak_window(stand: &Stand) -> anyhow::Result<usize> {
    let url = format!("{}/_sim/requests", stand.sim.base_url());
    let requests: Vec<Value> = stand.http.get(url).send().await?.json().await?;
    let times: Vec<i64> = requests
        .iter()
        .filter(|r| r["method"] == "GET")
        .filter_map(|r| r["atMs"].as_i64())
        .collect();
    let mut peak = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= 1000 {
            lo += 1;
        }
        peak = peak.max(hi - lo + 1);
    }
    Ok(peak)
}
