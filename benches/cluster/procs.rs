//! The processes of the cluster benchmark: the simulator and bridges, each
//! `transfer-bridge` started from the CLI, killed with SIGKILL on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SIM_ID: &str = "bench-id";
pub const SIM_SECRET: &str = "bench-secret";

/// A child process that dies with its handle (SIGKILL: a crash, not a stop).
pub struct Proc(Child);

impl Proc {
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_transfer-bridge")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn simulator(port: u16, dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("simulator.log")).unwrap();
    let child = Command::new(bin())
        .args(["simulator", "--bind", &format!("127.0.0.1:{port}")])
        .args(["--api-id", SIM_ID, "--api-secret", SIM_SECRET])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("simulator starts");
    Proc(child)
}

/// What differs between the bridges of a run.
pub struct Bridge<'a> {
    pub name: &'a str,
    pub port: u16,
    /// `None`: the default store location, relative to `dir`.
    pub store: Option<&'a str>,
    pub dir: &'a Path,
}

/// A bridge on the defaults, except: the simulator as upstream, its own
/// exchange names, a budget and registration rate a benchmark cannot hit,
/// fixed 1 s polling (so GETs per transfer compare across runs), and its
/// threads on every CPU (several bridges on this machine would otherwise
/// each keep to the CPU they started on, maybe the same one).
pub fn bridge(b: &Bridge, sim_port: u16, amqp: &str, prefix: &str) -> Proc {
    std::fs::create_dir_all(b.dir).unwrap();
    let log = std::fs::File::create(b.dir.join(format!("{}.log", b.name))).unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("serve").current_dir(b.dir).env_clear();
    let env = [
        ("BRIDGE_HTTP__BIND", format!("127.0.0.1:{}", b.port)),
        ("BRIDGE_HTTP__REGISTER_RATE_PER_S", "100000".into()),
        ("BRIDGE_HTTP__REGISTER_BURST", "100000".into()),
        ("BRIDGE_CLUSTER__INSTANCE_ID", b.name.into()),
        ("BRIDGE_RUNTIME__ONE_CPU", "off".into()),
        (
            "BRIDGE_UPSTREAM__BASE_URL",
            format!("http://127.0.0.1:{sim_port}"),
        ),
        ("BRIDGE_UPSTREAM__API_ID", SIM_ID.into()),
        ("BRIDGE_UPSTREAM__API_SECRET", SIM_SECRET.into()),
        ("BRIDGE_UPSTREAM__DAILY_BUDGET", "100000000".into()),
        ("BRIDGE_UPSTREAM__RATE_LIMIT_PER_S", "10000".into()),
        ("BRIDGE_POLLING__POLICY", "fixed".into()),
        ("BRIDGE_POLLING__ACTIVE_INTERVAL", "1s".into()),
        ("BRIDGE_POLLING__ONGOING_INTERVAL", "1s".into()),
        ("BRIDGE_AMQP__URL", amqp.into()),
        ("BRIDGE_AMQP__AGENT_EXCHANGE", format!("{prefix}.agent")),
        ("BRIDGE_AMQP__PBX_EXCHANGE", format!("{prefix}.pbx")),
        ("BRIDGE_AMQP__AUDIT_EXCHANGE", format!("{prefix}.audit")),
        ("BRIDGE_AMQP__AUDIT_QUEUE", format!("{prefix}.audit")),
        ("RUST_LOG", "warn".into()),
    ];
    cmd.envs(env);
    if let Some(store) = b.store {
        cmd.env("BRIDGE_STORE__URL", store);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("bridge starts");
    Proc(child)
}

/// Wait until `base` answers /readyz with 200.
pub async fn ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} not ready within 30 s");
}

/// Wait until the simulator's control API answers.
pub async fn ready_sim(http: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if http
            .get(format!("{base}/_sim/counters"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("simulator not ready within 5 s");
}
