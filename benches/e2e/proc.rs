//! Process figures from /proc: CPU by thread group, resident memory.

use std::fs;

/// CPU seconds so far: the whole process, and the threads that are not the
/// bridge's (the simulator's runtime, named `sim-*`, and the harness on the
/// main thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    total: f64,
    others: f64,
}

impl Cpu {
    pub fn now() -> Self {
        let total = stat_seconds("/proc/self/stat");
        let pid = std::process::id().to_string();
        let mut others = 0.0;
        for task in fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
        {
            let tid = task.file_name().to_string_lossy().to_string();
            let comm = fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if tid == pid || comm.starts_with("sim-") {
                others += thread_seconds(&task.path());
            }
        }
        Self { total, others }
    }

    /// Bridge CPU seconds between two samples.
    pub fn bridge_since(&self, earlier: &Cpu) -> f64 {
        ((self.total - earlier.total) - (self.others - earlier.others)).max(0.0)
    }
}

/// Where a stretch of time went on this machine, in CPU seconds: the whole
/// machine busy (all cores), the local broker, and this process (the bench's
/// clients and simulator). Take one before and one after.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    /// RabbitMQ's Erlang VM (`beam.smp`) when it runs on this machine.
    pub broker: Option<f64>,
    pub bench: f64,
}

impl MachineCpu {
    pub fn now() -> Self {
        Self {
            busy: machine_busy(),
            broker: broker_pid().map(process_cpu),
            bench: stat_seconds("/proc/self/stat"),
        }
    }

    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            busy: self.busy - earlier.busy,
            broker: self.broker.zip(earlier.broker).map(|(a, b)| a - b),
            bench: self.bench - earlier.bench,
        }
    }
}

/// Cores this machine gives its processes.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// CPU seconds all cores spent busy (not idle, not waiting for I/O) so far,
/// from the first line of /proc/stat (100 Hz ticks).
fn machine_busy() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal guest guest_nice
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let waiting = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (ticks.iter().sum::<f64>() - waiting) / 100.0
}

/// The local RabbitMQ's Erlang VM.
fn broker_pid() -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        (comm.trim_end() == "beam.smp").then_some(pid)
    })
}

/// CPU seconds (user + system) of process `pid` so far.
pub fn process_cpu(pid: u32) -> f64 {
    stat_seconds(&format!("/proc/{pid}/stat"))
}

fn stat_seconds(path: &str) -> f64 {
    let stat = fs::read_to_string(path).unwrap_or_default();
    // Fields after the ")" of comm: utime is the 12th, stime the 13th.
    let after = stat.rsplit(')').next().unwrap_or("");
    let field = |i: usize| {
        after
            .split_whitespace()
            .nth(i)
            .and_then(|v| v.parse::<f64>().ok())
    };
    // Clock ticks are 100 Hz on Linux.
    (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / 100.0
}

/// CPU seconds so far of this process's threads whose name starts with
/// `prefix` (a runtime's `thread_name`).
pub fn threads_cpu(prefix: &str) -> f64 {
    fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|task| {
            fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .map(|task| thread_seconds(&task.path()))
        .sum()
}

/// CPU seconds of each thread of this process by thread id, the
/// simulator's (`sim-*`) left out.
pub fn threads_by_id() -> std::collections::HashMap<String, f64> {
    fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|task| {
            !fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.starts_with("sim-"))
        })
        .map(|task| {
            let tid = task.file_name().to_string_lossy().to_string();
            (tid, thread_seconds(&task.path()))
        })
        .collect()
}

fn thread_seconds(task: &std::path::Path) -> f64 {
    // schedstat: nanoseconds on CPU, first field.
    fs::read_to_string(task.join("schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// `VmRSS` or `VmHWM` (peak) in KiB.
pub fn status_kib(key: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_field(&status, key).unwrap_or(0)
}

/// `VmRSS` or `VmHWM` of process `pid`, KiB.
pub fn pid_status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_field(&status, key).ok_or_else(|| anyhow::anyhow!("no {key} for {pid}"))
}

fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// p50 / p95 / p99 of `values` (sorted here).
pub fn p50_p95_p99(values: &mut [f64]) -> [f64; 3] {
    values.sort_by(f64::total_cmp);
    [0.5, 0.95, 0.99].map(|q| quantile(values, q))
}

/// The `q` quantile of sorted values (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
