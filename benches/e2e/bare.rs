//! Bare baselines, run in the same process as the bridge's figures so a
//! ratio holds on a noisy machine: what the same work costs a plain reqwest
//! loop and a plain lapin loop with none of the bridge around them.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use tokio::time::Instant;
use transfer_bridge::simulator::SimHandle;
use transfer_bridge::upstream::client::{HEADER_API_ID, HEADER_API_SECRET};

use crate::proc::{MachineCpu, threads_cpu};
use crate::stand::{Env, SIM_ID, SIM_SECRET};

/// Unconfirmed publishes the lapin loop keeps in flight.
const CONFIRMS_IN_FLIGHT: usize = 100;
/// Concurrent GETs of the reqwest loop (the bridge's `polling.max_in_flight`).
const GET_WORKERS: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct BareLapin {
    pub messages: usize,
    pub per_s: f64,
    /// The broker's CPU seconds for them, when it runs on this machine.
    pub broker_cpu_s: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct BareReqwest {
    pub gets: usize,
    pub ms_per_get: f64,
}

/// Where the bare loop's messages go.
#[derive(Debug, Clone)]
pub enum Topology {
    /// All of them to one exclusive queue that a consumer drains.
    Transient,
    /// As the bridge's burst: every other message to that queue (the agent
    /// message), the rest to a durable queue declared with these arguments
    /// and left unconsumed (the audit record, by default to a stream).
    AsBridge(FieldTable),
}

/// `n` persistent, mandatory messages of an event's size to a durable topic
/// exchange, 100 confirms in flight, each confirm checked: messages/s from
/// first publish to last confirm.
pub async fn lapin(env: &Env, n: usize, topology: Topology) -> anyhow::Result<BareLapin> {
    let conn = Connection::connect(&env.amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let exchange = format!("{name}.bare");
    topic_exchange(&channel, &exchange).await?;
    let audit = match &topology {
        Topology::Transient => None,
        Topology::AsBridge(args) => Some(audit_queue(&channel, &exchange, &name, args).await?),
    };
    let consumed = if audit.is_some() { n.div_ceil(2) } else { n };
    let drain = tokio::spawn(consume(&channel, &exchange, consumed).await?);
    let machine = MachineCpu::now();
    let start = Instant::now();
    publish(&channel, &exchange, n, audit.is_some()).await?;
    let seconds = start.elapsed().as_secs_f64();
    drain.await?;
    let broker_cpu_s = MachineCpu::now().since(&machine).broker;
    if let Some(queue) = audit {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    let delete = ExchangeDeleteOptions::default();
    channel
        .exchange_delete(exchange.as_str().into(), delete)
        .await?;
    conn.close(200, "bye".into()).await?;
    Ok(BareLapin {
        messages: n,
        per_s: n as f64 / seconds,
        broker_cpu_s,
    })
}

/// A durable queue with the audit queue's arguments, bound to `transfer.#`.
async fn audit_queue(
    channel: &Channel,
    exchange: &str,
    name: &str,
    args: &FieldTable,
) -> anyhow::Result<String> {
    let queue = format!("{name}.audit");
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.as_str().into(), durable, args.clone())
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            "transfer.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue)
}

/// A durable topic exchange, as the bridge declares its own.
pub async fn topic_exchange(channel: &Channel, name: &str) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let kind = ExchangeKind::Topic;
    channel
        .exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await?;
    Ok(())
}

/// A consumer of the first `n` messages routed `agent.#` (see [`agent_consumer`]).
async fn consume(
    channel: &Channel,
    exchange: &str,
    n: usize,
) -> anyhow::Result<impl Future<Output = ()> + use<>> {
    let consumer = agent_consumer(channel, exchange).await?;
    Ok(consumer.take(n).for_each(|_| async {}))
}

/// An exclusive queue bound to `exchange` for `agent.#`, and a consumer of
/// it that acknowledges nothing (the bare loop's and the bridge's agent
/// messages).
pub async fn agent_consumer(channel: &Channel, exchange: &str) -> anyhow::Result<Consumer> {
    let queue = exclusive_queue(channel, exchange, "agent.#").await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    Ok(channel
        .basic_consume(queue, "".into(), no_ack, FieldTable::default())
        .await?)
}

/// A server-named queue bound to `exchange` for `key`, which goes with the
/// connection.
pub async fn exclusive_queue(
    channel: &Channel,
    exchange: &str,
    key: &str,
) -> anyhow::Result<ShortString> {
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let table = FieldTable::default;
    let queue = channel.queue_declare("".into(), exclusive, table()).await?;
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            key.into(),
            bind,
            table(),
        )
        .await?;
    Ok(queue.name().clone())
}

/// `n` publishes, 100 unconfirmed at most; with `audit`, every other one is
/// routed as an audit record.
async fn publish(channel: &Channel, exchange: &str, n: usize, audit: bool) -> anyhow::Result<()> {
    let body = event_sized_body();
    let mut confirms = FuturesUnordered::new();
    for i in 0..n {
        if confirms.len() == CONFIRMS_IN_FLIGHT {
            settle(confirms.next().await)?;
        }
        let (key, action) = match audit && i % 2 == 1 {
            true => ("transfer.completed", "audit.completed"),
            false => ("agent.bare", "agent"),
        };
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(format!("bare-{i}.{action}").into());
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let publish = channel.basic_publish(exchange.into(), key.into(), options, &body, props);
        confirms.push(publish.await?);
    }
    while let Some(confirm) = confirms.next().await {
        settle(Some(confirm))?;
    }
    Ok(())
}

fn settle(confirm: Option<Result<Confirmation, lapin::Error>>) -> anyhow::Result<()> {
    match confirm {
        Some(Ok(Confirmation::Ack(None))) => Ok(()),
        other => anyhow::bail!("bare publish not confirmed: {other:?}"),
    }
}

/// About the size of the bridge's `transfer.completed` event.
fn event_sized_body() -> Vec<u8> {
    let event = serde_json::json!({
        "eventId": "bare.completed", "type": "transfer.completed",
        "occurredAt": "2030-01-01T00:00:00Z", "callTransferId": "bare",
        "externalConversationId": "conv-bare", "state": "COMPLETED", "status": "COMPLETED",
        "transferType": "AGENT", "currentTaskName": "burst", "transferVariables": {},
        "referenceVariables": {}, "inputContext": null, "route": "agent",
        "metadata": {}, "sip": null, "reason": null, "padding": "x".repeat(500),
    });
    serde_json::to_vec(&event).expect("json")
}

/// GETs of transfer `id` at `rate` per second for `seconds`, from
/// `GET_WORKERS` tasks on a runtime of their own (2 threads, like the
/// bridge's), reading each body: CPU of that runtime per GET.
pub async fn reqwest(
    sim: &SimHandle,
    id: &str,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<BareReqwest> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bare-")
        .enable_all()
        .build()?;
    let url = format!("{}/generativeagent/v1/call-transfers/{id}", sim.base_url());
    let every = Duration::from_secs_f64(GET_WORKERS as f64 / rate);
    let rounds = (seconds * rate / GET_WORKERS as f64) as usize;
    let run = runtime.spawn(async move {
        let http = reqwest::Client::new();
        let cpu = threads_cpu("bare-");
        let workers: Vec<_> = (0..GET_WORKERS)
            .map(|_| tokio::spawn(get_loop(http.clone(), url.clone(), every, rounds)))
            .collect();
        for worker in workers {
            worker.await??;
        }
        anyhow::Ok(threads_cpu("bare-") - cpu)
    });
    let cpu = run.await??;
    runtime.shutdown_background();
    let gets = rounds * GET_WORKERS;
    Ok(BareReqwest {
        gets,
        ms_per_get: cpu * 1000.0 / gets as f64,
    })
}

async fn get_loop(
    http: reqwest::Client,
    url: String,
    every: Duration,
    rounds: usize,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(every);
    for _ in 0..rounds {
        tick.tick().await;
        let response = http
            .get(&url)
            .header(HEADER_API_ID, SIM_ID)
            .header(HEADER_API_SECRET, SIM_SECRET)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "bare GET: {}", response.status());
        response.bytes().await?;
    }
    Ok(())
}
