//! Several instances on PostgreSQL against one on SQLite, in the same run,
//! each bridge a `transfer-bridge serve` process (README "Several
//! instances"): throughput, lag and GETs per transfer for the same load,
//! then the failover gap after a `kill -9` of one of two instances.
//!
//!   AMQP_URL=... DATABASE_URL=... cargo bench --bench cluster
//!   (CLUSTER_N=2000 transfers per load stage, CLUSTER_FAILOVER_N=300)

mod load;
mod procs;

use std::time::{Duration, Instant};

use load::Stand;
use procs::{Bridge, Proc, free_port};
use transfer_bridge::store::ScratchDatabase;

#[tokio::main]
async fn main() {
    let n: usize = env_or("CLUSTER_N", 2000);
    let failover_n: usize = env_or("CLUSTER_FAILOVER_N", 300);
    let amqp = std::env::var("AMQP_URL").expect("AMQP_URL: the benchmark publishes to RabbitMQ");
    let pg = std::env::var("DATABASE_URL").expect("DATABASE_URL: the benchmark needs PostgreSQL");
    let stand = Stand::start(&amqp).await;

    let sqlite = stand.load(&["solo"], None, n).await;
    let db = ScratchDatabase::create(&pg, "bench_cluster").await.unwrap();
    let postgres = stand.load(&["pg-a", "pg-b"], Some(db.url()), n).await;
    println!("\n== load: {n} transfers, each ONGOING 2 s, fixed 1 s polling ==");
    println!(
        "{:<28} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "setup", "completions/s", "lag p50", "lag p95", "lag max", "GETs/transfer"
    );
    for (name, load) in [
        ("1 instance, SQLite", &sqlite),
        ("2 instances, PostgreSQL", &postgres),
    ] {
        load.print(name);
    }
    println!(
        "ratio (2 on PostgreSQL / 1 on SQLite): throughput {:.2}x, lag p50 {:.2}x, GETs/transfer {:.2}x",
        postgres.rate() / sqlite.rate(),
        postgres.lag(0.5).as_secs_f64() / sqlite.lag(0.5).as_secs_f64(),
        postgres.gets_per_transfer() / sqlite.gets_per_transfer()
    );

    let db2 = ScratchDatabase::create(&pg, "bench_failover")
        .await
        .unwrap();
    failover(&stand, db2.url(), failover_n).await;
    stand.finish().await;
    // The benchmark's scratch databases go when it ends.
    for database in [db, db2] {
        if let Err(e) = database.drop_now().await {
            eprintln!("a scratch database was not dropped: {e}");
        }
    }
}

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Two instances; `n` long transfers registered on `a`; kill -9 `a`; how
/// long until `b` polls them: the first, and all of them.
async fn failover(stand: &Stand, db: &str, n: usize) {
    let (a, b) = (free_port(), free_port());
    let dir = stand.dir().join("failover");
    let bridge = |name, port| Bridge {
        name,
        port,
        store: Some(db),
        dir: &dir,
    };
    let proc_a = stand.bridge(&bridge("fo-a", a)).await;
    let _proc_b: Proc = stand.bridge(&bridge("fo-b", b)).await;
    let ids = stand
        .register_long(&format!("http://127.0.0.1:{a}"), n)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_ms = load::now_ms();
    let killed = Instant::now();
    proc_a.kill();
    let (first, all) = stand.polled_again(&ids, killed_ms).await;
    println!(
        "\n== failover: kill -9 of one of two instances ({n} transfers it owned), default lease =="
    );
    println!(
        "first of its transfers polled again after {:.1} s; all {n} after {:.1} s (lease_ttl 10 s + renew_interval 3 s bound it at 13 s); measured over {:.1} s",
        first.as_secs_f64(),
        all.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
}
