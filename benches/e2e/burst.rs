//! Ten thousand transfers completing at the same instant, each signalled
//! with `/returned`: every AGENT outcome must reach a queue bound to the
//! agent exchange, each publish confirmed by the broker before the outbox
//! settles it. The bridge runs as its own process (`process.rs`), against a
//! plain lapin loop publishing as many messages in the same run: two per
//! completion (the agent message and the `transfer.completed` audit record).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sqlx::AnyPool;
use tokio::time::Instant;
use transfer_bridge::simulator::{Script, Step};

use transfer_bridge::config::Config;
use transfer_bridge::delivery::amqp::topology::audit_queue_args;

use crate::bare::{self, BareLapin, Topology};
use crate::proc::MachineCpu;
use crate::process::BridgeProcess;
use crate::stand::Env;

pub const CONCURRENCY: usize = 64;

#[derive(Debug)]
pub struct Burst {
    pub transfers: usize,
    /// SQLite or PostgreSQL.
    pub store: &'static str,
    pub received: usize,
    pub confirmed: i64,
    /// Messages the bridge published in the drain (agent and audit).
    pub published: i64,
    /// From the instant all completed to the last message received.
    pub drain_s: f64,
    /// When the last `/returned` was answered, and how many agent messages
    /// had arrived by then.
    pub signalled: (f64, usize),
    /// Bridge process CPU over the drain, per completion.
    pub cpu_ms_per_completion: f64,
    /// The machine over the drain: busy CPU seconds, the broker's, the
    /// bench's (its HTTP clients and simulator).
    pub machine: MachineCpu,
    /// The registrations before the burst, 64 at a time: seconds, and
    /// bridge CPU per registration.
    pub registered: (f64, f64),
    /// After the drain, each registration again, the same body (an IVR
    /// retrying): 200, seconds, and bridge CPU per repeat.
    pub repeated: (f64, f64),
    /// The plain lapin loop, same number of messages, same run, all to one
    /// transient queue.
    pub bare: BareLapin,
    /// The same loop with the bridge's topology: every other message to the
    /// audit queue as the default config declares it (a stream).
    pub bare_as_bridge: BareLapin,
}

/// The bridge process for the burst: the defaults, but registrations and
/// upstream requests not rate-limited (10k registrations and 10k GETs at the
/// vendor's 100/s would take minutes and say nothing about publishing).
const SETTINGS: [(&str, &str); 4] = [
    ("BRIDGE_HTTP__REGISTER_RATE_PER_S", "1000000"),
    ("BRIDGE_HTTP__REGISTER_BURST", "1000000"),
    ("BRIDGE_UPSTREAM__RATE_LIMIT_PER_S", "20000"),
    ("BRIDGE_UPSTREAM__DAILY_BUDGET", "1000000000"),
];

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Burst> {
    let bare = bare::lapin(env, 2 * n, Topology::Transient).await?;
    let audit = audit_queue_args(&Config::from_figment(Config::embedded())?.amqp);
    let bare_as_bridge = bare::lapin(env, 2 * n, Topology::AsBridge(audit)).await?;
    let sim = env.simulator().await?;
    let bridge = BridgeProcess::start(env, &sim.base_url(), &SETTINGS).await?;
    let store = bridge.store().await?;
    let backend = bridge.backend();
    let received = count_agent_messages(env, &bridge).await?;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("burst{i:05}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let ongoing = script("ONGOING");
    for id in &ids {
        sim.script(id, ongoing.clone());
    }
    // Promised signals: no GET before each transfer's signal.
    let register = |id: &str| json!({"callTransferId": id, "returnSignal": true});
    let registered = timed(
        &bridge,
        each(&bridge, &ids, "/v1/transfers", register, 201),
        n,
    )
    .await?;
    // Their `transfer.tracking` audit records go out before the burst.
    settled(&store).await?;
    let completed = script("COMPLETED");
    for id in &ids {
        sim.script(id, completed.clone());
    }
    let (cpu, machine) = (bridge.cpu_seconds(), MachineCpu::now());
    let at_once = Instant::now();
    each(&bridge, &ids, "/returned", |_| json!({}), 202).await?;
    let signalled = (
        at_once.elapsed().as_secs_f64(),
        received.load(Ordering::SeqCst),
    );
    let deadline = at_once + Duration::from_secs(600);
    while received.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = at_once.elapsed().as_secs_f64();
    let cpu = bridge.cpu_seconds() - cpu;
    let machine = MachineCpu::now().since(&machine);
    settled(&store).await?;
    // After the drain, so its state does not weigh on the drain's figures.
    let repeated = timed(
        &bridge,
        each(&bridge, &ids, "/v1/transfers", register, 200),
        n,
    )
    .await?;
    let confirmed = sqlx::query_scalar(
        "SELECT COUNT(*) FROM actions WHERE kind = 'agent' AND status = 'delivered'",
    )
    .fetch_one(&store)
    .await?;
    let published = sqlx::query_scalar(
        "SELECT COUNT(*) FROM actions WHERE status = 'delivered' AND name <> 'audit.tracking'",
    )
    .fetch_one(&store)
    .await?;
    store.close().await;
    bridge.stop(env).await?;
    sim.stop();
    Ok(Burst {
        transfers: n,
        store: backend,
        received: received.load(Ordering::SeqCst),
        confirmed,
        published,
        drain_s,
        signalled,
        cpu_ms_per_completion: cpu * 1000.0 / n as f64,
        machine,
        registered,
        repeated,
        bare,
        bare_as_bridge,
    })
}

/// Until no action is pending (at most five minutes: an older build settles
/// a few dozen actions a second).
pub async fn settled(store: &AnyPool) -> anyhow::Result<()> {
    for _ in 0..15_000 {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM actions WHERE status = 'pending'")
                .fetch_one(store)
                .await?;
        if pending == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stuck: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT id, attempts, last_error FROM actions WHERE status = 'pending' LIMIT 5",
    )
    .fetch_all(store)
    .await?;
    anyhow::bail!("actions still pending after five minutes, e.g. {stuck:?}")
}

fn script(status: &str) -> Script {
    Script {
        timeline: vec![Step {
            status: status.into(),
            for_ms: None,
        }],
        output_context: Some(json!({"transferType": "AGENT", "currentTaskName": "burst"})),
        ..Script::default()
    }
}

/// How long `work` took, seconds, and the bridge's CPU over it, ms per
/// one of `n`.
async fn timed(
    bridge: &BridgeProcess,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let (cpu, at) = (bridge.cpu_seconds(), Instant::now());
    work.await?;
    let cpu_ms = (bridge.cpu_seconds() - cpu) * 1000.0 / n as f64;
    Ok((at.elapsed().as_secs_f64(), cpu_ms))
}

/// POST to every transfer (`path` starting with `/v1` is absolute, else it
/// is appended to `/v1/transfers/{id}`), `CONCURRENCY` at a time.
pub async fn each(
    bridge: &BridgeProcess,
    ids: &[String],
    path: &str,
    body: impl Fn(&str) -> serde_json::Value,
    expect: u16,
) -> anyhow::Result<()> {
    let requests = ids.iter().map(|id| {
        let url = match path.starts_with("/v1") {
            true => format!("{}{path}", bridge.base),
            false => format!("{}/v1/transfers/{id}{path}", bridge.base),
        };
        let request = bridge.http.post(url).json(&body(id));
        async move {
            let status = request.send().await?.status().as_u16();
            anyhow::ensure!(status == expect, "{path}: {status}");
            anyhow::Ok(())
        }
    });
    let mut results = futures::stream::iter(requests).buffer_unordered(CONCURRENCY);
    while let Some(result) = results.next().await {
        result?;
    }
    Ok(())
}

/// A queue bound to the agent exchange, and a counter of what arrives
/// (agent messages are mandatory: unroutable, they would be retried).
pub async fn count_agent_messages(
    env: &Env,
    bridge: &BridgeProcess,
) -> anyhow::Result<Arc<AtomicUsize>> {
    let channel = &env.broker;
    let exchange = bridge.exchange("agent");
    let exchange = exchange.as_str();
    bare::topic_exchange(channel, exchange).await?;
    let mut consumer = bare::agent_consumer(channel, exchange).await?;
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Some(Ok(_)) = consumer.next().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(count)
}
