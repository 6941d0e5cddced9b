//! One simulator and one bridge, on their own runtimes, torn down after use.

use std::time::Duration;

use anyhow::Context;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::SecretString;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use transfer_bridge::App;
use transfer_bridge::config::Config;
use transfer_bridge::simulator::{self, SimHandle};
use transfer_bridge::store::Store;

pub const SIM_ID: &str = "bench-id";
pub const SIM_SECRET: &str = "bench-secret";

/// What every scenario shares.
pub struct Env {
    pub sim_rt: Handle,
    pub bridge_rt: Handle,
    pub amqp_url: String,
    pub compression: f64,
    /// Measured transfers per run, and unmeasured ones run before them.
    pub transfers: usize,
    pub warmup: usize,
    pub broker: Channel,
    _conn: Connection,
}

impl Env {
    pub async fn new(
        sim_rt: Handle,
        bridge_rt: Handle,
        amqp_url: String,
        compression: f64,
        (transfers, warmup): (usize, usize),
    ) -> anyhow::Result<Self> {
        let conn = Connection::connect(&amqp_url, ConnectionProperties::default())
            .await
            .with_context(|| format!("no broker at {amqp_url}: start RabbitMQ or set AMQP_URL"))?;
        let broker = conn.create_channel().await?;
        Ok(Self {
            sim_rt,
            bridge_rt,
            amqp_url,
            compression,
            transfers,
            warmup,
            broker,
            _conn: conn,
        })
    }

    /// A fresh simulator on its own runtime.
    pub async fn simulator(&self) -> anyhow::Result<SimHandle> {
        let sim = self
            .sim_rt
            .spawn(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                simulator::start(listener, SIM_ID, SIM_SECRET)
            })
            .await??;
        Ok(sim)
    }

    /// A fresh simulator and bridge; `tweak` adjusts the bench defaults.
    pub async fn stand(&self, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Stand> {
        let sim = self.simulator().await?;
        // On the real disk, as users run it: every commit pays its fsync.
        let dir = tempfile::Builder::new()
            .prefix("bridge-bench-")
            .tempdir_in(std::env::temp_dir())?;
        let mut config = self.config(&sim, dir.path());
        tweak(&mut config);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let built = config.clone();
        let (base, store, running) = self
            .bridge_rt
            .spawn(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let base = format!("http://{}", listener.local_addr()?);
                let app = App::build(built).await?;
                let store = app.store().clone();
                let running = tokio::spawn(app.run(listener, token));
                anyhow::Ok((base, store, running))
            })
            .await??;
        let stand = Stand {
            sim,
            base,
            store,
            config,
            http: reqwest::Client::new(),
            stop,
            running,
            _dir: dir,
        };
        stand.wait_ready().await?;
        Ok(stand)
    }

    fn config(&self, sim: &SimHandle, dir: &std::path::Path) -> Config {
        let mut c = Config::from_figment(Config::embedded()).expect("embedded config is valid");
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        c.upstream.base_url = sim.base_url();
        c.upstream.api_id = SIM_ID.into();
        c.upstream.api_secret = SecretString::from(SIM_SECRET);
        c.store.url = SecretString::from(format!("sqlite://{}/bridge.db", dir.display()));
        c.amqp.url = SecretString::from(self.amqp_url.clone());
        c.amqp.agent_exchange = format!("bench-{tag}.transfer.agent");
        c.amqp.pbx_exchange = format!("bench-{tag}.transfer.pbx");
        c.amqp.audit_exchange = format!("bench-{tag}.transfer.audit");
        c.amqp.audit_queue = format!("bench-{tag}.transfer.audit");
        c.polling.max_tracking_time = Duration::from_secs(3600);
        c
    }
}

pub struct Stand {
    pub sim: SimHandle,
    pub base: String,
    pub store: Store,
    pub config: Config,
    pub http: reqwest::Client,
    stop: CancellationToken,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Stand {
    async fn wait_ready(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            let ready = self.http.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("bridge not ready within 10 s")
    }

    /// Transfers still TRACKING.
    pub async fn tracking(&self) -> anyhow::Result<i64> {
        let n = sqlx::query_scalar("SELECT COUNT(*) FROM transfers WHERE state = 'TRACKING'")
            .fetch_one(self.store.pool())
            .await?;
        Ok(n)
    }

    /// Stop the bridge and the simulator; delete what the bridge declared.
    pub async fn stop(self, broker: &Channel) -> anyhow::Result<()> {
        self.stop.cancel();
        self.running.await??;
        self.sim.stop();
        let amqp = &self.config.amqp;
        broker
            .queue_delete(
                amqp.audit_queue.as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await?;
        for exchange in [
            &amqp.agent_exchange,
            &amqp.pbx_exchange,
            &amqp.audit_exchange,
        ] {
            broker
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}
