//! Bare baselines, run in the same process as the bridge's figures so a
//! ratio holds on a noisy machine: what the same work costs a plain reqwest
//! loop and a plain lapin loop with none of the bridge around them.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
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

/// `n` persistent, mandatory messages of an event's size to a durable topic
/// exchange with a bound queue that a consumer drains, 100 confirms in
/// flight, each confirm checked: messages/s from first publish to last confirm.
pub async fn lapin(env: &Env, n: usize) -> anyhow::Result<BareLapin> {
    let conn = Connection::connect(&env.amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let exchange = format!("bench-{}.bare", uuid::Uuid::new_v4().simple());
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let table = FieldTable::default;
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            table(),
        )
        .await?;
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    let queue = channel.queue_declare("".into(), exclusive, table()).await?;
    let bind = QueueBindOptions::default();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "#".into(),
            bind,
            table(),
        )
        .await?;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let consumer = channel
        .basic_consume(queue.name().clone(), "".into(), no_ack, table())
        .await?;
    let drain = tokio::spawn(consumer.take(n).for_each(|_| async {}));
    let body = event_sized_body();
    let machine = MachineCpu::now();
    let start = Instant::now();
    let mut confirms = FuturesUnordered::new();
    for i in 0..n {
        if confirms.len() == CONFIRMS_IN_FLIGHT {
            settle(confirms.next().await)?;
        }
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(format!("bare-{i}.agent").into());
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let key = "agent.bare".into();
        let publish = channel.basic_publish(exchange.as_str().into(), key, options, &body, props);
        confirms.push(publish.await?);
    }
    while let Some(confirm) = confirms.next().await {
        settle(Some(confirm))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    drain.await?;
    let broker_cpu_s = MachineCpu::now().since(&machine).broker;
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
