//! Many calls come back at once, each announced by its PBX with a
//! headers-only SIP return (`POST /v1/sip/returns`, the Refer-To the PBX
//! received): no upstream call, just the completion, its routing and the
//! answer, while the caller waits on the line. The bridge runs as its own
//! process on its defaults (returns are not rate-limited); `CONCURRENCY`
//! PBX requests are in flight at a time. The floor, in the same run against
//! the same process: as many `GET /healthz` at the same concurrency (HTTP
//! and the runtime, no store).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use crate::burst::{CONCURRENCY, count_agent_messages, settled};
use crate::proc::p50_p95_p99;
use crate::process::BridgeProcess;
use crate::stand::Env;

#[derive(Debug)]
pub struct Returns {
    pub returns: usize,
    pub store: &'static str,
    /// Returns answered per second, and latency p50 / p95 / p99 in ms.
    pub rate: f64,
    pub latency_ms: [f64; 3],
    /// The last agent message arrived this long after the first return.
    pub routed_s: f64,
    pub cpu_ms_per_return: f64,
    /// `GET /healthz` at the same concurrency: per second, p50 / p95 / p99.
    pub floor_rate: f64,
    pub floor_ms: [f64; 3],
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Returns> {
    let sim = env.simulator().await?;
    let bridge = BridgeProcess::start(env, &sim.base_url(), &[]).await?;
    let store = bridge.store().await?;
    let received = count_agent_messages(env, &bridge).await?;
    let healthz = format!("{}/healthz", bridge.base);
    let (floor_rate, floor_ms) = timed(n, |_| bridge.http.get(&healthz), 200).await?;
    let url = format!("{}/v1/sip/returns", bridge.base);
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let request = |i: usize| {
        let refer_to = format!(
            "sip:queue@acd.example.com?X-GA-extConId=ret{i:05}-{tag}&X-GA-transfer=AGENT&X-GA-taskName=billing"
        );
        bridge.http.post(&url).json(&json!({ "referTo": refer_to }))
    };
    let cpu = bridge.cpu_seconds();
    let at = Instant::now();
    let (rate, latency_ms) = timed(n, request, 201).await?;
    let deadline = at + Duration::from_secs(300);
    while received.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let routed_s = at.elapsed().as_secs_f64();
    let cpu = bridge.cpu_seconds() - cpu;
    anyhow::ensure!(
        received.load(Ordering::SeqCst) == n,
        "{} of {n} returns routed",
        received.load(Ordering::SeqCst)
    );
    settled(&store).await?;
    store.close().await;
    let backend = bridge.backend();
    bridge.stop(env).await?;
    sim.stop();
    Ok(Returns {
        returns: n,
        store: backend,
        rate,
        latency_ms,
        routed_s,
        cpu_ms_per_return: cpu * 1000.0 / n as f64,
        floor_rate,
        floor_ms,
    })
}

/// `n` requests, `CONCURRENCY` in flight, each expected to answer `expect`:
/// requests per second and latency p50 / p95 / p99 in ms.
async fn timed(
    n: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
    expect: u16,
) -> anyhow::Result<(f64, [f64; 3])> {
    let start = Instant::now();
    let requests = (0..n).map(|i| {
        let request = request(i);
        async move {
            let at = Instant::now();
            let status = request.send().await?.status().as_u16();
            anyhow::ensure!(status == expect, "request {i}: {status}, not {expect}");
            anyhow::Ok(at.elapsed().as_secs_f64() * 1000.0)
        }
    });
    let mut results = futures::stream::iter(requests).buffer_unordered(CONCURRENCY);
    let mut ms = Vec::with_capacity(n);
    while let Some(result) = results.next().await {
        ms.push(result?);
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    Ok((rate, p50_p95_p99(&mut ms)))
}
