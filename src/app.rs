//! The App: every part wired together, run on a listener until a token fires.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, RegisterLimiter};
use crate::cluster::{Cluster, StoreDurationLog, StoreLedger};
use crate::config::Config;
use crate::delivery::{AmqpPublisher, Sinks};
use crate::lifecycle::Lifecycle;
use crate::outbox::Dispatcher;
use crate::store::Store;
use crate::tracker::{Integrations, Learned, PollDeps, Tracker, sharing_policy};
use crate::transfer::Waiters;
use crate::upstream::{Budget, UpstreamClient};

/// What `run` starts beside the API, and how it is stopped.
struct Background {
    /// Polling, delivery and learning: drained before the rest stops.
    tasks: TaskTracker,
    /// Polling and delivery go on through the grace period; they stop
    /// taking work only once the listener is closed.
    work_stop: CancellationToken,
    /// The broker outlives the dispatcher's drain, so it has its own token.
    broker_stop: CancellationToken,
    broker: JoinHandle<()>,
    /// The cluster's lease (renewal and adoption).
    lease: JoinHandle<()>,
    /// The lease outlives the drain: given up after the last poll and delivery.
    lease_stop: CancellationToken,
    /// Fired when this instance lost its lease: it stops at once.
    fenced: CancellationToken,
}

/// A built but not yet running bridge. Tests build one per case on a fresh
/// store and run it on port 0.
pub struct App {
    config: Arc<Config>,
    store: Store,
    upstream: UpstreamClient,
    amqp: AmqpPublisher,
    dispatcher: Dispatcher,
    integrations: Arc<Integrations>,
    waiters: Arc<Waiters>,
    /// Conversation lengths learned here and by the other instances.
    learned: Learned,
    /// This instance's id (`cluster.instance_id`, or generated).
    instance: Arc<str>,
    lifecycle: Lifecycle,
}

/// The upstream client over the deployment's one daily count, which the
/// store keeps, with the first batch of it reserved.
async fn upstream_client(config: &Config, store: &Store) -> anyhow::Result<UpstreamClient> {
    let ledger = Arc::new(StoreLedger::new(store.clone()));
    let budget = Arc::new(Budget::new(&config.upstream).with_ledger(ledger));
    budget.reserve_ahead().await;
    UpstreamClient::new(&config.upstream, budget).context("building the upstream client")
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let store = Store::connect(config.store.url.expose_secret())
            .await
            .context("opening the store")?;
        let upstream = upstream_client(&config, &store).await?;
        let amqp = AmqpPublisher::new(config.amqp.clone());
        let sinks = Sinks {
            amqp: amqp.clone(),
            webhook: config
                .webhook
                .client()
                .context("building the webhook client")?,
            webhook_secrets: config.webhook.signing_secrets(),
            webhook_retry: config.webhook.retry.clone(),
        };
        let instance: Arc<str> = config.cluster.instance_id().into();
        let dispatcher = Dispatcher::new(
            store.clone(),
            sinks,
            config.outbox.clone(),
            config.amqp.audit_exchange.clone(),
            instance.clone(),
        );
        let waiters = Waiters::new(config.http.max_waiters);
        let lifecycle = Lifecycle::new(
            store.clone(),
            config.router(),
            dispatcher.handoff(),
            waiters.clone(),
            instance.clone(),
        );
        Ok(Self {
            config,
            store,
            upstream,
            amqp,
            dispatcher,
            integrations: Integrations::new(),
            waiters,
            learned: Learned::default(),
            instance,
            lifecycle,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// Serve until `shutdown` fires. Then: answer 503 to registrations and
    /// /readyz for `shutdown.grace`, stop listening, let in-flight polls and
    /// deliveries finish up to `shutdown.deadline`, close the broker and the
    /// store. Whatever is left stays durable for the next start.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (background, tracker, cluster) = self.start().await?;
        let state = self.api_state(tracker, cluster, shutdown.clone());
        tracing::info!(addr = %listener.local_addr()?, "transfer-bridge listening");
        let closing = self.closing(shutdown, background.fenced.clone());
        api::serve::serve(listener, api::app(state), &self.config.http, closing).await;
        self.stop(background).await
    }

    /// The broker connection, then polling (with what a previous run or a
    /// dead instance left), the cluster's lease, delivery and learning.
    async fn start(&self) -> anyhow::Result<(Background, Tracker, Cluster)> {
        let drain = self.config.shutdown.deadline;
        let tasks = TaskTracker::new();
        let work_stop = CancellationToken::new();
        let broker_stop = CancellationToken::new();
        let broker = tokio::spawn(self.amqp.clone().run(broker_stop.clone()));
        self.dispatcher.release_stale_claims().await;
        let tracker = Tracker::spawn(self.poll_deps(), &tasks, work_stop.clone(), drain);
        let cluster = self.join(tracker.clone()).await?;
        let fenced = CancellationToken::new();
        let url = self.config.store.url.expose_secret().to_owned();
        let lease_stop = CancellationToken::new();
        let lease = tokio::spawn(cluster.clone().run(
            self.waiters.clone(),
            url,
            [work_stop.clone(), lease_stop.clone()],
            fenced.clone(),
        ));
        tasks.spawn(self.dispatcher.clone().run(work_stop.clone(), drain));
        let log = Arc::new(StoreDurationLog::new(
            self.store.clone(),
            self.instance.clone(),
        ));
        let polling = &self.config.polling;
        let (every, window) = (polling.learn_sync_interval, polling.learn_window);
        let sync = self
            .learned
            .clone()
            .sync(log, every, window, work_stop.clone());
        tasks.spawn(sync);
        let background = Background {
            tasks,
            work_stop,
            broker_stop,
            broker,
            lease,
            lease_stop,
            fenced,
        };
        Ok((background, tracker, cluster))
    }

    fn api_state(
        &self,
        tracker: Tracker,
        cluster: Cluster,
        draining: CancellationToken,
    ) -> AppState {
        AppState::new(api::Handles {
            config: self.config.clone(),
            store: self.store.clone(),
            tracker,
            cluster,
            upstream: self.upstream.clone(),
            lifecycle: self.lifecycle(),
            amqp: self.amqp.clone(),
            metrics: crate::telemetry::metrics_handle(),
            draining,
            register_limit: Arc::new(RegisterLimiter::new(&self.config.http)),
            returns_limit: Arc::new(RegisterLimiter::new(&self.config.http)),
            waiters: self.waiters.clone(),
        })
    }

    /// Resolves when the listener is to close: `shutdown.grace` after
    /// `shutdown` (registrations get 503 meanwhile), or at once when this
    /// instance lost its lease.
    fn closing(
        &self,
        shutdown: CancellationToken,
        fenced: CancellationToken,
    ) -> impl Future<Output = ()> + use<> {
        let grace = self.config.shutdown.grace;
        async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = fenced.cancelled() => return,
            }
            tracing::info!(
                grace_ms = grace.as_millis() as u64,
                "draining: registrations now get 503"
            );
            tokio::time::sleep(grace).await;
        }
    }

    /// After the listener closed: the last polls and deliveries, then the
    /// lease, the unused budget, the broker and the store, in that order.
    async fn stop(self, background: Background) -> anyhow::Result<()> {
        background.work_stop.cancel();
        background.tasks.close();
        background.tasks.wait().await;
        // The lease is given up only after the last poll and delivery.
        background.lease_stop.cancel();
        let _ = background.lease.await;
        self.upstream.budget().release_unused().await;
        background.broker_stop.cancel();
        let _ = background.broker.await;
        self.store.close().await;
        tracing::info!("transfer-bridge stopped");
        match background.fenced.is_cancelled() {
            true => anyhow::bail!("stopped: this instance lost its lease (see the log)"),
            false => Ok(()),
        }
    }

    /// One lifecycle (and so one group committer) for the API, the tracker
    /// and the cluster.
    fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    fn poll_deps(&self) -> PollDeps {
        PollDeps {
            lifecycle: self.lifecycle(),
            upstream: self.upstream.clone(),
            config: self.config.polling.clone(),
            policy: sharing_policy(
                &self.config.polling,
                self.integrations.clone(),
                &self.learned,
            ),
            integrations: self.integrations.clone(),
            waiters: self.waiters.clone(),
            auth_fail_after: self.config.upstream.auth_fail_after,
        }
    }

    /// Take this instance's lease and pick up what is left to poll: on
    /// SQLite every transfer a previous run left TRACKING, on PostgreSQL
    /// this instance's own (a restart under the same id); those of
    /// instances whose lease expired come with the lease's first renewal.
    async fn join(&self, tracker: Tracker) -> anyhow::Result<Cluster> {
        let budget = self.upstream.budget().clone();
        let cluster = Cluster::new(
            self.store.clone(),
            self.lifecycle(),
            tracker,
            self.config.cluster.clone(),
            move |live| budget.share_spike(live),
        );
        let count = cluster.join().await.context("joining the cluster")?;
        tracing::info!(
            instance = cluster.instance(),
            resumed = count,
            "instance joined"
        );
        Ok(cluster)
    }
}
