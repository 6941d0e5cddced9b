//! The benchmark stand: one simulator, a broker consumer on the agent
//! exchange, and the bridges of each stage.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};

use crate::procs::{self, Bridge, Proc, free_port};

/// ACTIVE then ONGOING before COMPLETED, from the moment of scripting.
const ONGOING_MS: u64 = 2_000;
const ACTIVE_MS: u64 = 100;
const IN_FLIGHT: usize = 64;

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub struct Stand {
    _sim: Proc,
    sim: String,
    http: reqwest::Client,
    amqp: String,
    prefix: String,
    channel: Channel,
    _conn: Connection,
    dir: tempfile::TempDir,
}

/// One stage's figures.
pub struct Load {
    lags: Vec<Duration>,
    span: Duration,
    gets: u64,
}

impl Stand {
    pub async fn start(amqp: &str) -> Self {
        // On the machine's disk, not /dev/shm: fsync costs what it costs.
        let dir = tempfile::Builder::new()
            .prefix("bench-cluster")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let port = free_port();
        let sim = procs::simulator(port, dir.path());
        let conn = Connection::connect(amqp, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        let stand = Self {
            _sim: sim,
            sim: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            amqp: amqp.into(),
            prefix: format!(
                "bench-cluster-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            channel,
            _conn: conn,
            dir,
        };
        procs::ready_sim(&stand.http, &stand.sim).await;
        stand
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn bridge(&self, b: &Bridge<'_>) -> Proc {
        let port = self.sim.rsplit(':').next().unwrap().parse().unwrap();
        let proc = procs::bridge(b, port, &self.amqp, &self.prefix);
        procs::ready(&self.http, &format!("http://127.0.0.1:{}", b.port)).await;
        proc
    }

    /// `n` transfers registered round-robin on bridges `names`, each
    /// completing ONGOING_MS after it is scripted; until every AGENT
    /// message arrived.
    pub async fn load(&self, names: &[&str], store: Option<&str>, n: usize) -> Load {
        let dir = self.dir().join(names[0]);
        let mut procs = Vec::new();
        let mut bases = Vec::new();
        for name in names {
            let port = free_port();
            let b = Bridge {
                name,
                port,
                store,
                dir: &dir,
            };
            procs.push(self.bridge(&b).await);
            bases.push(format!("http://127.0.0.1:{port}"));
        }
        let mut consumer = self.consume(names[0]).await;
        self.http
            .post(format!("{}/_sim/reset", self.sim))
            .send()
            .await
            .unwrap();
        let started = Instant::now();
        let due = self.register(&bases, n, names[0], ONGOING_MS).await;
        let mut lags = Vec::with_capacity(n);
        let mut seen = BTreeSet::new();
        let mut first_due = i64::MAX;
        while seen.len() < n {
            let delivery = tokio::time::timeout(Duration::from_secs(120), consumer.next()).await;
            let delivery = delivery
                .expect("AGENT messages stopped arriving")
                .unwrap()
                .unwrap();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let body: Value = serde_json::from_slice(&delivery.data).unwrap();
            let id = body["callTransferId"].as_str().unwrap().to_string();
            if seen.insert(id.clone()) {
                let at = due[&id];
                first_due = first_due.min(at);
                lags.push(Duration::from_millis((now_ms() - at).max(0) as u64));
            }
        }
        let span = Duration::from_millis((now_ms() - first_due).max(1) as u64);
        let counters: Value = self
            .http
            .get(format!("{}/_sim/counters", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        drop(procs);
        eprintln!(
            "{}: {n} delivered {:.1} s after the start",
            names.join("+"),
            started.elapsed().as_secs_f64()
        );
        Load {
            lags,
            span,
            gets: counters["gets"].as_u64().unwrap(),
        }
    }

    /// Script and register `n` transfers; when each one's COMPLETED is due.
    async fn register(
        &self,
        bases: &[String],
        n: usize,
        tag: &str,
        ongoing: u64,
    ) -> BTreeMap<String, i64> {
        let run = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let ids: Vec<String> = (0..n).map(|i| format!("{tag}-{run}-{i}")).collect();
        let done = stream::iter(ids.iter().enumerate())
            .map(|(i, id)| async move {
                let script = json!({"timeline": [{"status": "ACTIVE", "forMs": ACTIVE_MS},
                    {"status": "ONGOING", "forMs": ongoing}, {"status": "COMPLETED"}],
                    "outputContext": {"transferType": "AGENT", "currentTaskName": "bench"}});
                let at = now_ms() + (ACTIVE_MS + ongoing) as i64;
                let url = format!("{}/_sim/transfers/{id}", self.sim);
                self.http.put(url).json(&script).send().await.unwrap();
                let base = &bases[i % bases.len()];
                let r = self
                    .http
                    .post(format!("{base}/v1/transfers"))
                    .json(&json!({"callTransferId": id}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                (id.clone(), at)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        done.into_iter().collect()
    }

    /// `n` transfers on `base` that stay ONGOING for ten minutes.
    pub async fn register_long(&self, base: &str, n: usize) -> Vec<String> {
        let due = self.register(&[base.to_string()], n, "long", 600_000).await;
        due.into_keys().collect()
    }

    /// After `since_ms`: when the first of `ids` was polled again, and when
    /// the last of them was (each one's first GET since).
    pub async fn polled_again(&self, ids: &[String], since_ms: i64) -> (Duration, Duration) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let url = format!("{}/_sim/requests", self.sim);
            let recent: Vec<Value> = self
                .http
                .get(url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut first: BTreeMap<&str, i64> = BTreeMap::new();
            for r in &recent {
                let (at, id) = (r["atMs"].as_i64().unwrap(), r["id"].as_str().unwrap());
                if r["method"] == "GET" && at > since_ms {
                    first.entry(id).or_insert(at);
                }
            }
            let times: Vec<i64> = ids
                .iter()
                .filter_map(|id| first.get(id.as_str()).copied())
                .collect();
            if times.len() == ids.len() {
                let ms = |at: i64| Duration::from_millis((at - since_ms) as u64);
                return (
                    ms(*times.iter().min().unwrap()),
                    ms(*times.iter().max().unwrap()),
                );
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {} polled again",
                times.len(),
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn consume(&self, tag: &str) -> lapin::Consumer {
        let queue = format!("{}.{tag}.q", self.prefix);
        let ch = &self.channel;
        let opts = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())
            .await
            .unwrap();
        let exchange = format!("{}.agent", self.prefix);
        ch.queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            "agent.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.basic_consume(
            queue.as_str().into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
    }

    /// Delete what the bridges declared.
    pub async fn finish(self) {
        let ch = &self.channel;
        let queue = format!("{}.audit", self.prefix);
        let _ = ch
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
        for kind in ["agent", "pbx", "audit"] {
            let exchange = format!("{}.{kind}", self.prefix);
            let _ = ch
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
}

impl Load {
    pub fn rate(&self) -> f64 {
        self.lags.len() as f64 / self.span.as_secs_f64()
    }

    pub fn lag(&self, q: f64) -> Duration {
        let mut sorted = self.lags.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * q) as usize]
    }

    pub fn gets_per_transfer(&self) -> f64 {
        self.gets as f64 / self.lags.len() as f64
    }

    pub fn print(&self, name: &str) {
        let ms = |d: Duration| format!("{} ms", d.as_millis());
        println!(
            "{name:<28} {:>12.0} {:>10} {:>10} {:>10} {:>12.2}",
            self.rate(),
            ms(self.lag(0.5)),
            ms(self.lag(0.95)),
            ms(self.lag(1.0)),
            self.gets_per_transfer()
        );
    }
}
