//! `transfer-bridge serve` as its own process, the way users run it: the
//! CLI, the default config but for its upstream, broker names and what a
//! stage sets, and the default store location (`store.url` relative to the
//! working directory, a temp dir on the real disk, so every commit pays the
//! machine's fsync). With `E2E_STORE=postgres` the store is a scratch
//! database on the server `DATABASE_URL` names instead, dropped at the end.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::AnyPool;
use transfer_bridge::store::ScratchDatabase;

use crate::stand::{Env, SIM_ID, SIM_SECRET};

/// The bridge process; killed when dropped, so a failed run leaves none.
pub struct BridgeProcess {
    child: Child,
    pub base: String,
    pub http: reqwest::Client,
    /// Exchange and queue names carry it, so runs never share them.
    pub tag: String,
    dir: tempfile::TempDir,
    /// The scratch PostgreSQL database (`E2E_STORE=postgres`).
    postgres: Option<ScratchDatabase>,
}

impl BridgeProcess {
    /// Start it against `upstream` with `settings` (`BRIDGE_*` variables) on
    /// top of the defaults, and wait until `/readyz` says ready.
    pub async fn start(
        env: &Env,
        upstream: &str,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("bridge-bench-")
            .tempdir_in(std::env::temp_dir())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
        let log = std::fs::File::create(dir.path().join("bridge.log"))?;
        // E2E_BRIDGE_BIN runs another build (an older one, for before/after).
        let binary = std::env::var("E2E_BRIDGE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_transfer-bridge").to_string());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("BRIDGE_UPSTREAM__BASE_URL", upstream)
            .env("BRIDGE_UPSTREAM__API_ID", SIM_ID)
            .env("BRIDGE_UPSTREAM__API_SECRET", SIM_SECRET)
            .env("BRIDGE_HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("BRIDGE_AMQP__URL", &env.amqp_url)
            .stdout(Stdio::null())
            .stderr(log);
        for what in ["agent", "pbx", "audit"] {
            let key = format!("BRIDGE_AMQP__{}_EXCHANGE", what.to_uppercase());
            command.env(key, names(&tag, what));
        }
        command.env("BRIDGE_AMQP__AUDIT_QUEUE", names(&tag, "audit"));
        for (key, value) in settings {
            command.env(key, value);
        }
        let postgres = scratch_postgres().await?;
        if let Some(database) = &postgres {
            command.env("BRIDGE_STORE__URL", database.url());
        }
        let child = command.spawn().context("starting transfer-bridge serve")?;
        let bridge = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            tag,
            dir,
            postgres,
        };
        bridge.ready().await?;
        Ok(bridge)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exchange the bridge publishes `what` (agent, pbx, audit) to.
    pub fn exchange(&self, what: &str) -> String {
        names(&self.tag, what)
    }

    /// CPU seconds the process has used so far (user + system).
    pub fn cpu_seconds(&self) -> f64 {
        crate::proc::process_cpu(self.pid())
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        crate::proc::pid_status_kib(self.pid(), "VmRSS")
    }

    /// The bridge's store, read beside it (on SQLite, WAL lets a reader in).
    pub async fn store(&self) -> anyhow::Result<AnyPool> {
        sqlx::any::install_default_drivers();
        let url = match &self.postgres {
            Some(database) => database.url().to_owned(),
            None => {
                let path = self.dir.path().join("data/bridge.db");
                format!("sqlite://{}?mode=ro", path.display())
            }
        };
        Ok(AnyPool::connect(&url).await?)
    }

    /// Which store the bridge runs on.
    pub fn backend(&self) -> &'static str {
        match self.postgres {
            Some(_) => "PostgreSQL",
            None => "SQLite",
        }
    }

    async fn ready(&self) -> anyhow::Result<()> {
        for _ in 0..200 {
            let ready = self.http.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(self.dir.path().join("bridge.log")).unwrap_or_default();
        anyhow::bail!("the bridge process was not ready within 10 s; its log:\n{log}")
    }

    /// Stop it and delete what it declared on the broker.
    pub async fn stop(mut self, env: &Env) -> anyhow::Result<()> {
        self.kill();
        if let Some(database) = self.postgres.take() {
            database.drop_now().await?;
        }
        let queue = names(&self.tag, "audit");
        env.broker
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
        for what in ["agent", "pbx", "audit"] {
            let exchange = names(&self.tag, what);
            env.broker
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch database when `E2E_STORE=postgres` (from `DATABASE_URL`).
async fn scratch_postgres() -> anyhow::Result<Option<ScratchDatabase>> {
    if std::env::var("E2E_STORE").as_deref() != Ok("postgres") {
        return Ok(None);
    }
    let base = std::env::var("DATABASE_URL").context("E2E_STORE=postgres needs DATABASE_URL")?;
    Ok(Some(ScratchDatabase::create(&base, "bench_e2e").await?))
}

fn names(tag: &str, what: &str) -> String {
    format!("bench-{tag}.transfer.{what}")
}
