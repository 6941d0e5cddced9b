//! Ten thousand transfers completing at the same instant: every AGENT
//! outcome must reach a queue bound to the agent exchange, each publish
//! confirmed by the broker before the outbox settles it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use lapin::ExchangeKind;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use serde_json::json;
use tokio::time::Instant;
use transfer_bridge::config::TrustSignals;
use transfer_bridge::simulator::{Script, Step};

use crate::stand::{Env, Stand};

const CONCURRENCY: usize = 64;

#[derive(Debug)]
pub struct Burst {
    pub transfers: usize,
    pub received: usize,
    pub confirmed: i64,
    /// From the instant all completed to the last message received.
    pub drain_s: f64,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Burst> {
    let stand = env
        .stand(|c| {
            c.polling.trust_signals = TrustSignals::Always;
            // Real time here: reading 10k completions at the vendor's 100/s
            // would take 100 s and say nothing about publishing.
            c.upstream.rate_limit_per_s = 5_000;
            c.upstream.daily_budget = 1_000_000_000;
        })
        .await?;
    let received = count_agent_messages(env, &stand).await?;
    let ids: Vec<String> = (0..n)
        .map(|i| format!("burst{i:05}-{}", uuid::Uuid::new_v4().simple()))
        .collect();
    let ongoing = script("ONGOING");
    for id in &ids {
        stand.sim.script(id, ongoing.clone());
    }
    // Trusted signals: no GET before each transfer's signal.
    each(
        &stand,
        &ids,
        "/v1/transfers",
        |id| json!({"callTransferId": id}),
        201,
    )
    .await?;
    let completed = script("COMPLETED");
    for id in &ids {
        stand.sim.script(id, completed.clone());
    }
    let at_once = Instant::now();
    each(&stand, &ids, "/returned", |_| json!({}), 202).await?;
    let deadline = at_once + Duration::from_secs(300);
    while received.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_s = at_once.elapsed().as_secs_f64();
    let confirmed = sqlx::query_scalar(
        "SELECT COUNT(*) FROM actions WHERE kind = 'agent' AND status = 'delivered'",
    )
    .fetch_one(stand.store.pool())
    .await?;
    let result = Burst {
        transfers: n,
        received: received.load(Ordering::SeqCst),
        confirmed,
        drain_s,
    };
    stand.stop(&env.broker).await?;
    Ok(result)
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

/// POST to every transfer (`path` starting with `/v1` is absolute, else it
/// is appended to `/v1/transfers/{id}`), `CONCURRENCY` at a time.
async fn each(
    stand: &Stand,
    ids: &[String],
    path: &str,
    body: impl Fn(&str) -> serde_json::Value,
    expect: u16,
) -> anyhow::Result<()> {
    let requests = ids.iter().map(|id| {
        let url = match path.starts_with("/v1") {
            true => format!("{}{path}", stand.base),
            false => format!("{}/v1/transfers/{id}{path}", stand.base),
        };
        let request = stand.http.post(url).json(&body(id));
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

/// A queue bound to the agent exchange, and a counter of what arrives.
async fn count_agent_messages(env: &Env, stand: &Stand) -> anyhow::Result<Arc<AtomicUsize>> {
    let channel = &env.broker;
    let exchange = stand.config.amqp.agent_exchange.as_str();
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "agent.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            no_ack,
            FieldTable::default(),
        )
        .await?;
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Some(Ok(_)) = consumer.next().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(count)
}
