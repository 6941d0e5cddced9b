//! `spawn_app()`: a real bridge on port 0 with its own simulator, its own
//! SQLite store and its own exchange names on a real RabbitMQ.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use transfer_bridge::App;
use transfer_bridge::config::{Config, PolicyKind};
use transfer_bridge::simulator::{self, Script, SimHandle};
use transfer_bridge::store::ScratchDatabase;

pub use crate::broker::{Broker, TestQueue, body, header};
pub use crate::cleanup::BrokerCleanup;
pub use crate::scripts::{completes_with, refer_after};

pub const SIM_ID: &str = "test-id";
pub const SIM_SECRET: &str = "test-secret";

/// The broker URL: `AMQP_URL`, else a RabbitMQ started with testcontainers.
/// With neither, the test fails and says why; it never skips.
pub async fn broker_url() -> String {
    static URL: OnceCell<String> = OnceCell::const_new();
    URL.get_or_init(|| async {
        if let Ok(url) = std::env::var("AMQP_URL") {
            return url;
        }
        start_container().await
    })
    .await
    .clone()
}

async fn start_container() -> String {
    use testcontainers_modules::rabbitmq::RabbitMq;
    use testcontainers_modules::testcontainers::ImageExt;
    use testcontainers_modules::testcontainers::runners::AsyncRunner;
    let container = RabbitMq::default()
        .with_tag("4.1-management")
        .start()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no broker: AMQP_URL is unset and testcontainers could not start RabbitMQ ({e}). \
             Set AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f or start Docker."
            )
        });
    let port = container
        .get_host_port_ipv4(5672)
        .await
        .expect("mapped port");
    // The container must outlive every test in this binary.
    Box::leak(Box::new(container));
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

/// A running bridge and everything around it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sim: SimHandle,
    pub config: Config,
    pub broker: Broker,
    stop: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
    /// A PostgreSQL store's database, dropped after the bridge is stopped.
    _database: Option<ScratchDatabase>,
    /// Declared last so it drops after the bridge is stopped.
    _cleanup: BrokerCleanup,
}

impl Drop for TestApp {
    /// Stop the bridge before its exchanges and queue are deleted, so it
    /// cannot re-declare them. Tests run on a current-thread runtime, so an
    /// aborted task does not run again while the cleanup blocks.
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.abort();
        }
    }
}

/// A fresh broker name for this test: `test-[<TEST_RUN_ID>-]<random>`.
/// `.ci/run` sets `TEST_RUN_ID` and afterwards looks for anything left
/// under its prefix, ignoring other runs on the same broker.
pub fn test_prefix() -> String {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
    match std::env::var("TEST_RUN_ID") {
        Ok(run) if !run.is_empty() => format!("test-{run}-{tag}"),
        _ => format!("test-{tag}"),
    }
}

/// The bridge's warnings and errors (or `RUST_LOG`) in the test's captured
/// output, which the runner prints for a failed test: a failure in CI then
/// comes with what the bridge said about it.
fn log_to_test_output() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "transfer_bridge=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// Test-sized defaults: fast polls, short backoffs, isolated names.
pub async fn test_config(sim: &SimHandle, dir: &std::path::Path) -> Config {
    let mut config = Config::from_figment(Config::embedded()).unwrap();
    let tag = test_prefix();
    config.upstream.base_url = sim.base_url();
    config.upstream.api_id = SIM_ID.into();
    config.upstream.api_secret = SecretString::from(SIM_SECRET);
    config.upstream.rate_limit_per_s = 1000;
    config.store.url = SecretString::from(format!("sqlite://{}/bridge.db", dir.display()));
    config.amqp.url = SecretString::from(broker_url().await);
    config.amqp.agent_exchange = format!("{tag}.transfer.agent");
    config.amqp.pbx_exchange = format!("{tag}.transfer.pbx");
    config.amqp.audit_exchange = format!("{tag}.transfer.audit");
    config.amqp.audit_queue = format!("{tag}.transfer.audit");
    config.amqp.reconnect_initial = Duration::from_millis(100);
    config.amqp.reconnect_max = Duration::from_millis(500);
    config.amqp.confirm_timeout = Duration::from_secs(5);
    // Scripted timelines last milliseconds: poll on a short fixed interval
    // (tests of the adaptive policy set it themselves).
    config.polling.policy = PolicyKind::Fixed;
    config.polling.active_interval = Duration::from_millis(100);
    config.polling.ongoing_interval = Duration::from_millis(100);
    config.polling.backoff_initial = Duration::from_millis(50);
    config.polling.backoff_max = Duration::from_millis(400);
    config.polling.not_found_grace = Duration::from_secs(2);
    config.outbox.poll_interval = Duration::from_millis(50);
    config.outbox.retry_initial = Duration::from_millis(100);
    config.outbox.retry_max = Duration::from_millis(500);
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    log_to_test_output();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::start(listener, SIM_ID, SIM_SECRET).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&sim, dir.path()).await;
    tweak(&mut config);
    let cleanup = BrokerCleanup::topology(&config.amqp);
    let broker = Broker::connect(&broker_url().await).await;
    let mut app = TestApp {
        base: String::new(),
        http: reqwest::Client::new(),
        sim,
        config,
        broker,
        stop: CancellationToken::new(),
        running: None,
        _dir: dir,
        _database: None,
        _cleanup: cleanup,
    };
    app.start().await;
    app
}

impl TestApp {
    /// Keep `database` (the store's) until this app goes.
    pub fn keep_database(&mut self, database: ScratchDatabase) {
        self._database = Some(database);
    }

    /// (Re)start the bridge on the same store, simulator and names.
    pub async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        self.stop = CancellationToken::new();
        let app = App::build(self.config.clone()).await.expect("app builds");
        self.running = Some(tokio::spawn(app.run(listener, self.stop.clone())));
        self.wait_ready().await;
    }

    /// Graceful stop; the store keeps everything for the next `start`.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }

    /// Signal shutdown without waiting for it (to observe the drain).
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("bridge not ready within 5 s");
    }

    pub async fn register(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/transfers", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register_id(&self, id: &str) -> Value {
        let response = self.register(json!({"callTransferId": id})).await;
        assert_eq!(response.status(), 201, "registering {id}");
        response.json().await.unwrap()
    }

    /// `GET` a path of this bridge, e.g. `app.get("/v1/transfers")`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `POST` a path of this bridge, with no body.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// `GET` a path and read its JSON body.
    pub async fn json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    pub async fn view(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/v1/transfers/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Wait until the transfer left TRACKING and every action settled.
    pub async fn settled(&self, id: &str) -> Value {
        for _ in 0..200 {
            let view = self.view(id).await;
            let actions_done = view["actions"]
                .as_array()
                .is_some_and(|a| a.iter().all(|x| x["status"] != "pending"));
            if view["state"] != "TRACKING" && actions_done {
                return view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let view = self.view(id).await;
        // One short line first: a CI log that cuts the panic message keeps it.
        eprintln!("unsettled {id}: {}", summary(&view));
        panic!("{id} did not settle: {view}");
    }

    pub fn script(&self, id: &str, script: Value) {
        let script: Script = serde_json::from_value(script).unwrap();
        self.sim.script(id, script);
    }

    pub async fn bind(&self, exchange: &str, key: &str) -> TestQueue {
        self.broker.bind(exchange, key).await
    }
}

/// A transfer's state and each action's kind, status, attempts and last
/// error, on one line.
fn summary(view: &Value) -> String {
    let actions: Vec<String> = view["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}={}/{}/{}",
                a["kind"], a["status"], a["attempts"], a["lastError"]
            )
        })
        .collect();
    format!("state={} actions=[{}]", view["state"], actions.join(" "))
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
