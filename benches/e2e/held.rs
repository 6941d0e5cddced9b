//! Memory per held request: `transfer-bridge serve` as its own process (the
//! CLI, the default config but for its upstream, store and names), `n`
//! pulls with `?wait=` held at once, RSS read from /proc before and after.
//! The figure includes each request's connection, as a PBX's pull holds one.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use tokio::task::JoinSet;
use transfer_bridge::simulator::{Script, Step};

use crate::stand::{Env, SIM_ID, SIM_SECRET};

#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub requests: usize,
    pub bytes_per_request: f64,
    /// The same number of idle keep-alive connections (one quick request
    /// each): what a connection alone costs, for comparison.
    pub bytes_per_idle_connection: f64,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Held> {
    let sim = env
        .sim_rt
        .spawn(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            transfer_bridge::simulator::start(listener, SIM_ID, SIM_SECRET)
        })
        .await??;
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let mut bridge = Bridge(spawn(
        &sim.base_url(),
        dir.path(),
        port,
        tag,
        &env.amqp_url,
    )?);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    ready(&http, &base).await?;
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
    let (idle, per_idle) = idle_connections(&base, n, bridge.0.id()).await?;
    let before = rss_kib(bridge.0.id())?;
    let mut pulls = JoinSet::new();
    for id in &ids {
        let request = http.get(format!("{base}/v1/transfers/{id}/sip?wait=30s"));
        pulls.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    wait_held(&http, &base, n).await?;
    let after = rss_kib(bridge.0.id())?;
    bridge.stop();
    drop(idle);
    while pulls.join_next().await.is_some() {}
    sim.stop();
    cleanup(env, tag).await?;
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
    base: &str,
    n: usize,
    pid: u32,
) -> anyhow::Result<(reqwest::Client, f64)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .pool_idle_timeout(Duration::from_secs(300))
        .build()?;
    let before = rss_kib(pid)?;
    let mut requests = JoinSet::new();
    for _ in 0..n {
        let request = http.get(format!("{base}/healthz"));
        requests.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    while let Some(done) = requests.join_next().await {
        anyhow::ensure!(done??.is_success(), "healthz failed");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grown = rss_kib(pid)?.saturating_sub(before) * 1024;
    Ok((http, grown as f64 / n as f64))
}

/// Killed when dropped, so a failed run leaves no bridge behind.
struct Bridge(Child);

impl Bridge {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    upstream: &str,
    dir: &std::path::Path,
    port: u16,
    tag: &str,
    amqp: &str,
) -> anyhow::Result<Child> {
    let names = |what: &str| format!("bench-{tag}.transfer.{what}");
    Command::new(env!("CARGO_BIN_EXE_transfer-bridge"))
        .arg("serve")
        .current_dir(dir)
        .env("BRIDGE_UPSTREAM__BASE_URL", upstream)
        .env("BRIDGE_UPSTREAM__API_ID", SIM_ID)
        .env("BRIDGE_UPSTREAM__API_SECRET", SIM_SECRET)
        .env("BRIDGE_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("BRIDGE_HTTP__REGISTER_RATE_PER_S", "100000")
        .env("BRIDGE_HTTP__REGISTER_BURST", "100000")
        .env("BRIDGE_AMQP__URL", amqp)
        .env("BRIDGE_AMQP__AGENT_EXCHANGE", names("agent"))
        .env("BRIDGE_AMQP__PBX_EXCHANGE", names("pbx"))
        .env("BRIDGE_AMQP__AUDIT_EXCHANGE", names("audit"))
        .env("BRIDGE_AMQP__AUDIT_QUEUE", names("audit"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting transfer-bridge serve")
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

async fn ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the bridge process was not ready within 10 s")
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

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    let kib = line.split_whitespace().nth(1).context("no VmRSS value")?;
    Ok(kib.parse()?)
}

async fn cleanup(env: &Env, tag: &str) -> anyhow::Result<()> {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let name = |what: &str| format!("bench-{tag}.transfer.{what}");
    let queue = name("audit");
    env.broker
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await?;
    for what in ["agent", "pbx", "audit"] {
        let exchange = name(what);
        env.broker
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}
