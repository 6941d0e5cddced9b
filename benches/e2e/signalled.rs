//! CPU per signalled transfer, end to end: the bridge process takes a
//! registration (`returnSignal: true`), its `/returned` signal 2 ms after
//! the upstream shows COMPLETED, one GET, the state change, and three
//! confirmed publishes (audit of TRACKING, agent, audit of COMPLETED).
//! 200 arrivals a second, each call ONGOING for 1 s. Just before, the same
//! pace through a bare loop of the work no implementation can skip (see
//! `bare_signalled`): the ratio of the two holds across the VM's slow and
//! fast hours, which move the absolute figure by a third.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use transfer_bridge::simulator::{Script, Step};

use crate::bare_signalled::{self, BareSignalled};
use crate::burst::{count_agent_messages, settled};
use crate::polling::all_done;
use crate::proc::p50_p95_p99;
use crate::process::BridgeProcess;
use crate::stand::Env;

const ARRIVALS_PER_S: f64 = 200.0;
const ONGOING: Duration = Duration::from_secs(1);
/// The PBX signals this long after the upstream shows COMPLETED.
const SIGNAL_DELAY: Duration = Duration::from_millis(2);

const SETTINGS: [(&str, &str); 4] = [
    ("BRIDGE_HTTP__REGISTER_RATE_PER_S", "1000000"),
    ("BRIDGE_HTTP__REGISTER_BURST", "1000000"),
    // 200 signals/s is over the vendor's spike limit of 100/s.
    ("BRIDGE_UPSTREAM__RATE_LIMIT_PER_S", "20000"),
    ("BRIDGE_UPSTREAM__DAILY_BUDGET", "1000000000"),
];

#[derive(Debug)]
pub struct Signalled {
    pub transfers: usize,
    pub gets_per_transfer: f64,
    pub cpu_ms_per_transfer: f64,
    /// Answered in, ms, p50 / p95 / p99: the registration's 201 (it may
    /// wait a few ms under load to share a commit), the `/returned`.
    pub register_ms: [f64; 3],
    pub returned_ms: [f64; 3],
    /// The same pace of transfers through a plain loop, just before.
    pub bare: BareSignalled,
}

pub async fn run(env: &Env, n: usize) -> anyhow::Result<Signalled> {
    let sim = env.simulator().await?;
    sim.script("bare-signalled", completed());
    let url = format!(
        "{}/generativeagent/v1/call-transfers/bare-signalled",
        sim.base_url()
    );
    let bare = bare_signalled::run(env, url, n, ARRIVALS_PER_S, ONGOING + SIGNAL_DELAY).await?;
    // The bare loop's GETs are not the bridge's.
    let bare_gets = sim.counters().gets;
    let bridge = BridgeProcess::start(env, &sim.base_url(), &SETTINGS).await?;
    let store = bridge.store().await?;
    let _received = count_agent_messages(env, &bridge).await?;
    let cpu = bridge.cpu_seconds();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / ARRIVALS_PER_S)).await;
        let id = format!("sig{i:05}-{}", uuid::Uuid::new_v4().simple());
        sim.script(&id, script());
        let done_at = Instant::now() + ONGOING + SIGNAL_DELAY;
        tasks.spawn(transfer(
            bridge.http.clone(),
            bridge.base.clone(),
            id,
            done_at,
        ));
    }
    let (mut register_ms, mut returned_ms) = (Vec::with_capacity(n), Vec::with_capacity(n));
    while let Some(result) = tasks.join_next().await {
        let (register, returned) = result??;
        register_ms.push(register);
        returned_ms.push(returned);
    }
    all_done(&store).await?;
    settled(&store).await?;
    let cpu = bridge.cpu_seconds() - cpu;
    let gets = sim.counters().gets - bare_gets;
    store.close().await;
    bridge.stop(env).await?;
    sim.stop();
    Ok(Signalled {
        transfers: n,
        gets_per_transfer: gets as f64 / n as f64,
        cpu_ms_per_transfer: cpu * 1000.0 / n as f64,
        register_ms: p50_p95_p99(&mut register_ms),
        returned_ms: p50_p95_p99(&mut returned_ms),
        bare,
    })
}

/// Register now; signal at `done_at`. How long each took to answer, ms.
async fn transfer(
    http: reqwest::Client,
    base: String,
    id: String,
    done_at: Instant,
) -> anyhow::Result<(f64, f64)> {
    let body = json!({"callTransferId": id, "returnSignal": true});
    let (r, at) = (
        http.post(format!("{base}/v1/transfers")).json(&body),
        Instant::now(),
    );
    let status = r.send().await?.status();
    let register = at.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status == 201, "register {id}: {status}");
    tokio::time::sleep_until(done_at).await;
    let (url, at) = (format!("{base}/v1/transfers/{id}/returned"), Instant::now());
    let status = http.post(url).send().await?.status();
    let returned = at.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.is_success(), "returned {id}: {status}");
    Ok((register, returned))
}

/// A transfer the upstream shows COMPLETED from the start: the bare loop's
/// one GET at each end.
fn completed() -> Script {
    Script {
        timeline: vec![Step {
            status: "COMPLETED".into(),
            for_ms: None,
        }],
        output_context: Some(json!({"transferType": "AGENT", "currentTaskName": "signal"})),
        ..Script::default()
    }
}

fn script() -> Script {
    let step = |status: &str, for_ms| Step {
        status: status.into(),
        for_ms,
    };
    Script {
        timeline: vec![
            step("ONGOING", Some(ONGOING.as_millis() as u64)),
            step("COMPLETED", None),
        ],
        output_context: Some(json!({"transferType": "AGENT", "currentTaskName": "signal"})),
        ..Script::default()
    }
}
