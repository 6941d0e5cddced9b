//! The table, the frontier, and the other figures.

use crate::burst::Burst;
use crate::held::Held;
use crate::memory::Memory;
use crate::polling::Polling;
use crate::pull::{Mode, PullOutcome};
use crate::returns::Returns;
use crate::signalled::Signalled;
use crate::tracking::Outcome;

pub fn table(outcomes: &[Outcome], compression: f64) {
    println!();
    println!(
        "Durations log-normal (median 150 s, sigma 0.7) after 10 s ACTIVE, compressed {compression}x; lags in real-time seconds (compressed x {compression}); signal lag in real ms."
    );
    println!(
        "| scenario | transfers | concurrency | GETs/transfer | lag p50 / p95 / p99 (s) | signal->seen p50 / p95 / p99 (ms) | completions/s | CPU s / 1k transfers | peak GETs in 1 s (limit) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for o in outcomes {
        let signal = o.signal_lag_ms.map_or("-".to_string(), |l| {
            format!("{:.1} / {:.1} / {:.1}", l[0], l[1], l[2])
        });
        println!(
            "| {} | {} | {} | {:.2} | {:.2} / {:.2} / {:.2} | {} | {:.1} | {:.2} | {} ({}) |",
            o.scenario.name,
            o.transfers,
            o.scenario.concurrency,
            o.gets_per_transfer,
            o.lag[0],
            o.lag[1],
            o.lag[2],
            signal,
            o.completions_per_s,
            o.cpu_per_1k,
            o.peak_window.0,
            o.peak_window.1,
        );
    }
}

/// Without signals: each policy's (GETs per transfer, p95 lag) points, and
/// whether each adaptive point dominates the fixed interval it was aimed at.
pub fn frontier(fixed: &[Outcome], adaptive: &[Outcome]) {
    if fixed.is_empty() {
        return;
    }
    println!();
    let points = |name: &str, set: &[Outcome]| {
        let list: Vec<String> = set
            .iter()
            .map(|o| format!("({:.1} GETs, {:.2} s)", o.gets_per_transfer, o.lag[1]))
            .collect();
        println!("frontier {name}: {}", list.join(" "));
    };
    points("fixed", fixed);
    points("adaptive", adaptive);
    for (f, a) in fixed.iter().zip(adaptive) {
        let gets = a.gets_per_transfer / f.gets_per_transfer - 1.0;
        let p95 = a.lag[1] / f.lag[1] - 1.0;
        let dominates = a.gets_per_transfer <= f.gets_per_transfer && a.lag[1] <= f.lag[1];
        println!(
            "{} vs {}: GETs {:+.0}%, p95 lag {:+.1}% -> {}",
            a.scenario.name,
            f.scenario.name,
            gets * 100.0,
            p95 * 100.0,
            if dominates {
                "dominates"
            } else {
                "does not dominate"
            }
        );
    }
}

pub fn others(memory: Option<&Memory>, peak_rss_kib: u64) {
    println!();
    if let Some(memory) = memory {
        println!(
            "memory: {:.0} bytes RSS per tracked transfer at {} tracked",
            memory.bytes_per_transfer, memory.tracked
        );
    }
    println!(
        "peak RSS of the whole run: {:.0} MiB",
        peak_rss_kib as f64 / 1024.0
    );
}

/// Throughput and CPU of `transfer-bridge serve` as its own process, each
/// against its bare baseline from the same run.
pub fn throughput(burst: Option<&Burst>, polling: Option<&Polling>, signalled: Option<&Signalled>) {
    println!();
    if let Some(b) = burst {
        let rate = b.transfers as f64 / b.drain_s;
        let messages = b.published as f64 / b.drain_s;
        println!(
            "burst ({}): {} completing at once, each signalled: {} agent messages received, {} confirmed, drained in {:.2} s (the last signal answered at {:.2} s, {} received by then): {:.0} completions/s, {} messages published at {:.0}/s = {:.2}x bare lapin to one transient queue ({:.0} msgs/s, {} messages, 100 confirms in flight), {:.2}x bare lapin to the bridge's topology ({:.0} msgs/s: half to the audit queue as configured by default); bridge CPU {:.3} ms per completion; before it, {} registered {} at a time in {:.2} s: {:.0}/s, {:.3} ms CPU each; after the drain, each again, the same body (200), in {:.2} s: {:.3} ms CPU per repeat = {:.2}x a registration",
            b.store,
            b.transfers,
            b.received,
            b.confirmed,
            b.drain_s,
            b.signalled.0,
            b.signalled.1,
            rate,
            b.published,
            messages,
            messages / b.bare.per_s,
            b.bare.per_s,
            b.bare.messages,
            messages / b.bare_as_bridge.per_s,
            b.bare_as_bridge.per_s,
            b.cpu_ms_per_completion,
            b.transfers,
            crate::burst::CONCURRENCY,
            b.registered.0,
            b.transfers as f64 / b.registered.0,
            b.registered.1,
            b.repeated.0,
            b.repeated.1,
            b.repeated.1 / b.registered.1,
        );
        burst_machine(b);
    }
    if let Some(p) = polling {
        println!(
            "polling: {} transfers, fixed 1 s: {:.3} ms CPU per GET ({} GETs in the steady window) = {:.2}x bare reqwest ({:.3} ms per GET, {} GETs); whole run {:.3} ms per GET ({} GETs, registrations and completions included)",
            p.transfers,
            p.ms_per_get,
            p.gets,
            p.ms_per_get / p.bare.ms_per_get,
            p.bare.ms_per_get,
            p.bare.gets,
            p.run_ms_per_get,
            p.run_gets,
        );
    }
    if let Some(s) = signalled {
        println!(
            "signalled: {} transfers, {:.2} GETs each: {:.3} ms CPU per transfer (registration, signal, GET, state change, 3 confirmed publishes) = {:.2}x a bare loop of the same pace ({:.3} ms per transfer: two SQLite transactions with FULL sync, one reqwest GET, three confirmed lapin publishes; no HTTP server, no marks); answered in p50 / p95 / p99: registration {:.1} / {:.1} / {:.1} ms, /returned {:.1} / {:.1} / {:.1} ms",
            s.transfers,
            s.gets_per_transfer,
            s.cpu_ms_per_transfer,
            s.cpu_ms_per_transfer / s.bare.cpu_ms_per_transfer,
            s.bare.cpu_ms_per_transfer,
            s.register_ms[0],
            s.register_ms[1],
            s.register_ms[2],
            s.returned_ms[0],
            s.returned_ms[1],
            s.returned_ms[2],
        );
    }
}

/// The call comes back: pull with `?wait=` against `/returned` + re-asking.
pub fn pulls(outcomes: &[PullOutcome], held: Option<&Held>) {
    if !outcomes.is_empty() {
        println!();
        println!(
            "| PBX path at completion | transfers | GETs/transfer | first request -> instruction p50 / p95 / p99 (ms) | plain simulator GET p50 / p95 / p99 (ms) | p99 over the plain GET's p99 (ms) |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
    }
    for o in outcomes {
        let path = match o.mode {
            Mode::Pull => "GET /sip?wait=10s",
            Mode::Returned => "POST /returned, GET /sip every 100 ms",
        };
        let (a, f) = (o.answer_ms, o.upstream_ms);
        println!(
            "| {path} | {} | {:.2} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {:.1} |",
            o.transfers,
            o.gets_per_transfer,
            a[0],
            a[1],
            a[2],
            f[0],
            f[1],
            f[2],
            a[2] - f[2],
        );
    }
    if let Some(h) = held {
        println!(
            "held requests: {} at once, {:.0} bytes of bridge RSS each (connection included); an idle keep-alive connection alone: {:.0} bytes",
            h.requests, h.bytes_per_request, h.bytes_per_idle_connection
        );
    }
}

pub fn returns(returns: Option<&Returns>) {
    let Some(r) = returns else {
        return;
    };
    println!();
    println!(
        "returns ({}): {} headers-only SIP returns, {} at a time: {:.0}/s, answered in p50 / p95 / p99 {:.1} / {:.1} / {:.1} ms (floor GET /healthz: {:.0}/s, {:.1} / {:.1} / {:.1} ms; {:.2}x its rate), all routed {:.2} s after the first; bridge CPU {:.3} ms per return",
        r.store,
        r.returns,
        crate::burst::CONCURRENCY,
        r.rate,
        r.latency_ms[0],
        r.latency_ms[1],
        r.latency_ms[2],
        r.floor_rate,
        r.floor_ms[0],
        r.floor_ms[1],
        r.floor_ms[2],
        r.rate / r.floor_rate,
        r.routed_s,
        r.cpu_ms_per_return,
    );
}

/// Where the machine's CPU went in the burst's drain, and the shortest drain
/// that work allows: every core busy from start to end. Against it, the
/// drain 0.5x bare lapin asks for.
fn burst_machine(b: &Burst) {
    let m = &b.machine;
    let cores = crate::proc::cores();
    let bridge = b.cpu_ms_per_completion * b.transfers as f64 / 1000.0;
    let broker = |cpu: Option<f64>| cpu.map_or("not local".to_string(), |s| format!("{s:.2} s"));
    let floor = m.busy / cores as f64;
    let half_bare = |bare: &crate::bare::BareLapin| b.published as f64 / (0.5 * bare.per_s);
    println!(
        "burst ({}) machine: over the {:.2} s drain, {} cores busy {:.2} of {:.2} CPU-s: bridge {:.2} s, broker {} (bare lapin's {} messages: {} to one transient queue, {} to the bridge's topology), bench and its simulator {:.2} s, rest {:.2} s; all cores busy throughout, that work takes {:.2} s; 0.5x bare lapin asks for {:.2} s (to the bridge's topology: {:.2} s)",
        b.store,
        b.drain_s,
        cores,
        m.busy,
        cores as f64 * b.drain_s,
        bridge,
        broker(m.broker),
        b.bare.messages,
        broker(b.bare.broker_cpu_s),
        broker(b.bare_as_bridge.broker_cpu_s),
        m.bench,
        m.busy - bridge - m.broker.unwrap_or(0.0) - m.bench,
        floor,
        half_bare(&b.bare),
        half_bare(&b.bare_as_bridge),
    );
}
