//! The bare baseline of CPU per signalled transfer: the work a signalled
//! transfer cannot do without, written the plain way, with none of the
//! bridge around it. Per transfer, at the `signalled` stage's pace (200
//! arrivals a second, each ending 1 s later):
//! - at registration, one SQLite transaction (sqlx, WAL, `synchronous =
//!   FULL`, on the real disk) that inserts the transfer and its audit
//!   record, then one confirmed publish;
//! - at the end, one reqwest GET of the simulator (body parsed), one
//!   transaction that updates the transfer and inserts two records, then
//!   two confirmed publishes.
//!
//! Left out, so this is a floor, not an equal: the HTTP server side of the
//! registration and the signal, the delivered marks, metrics and logs. The
//! loop runs on a current-thread runtime of its own (as the bridge does on 2
//! cores); its CPU is that of the threads it starts (the runtime, SQLite's
//! worker, lapin's I/O loop), read from `/proc` like the bridge's, so a slow
//! hour on this VM weighs on both.

use std::collections::HashMap;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde_json::{Value, json};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::task::JoinSet;
use tokio::time::Instant;
use transfer_bridge::upstream::client::{HEADER_API_ID, HEADER_API_SECRET};

use crate::bare::{exclusive_queue, topic_exchange};
use crate::proc::threads_by_id;
use crate::stand::{Env, SIM_ID, SIM_SECRET};

#[derive(Debug, Clone, Copy)]
pub struct BareSignalled {
    pub cpu_ms_per_transfer: f64,
}

/// What every transfer of the loop shares.
#[derive(Clone)]
struct Plain {
    db: SqlitePool,
    conn: std::sync::Arc<Connection>,
    channel: Channel,
    exchange: String,
    http: reqwest::Client,
    url: String,
}

/// `n` transfers at `per_s`, each ending `after` its registration; `url`
/// is a transfer the simulator shows COMPLETED.
pub async fn run(
    env: &Env,
    url: String,
    n: usize,
    per_s: f64,
    after: Duration,
) -> anyhow::Result<BareSignalled> {
    let before = threads_by_id();
    let amqp = env.amqp_url.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bare-sig".into())
        .spawn(move || {
            let cpu = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(run_on(&amqp, url, n, per_s, after, &before)));
            let _ = done.send(cpu);
        })?;
    let cpu = result.await??;
    Ok(BareSignalled {
        cpu_ms_per_transfer: cpu * 1000.0 / n as f64,
    })
}

/// Set up, run the transfers, and return the CPU seconds of the threads
/// started since `before`, over the transfers only.
async fn run_on(
    amqp: &str,
    url: String,
    n: usize,
    per_s: f64,
    after: Duration,
    before: &HashMap<String, f64>,
) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("bare-signalled")
        .tempdir_in(std::env::temp_dir())?;
    let plain = Plain::new(amqp, &dir.path().join("bare.db"), url).await?;
    let cpu = new_threads_cpu(before);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / per_s)).await;
        tasks.spawn(plain.clone().transfer(format!("bare-{i:05}"), after));
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    let cpu = new_threads_cpu(before) - cpu;
    plain.close().await?;
    Ok(cpu)
}

/// CPU seconds of the threads not in `before`, the simulator's aside.
fn new_threads_cpu(before: &HashMap<String, f64>) -> f64 {
    threads_by_id()
        .into_iter()
        .filter(|(tid, _)| !before.contains_key(tid))
        .map(|(_, seconds)| seconds)
        .sum()
}

impl Plain {
    async fn new(amqp: &str, path: &std::path::Path, url: String) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let db = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE transfers (id TEXT PRIMARY KEY, state TEXT NOT NULL, \
             request TEXT NOT NULL, upstream TEXT); \
             CREATE TABLE actions (id TEXT PRIMARY KEY, transfer_id TEXT NOT NULL, \
             body TEXT NOT NULL, status TEXT NOT NULL)",
        )
        .execute(&db)
        .await?;
        let conn = Connection::connect(amqp, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let exchange = format!("bench-{}.bare-signalled", uuid::Uuid::new_v4().simple());
        topic_exchange(&channel, &exchange).await?;
        // Every key routes, so the mandatory messages do; the queue goes
        // with the connection.
        exclusive_queue(&channel, &exchange, "#").await?;
        Ok(Self {
            db,
            conn: std::sync::Arc::new(conn),
            channel,
            exchange,
            http: reqwest::Client::new(),
            url,
        })
    }

    async fn transfer(self, id: String, after: Duration) -> anyhow::Result<()> {
        let request = json!({"callTransferId": id, "returnSignal": true}).to_string();
        let tracking = event(&id, "TRACKING");
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO transfers (id, state, request) VALUES (?, 'TRACKING', ?)")
            .bind(&id)
            .bind(&request)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, &id, "audit.tracking", &tracking)
            .await?;
        tx.commit().await?;
        self.publish(&[&tracking]).await?;
        tokio::time::sleep(after).await;
        let upstream: Value = self.get().await?;
        let (agent, audit) = (event(&id, "AGENT"), event(&id, "COMPLETED"));
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE transfers SET state = 'COMPLETED', upstream = ? WHERE id = ?")
            .bind(upstream.to_string())
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        self.record(&mut tx, &id, "agent", &agent).await?;
        self.record(&mut tx, &id, "audit.completed", &audit).await?;
        tx.commit().await?;
        self.publish(&[&agent, &audit]).await
    }

    async fn record(
        &self,
        tx: &mut sqlx::SqliteConnection,
        id: &str,
        name: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO actions (id, transfer_id, body, status) VALUES (?, ?, ?, 'pending')",
        )
        .bind(format!("{id}.{name}"))
        .bind(id)
        .bind(body)
        .execute(tx)
        .await?;
        Ok(())
    }

    async fn get(&self) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(&self.url)
            .header(HEADER_API_ID, SIM_ID)
            .header(HEADER_API_SECRET, SIM_SECRET)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "bare GET: {}", response.status());
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }

    /// Each body as a persistent, mandatory message; every confirm awaited.
    async fn publish(&self, bodies: &[&[u8]]) -> anyhow::Result<()> {
        let mut confirms = Vec::with_capacity(bodies.len());
        for body in bodies {
            let props = BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let options = BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            };
            let exchange = self.exchange.as_str().into();
            let publish =
                self.channel
                    .basic_publish(exchange, "agent.bare".into(), options, body, props);
            confirms.push(publish.await?);
        }
        for confirm in confirms {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                other => anyhow::bail!("bare publish not confirmed: {other:?}"),
            }
        }
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        self.db.close().await;
        let delete = ExchangeDeleteOptions::default();
        self.channel
            .exchange_delete(self.exchange.as_str().into(), delete)
            .await?;
        self.conn.close(200, "bye".into()).await?;
        Ok(())
    }
}

/// About the size of the bridge's events.
fn event(id: &str, state: &str) -> Vec<u8> {
    let event = json!({
        "eventId": format!("{id}.{state}"), "type": "transfer.event", "callTransferId": id,
        "state": state, "occurredAt": "2030-01-01T00:00:00Z", "padding": "x".repeat(500),
    });
    serde_json::to_vec(&event).expect("json")
}
