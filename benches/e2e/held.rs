//! Memory per held request: `transfer-bridge serve` as its own process (the
//! CLI, the default config but for its upstream, store and names), `n`
//! pulls with `?wait=` held at once, RSS read from /proc before and after.
//! The figure includes each request's connection, as a PBX's pull holds one.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use transfer_bridge::simulator::{Script, Step};

use crate::process::BridgeProcess;
use crate::stand::Env;

#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub requests: usize,
    pub bytes_per_request: f64,
    /// The same number of idle keep-alive connections (one quick request
    /// each): what a connection alone costs, for comparison.
    pub bytes_per_idle_connection: f64,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Held> {
    let sim = env.simulator().await?;
    let settings = [
        ("BRIDGE_HTTP__REGISTER_RATE_PER_S", "100000"),
        ("BRIDGE_HTTP__REGISTER_BURST", "100000"),
    ];
    let bridge = BridgeProcess::start(env, &sim.base_url(), &settings).await?;
    let base = bridge.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let ids: Vec<String> = (0..n).map(|i| format!("held-{i:05}")).collect();
    for id in &ids {
        sim.script(id, ongoing_for_an_hour());
        let body = json!({"callTransferId": id, "returnSignal": true});
        let r = http
            .post(format!("{base}/v1/transfers"))
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "register {id}: {}", r.status());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, per_idle) = idle_connections(&bridge, n).await?;
    let before = bridge.rss_kib()?;
    let mut pulls = JoinSet::new();
    for id in &ids {
        let request = http.get(format!("{base}/v1/transfers/{id}/sip?wait=30s"));
        pulls.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    wait_held(&http, &base, n).await?;
    let after = bridge.rss_kib()?;
    bridge.stop(env).await?;
    drop(idle);
    while pulls.join_next().await.is_some() {}
    sim.stop();
    Ok(Held {
        requests: n,
        bytes_per_request: (after.saturating_sub(before) * 1024) as f64 / n as f64,
        bytes_per_idle_connection: per_idle,
    })
}

/// `n` connections that made one quick request each and stay open in the
/// client's pool; returns the client (dropping it closes them) and the
/// bridge's RSS growth per connection.
async fn idle_connections(
    bridge: &BridgeProcess,
    n: usize,
) -> anyhow::Result<(reqwest::Client, f64)> {
    let base = &bridge.base;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .pool_idle_timeout(Duration::from_secs(300))
        .build()?;
    let before = bridge.rss_kib()?;
    let mut requests = JoinSet::new();
    for _ in 0..n {
        let request = http.get(format!("{base}/healthz"));
        requests.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    while let Some(done) = requests.join_next().await {
        anyhow::ensure!(done??.is_success(), "healthz failed");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = bridge.rss_kib()?.saturating_sub(before) * 1024;
    Ok((http, grown as f64 / n as f64))
}

fn ongoing_for_an_hour() -> Script {
    Script {
        timeline: vec![Step {
            status: "ONGOING".into(),
            for_ms: None,
        }],
        ..Script::default()
    }
}

/// Until the bridge's own gauge says every pull is held.
async fn wait_held(http: &reqwest::Client, base: &str, n: usize) -> anyhow::Result<()> {
    let want = format!("bridge_held_requests {n}");
    for _ in 0..400 {
        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        if metrics.lines().any(|l| l == want) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{n} pulls were not all held within 20 s")
}
