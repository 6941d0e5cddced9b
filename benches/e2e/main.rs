//! End-to-end benchmark: the bridge against its simulator and the local
//! RabbitMQ, every poll policy in one run.
//!
//! `cargo bench --bench e2e` (RabbitMQ on 127.0.0.1:5672, or AMQP_URL).
//! `E2E_TRANSFERS` (default 500) and `E2E_COMPRESSION` (default 100) size it.

mod burst;
mod memory;
mod population;
mod proc;
mod report;
mod stand;
mod tracking;

use tokio::runtime::{Builder, Runtime};
use transfer_bridge::config::{PolicyKind, TrustSignals};

use stand::Env;
use tracking::Scenario;

/// Fixed intervals compared, real seconds.
const FIXED: [f64; 3] = [1.0, 5.0, 15.0];
/// Keep the simulator and bridge under this many GETs/s on 2 cores.
const MAX_RPS: f64 = 2500.0;

fn main() -> anyhow::Result<()> {
    let env_or = |key: &str, default: f64| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let transfers = env_or("E2E_TRANSFERS", 500.0) as usize;
    let compression = env_or("E2E_COMPRESSION", 100.0);
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    // Separate runtimes, so CPU can be told apart by thread name.
    let sim_rt = runtime("sim-", 1)?;
    let bridge_rt = runtime("bridge-", 2)?;
    let harness = Builder::new_current_thread().enable_all().build()?;
    harness.block_on(async {
        let env = Env::new(
            sim_rt.handle().clone(),
            bridge_rt.handle().clone(),
            amqp,
            compression,
            transfers,
        )
        .await?;
        let memory = memory::run(&env, 100_000).await?;
        eprintln!("memory: {memory:?}");
        let mut fixed = Vec::new();
        let mut adaptive = Vec::new();
        for seconds in FIXED {
            let concurrency = concurrency(seconds, compression);
            let f = tracking::run(
                &env,
                &scenario(
                    format!("fixed {seconds} s"),
                    PolicyKind::Fixed,
                    seconds,
                    None,
                    concurrency,
                ),
            )
            .await?;
            eprintln!("{f:?}");
            // The same p95 a fixed interval's schedule gives: 0.95 of it.
            let name = format!("adaptive, target p95 {:.2} s", 0.95 * seconds);
            let a = tracking::run(
                &env,
                &scenario(
                    name,
                    PolicyKind::Adaptive,
                    0.95 * seconds,
                    None,
                    concurrency,
                ),
            )
            .await?;
            eprintln!("{a:?}");
            fixed.push(f);
            adaptive.push(a);
        }
        let mut signalled = Vec::new();
        for trust in [TrustSignals::Always, TrustSignals::Auto] {
            let name = format!("adaptive 5 s + signals (trust {trust:?})").to_lowercase();
            let s = scenario(name, PolicyKind::Adaptive, 5.0, Some(trust), 200);
            let outcome = tracking::run(&env, &s).await?;
            eprintln!("{outcome:?}");
            signalled.push(outcome);
        }
        let burst = burst::run(&env, 10_000).await?;
        eprintln!("{burst:?}");
        let rows: Vec<_> = fixed
            .iter()
            .zip(&adaptive)
            .flat_map(|(f, a)| [f.clone(), a.clone()])
            .chain(signalled)
            .collect();
        report::table(&rows, compression);
        report::frontier(&fixed, &adaptive);
        report::others(&burst, &memory, proc::status_kib("VmHWM"));
        anyhow::Ok(())
    })
}

fn runtime(name: &'static str, threads: usize) -> std::io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
}

/// As many concurrent transfers as keep a fixed interval under `MAX_RPS`.
fn concurrency(seconds: f64, compression: f64) -> usize {
    (MAX_RPS * seconds / compression).clamp(20.0, 300.0) as usize
}

fn scenario(
    name: String,
    policy: PolicyKind,
    seconds: f64,
    signals: Option<TrustSignals>,
    concurrency: usize,
) -> Scenario {
    Scenario {
        name,
        policy,
        seconds,
        signals,
        concurrency,
    }
}
