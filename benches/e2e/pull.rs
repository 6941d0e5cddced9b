//! The call comes back: the PBX pulls `GET …/sip?wait=10s` the moment the
//! upstream says COMPLETED, against the older path (POST `/returned`, then
//! GET `/sip` until it is there). Each pull is timed against a plain GET of
//! the simulator made just before it, from the same task: the floor any
//! answer that needs one upstream round trip stands on.

use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::Instant;
use transfer_bridge::simulator::{Script, Step};

use crate::proc::p50_p95_p99;
use crate::stand::{Env, SIM_ID, SIM_SECRET, Stand};

/// The PBX acts this long after the upstream shows COMPLETED.
const SIGNAL_DELAY: Duration = Duration::from_millis(2);
/// The `/returned` path's dialplan re-asks for the instruction this often.
const RETRY_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `GET /v1/transfers/{id}/sip?wait=10s`, one request.
    Pull,
    /// `POST /v1/transfers/{id}/returned`, then `GET …/sip` every 100 ms.
    Returned,
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub mode: Mode,
    pub transfers: usize,
    pub gets_per_transfer: f64,
    /// PBX's first request to the instruction in hand, ms.
    pub answer_ms: [f64; 3],
    /// A plain GET of the simulator at the same moment, ms.
    pub upstream_ms: [f64; 3],
}

pub async fn run(env: &Env, n: usize, mode: Mode) -> anyhow::Result<PullOutcome> {
    let stand = env
        .stand(|c| {
            c.http.register_rate_per_s = 10_000;
            c.http.register_burst = 10_000;
        })
        .await?;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        // 40 arrivals a second, calls of 0.3-1.5 s: dozens at once, and
        // their pulls stay under the default upstream.rate_limit_per_s (50).
        tokio::time::sleep_until(start + Duration::from_millis(25 * i as u64)).await;
        let id = format!("p{i:05}-{}", uuid::Uuid::new_v4().simple());
        let ongoing = Duration::from_millis(300 + (i as u64 * 7919) % 1200);
        stand.sim.script(&id, script(ongoing, "SIP"));
        stand
            .sim
            .script(&format!("base-{id}"), script(Duration::ZERO, "SIP"));
        let body = json!({"callTransferId": id, "returnSignal": true});
        let r = stand
            .http
            .post(format!("{}/v1/transfers", stand.base))
            .json(&body);
        anyhow::ensure!(r.send().await?.status() == 201, "register {id}");
        let done_at = Instant::now() + Duration::from_millis(100) + ongoing + SIGNAL_DELAY;
        tasks.spawn(pbx(
            stand.http.clone(),
            stand.base.clone(),
            stand.sim.base_url(),
            id,
            done_at,
            mode,
        ));
    }
    let (mut answers, mut floors) = (Vec::new(), Vec::new());
    while let Some(result) = tasks.join_next().await {
        let (answer, floor) = result??;
        answers.push(answer);
        floors.push(floor);
    }
    let gets = gets(&stand, n);
    stand.stop(&env.broker).await?;
    Ok(PullOutcome {
        mode,
        transfers: n,
        gets_per_transfer: gets as f64 / n as f64,
        answer_ms: p50_p95_p99(&mut answers),
        upstream_ms: p50_p95_p99(&mut floors),
    })
}

fn script(ongoing: Duration, kind: &str) -> Script {
    let step = |status: &str, ms: Option<u64>| Step {
        status: status.into(),
        for_ms: ms,
    };
    let timeline = match ongoing.is_zero() {
        true => vec![step("COMPLETED", None)],
        false => vec![
            step("ACTIVE", Some(100)),
            step("ONGOING", Some(ongoing.as_millis() as u64)),
            step("COMPLETED", None),
        ],
    };
    Script {
        kind: kind.into(),
        timeline,
        sip: Some(json!({"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"})),
        output_context: Some(json!({"transferType": "SYSTEM", "currentTaskName": "pull",
            "transferVariables": {"lang": "en"}})),
        ..Script::default()
    }
}

/// What the PBX does when the call comes back; (answer, floor) in ms.
async fn pbx(
    http: reqwest::Client,
    base: String,
    sim: String,
    id: String,
    done_at: Instant,
    mode: Mode,
) -> anyhow::Result<(f64, f64)> {
    tokio::time::sleep_until(done_at).await;
    let floor = Instant::now();
    let url = format!("{sim}/generativeagent/v1/call-transfers/base-{id}");
    let plain = http.get(url).header("asapp-api-id", SIM_ID);
    let status = plain
        .header("asapp-api-secret", SIM_SECRET)
        .send()
        .await?
        .status();
    anyhow::ensure!(status == 200, "simulator GET: {status}");
    let floor = ms(floor.elapsed());
    let asked = Instant::now();
    let sip = format!("{base}/v1/transfers/{id}/sip");
    match mode {
        Mode::Pull => {
            let status = http.get(format!("{sip}?wait=10s")).send().await?.status();
            anyhow::ensure!(status == 200, "pull {id}: {status}");
        }
        Mode::Returned => {
            let url = format!("{base}/v1/transfers/{id}/returned");
            anyhow::ensure!(http.post(url).send().await?.status().is_success());
            while http.get(&sip).send().await?.status() != 200 {
                anyhow::ensure!(
                    asked.elapsed() < Duration::from_secs(10),
                    "{id}: no instruction"
                );
                tokio::time::sleep(RETRY_EVERY).await;
            }
        }
    }
    Ok((ms(asked.elapsed()), floor))
}

fn gets(stand: &Stand, n: usize) -> u64 {
    let counters = stand.sim.counters();
    let ours = counters
        .transfers
        .iter()
        .filter(|(id, _)| id.starts_with('p'));
    let gets = ours.map(|(_, c)| c.get).sum();
    debug_assert!(counters.transfers.len() >= n);
    gets
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
