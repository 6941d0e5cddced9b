//! `transfer-bridge serve` as users run it: on a machine that gives it two
//! CPUs, its async thread and the threads it hands work to (SQLite's
//! connection threads, lapin's I/O thread) share one of them
//! (`runtime.one_cpu = "auto"`), while tokio's blocking pool, where heavy
//! work goes, keeps them all; with `"off"`, or any other count of CPUs,
//! every thread may run on all of them. Kept on one CPU, every thread runs
//! under SCHED_BATCH (`runtime.sched_batch = "auto"`), unless told not to.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cleanup::BrokerCleanup;
use crate::helpers::{broker_url, test_prefix};

const BIN: &str = env!("CARGO_BIN_EXE_transfer-bridge");

/// A `serve` process, killed when dropped.
struct Serve {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `serve` on the default config but for its names, store and broker, and
/// the `BRIDGE_RUNTIME__*` `settings`; once `/readyz` says it is ready (its store
/// open, its broker connected), so its threads have started.
async fn serve(tag: &str, settings: &[(&str, &str)]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .env("BRIDGE_UPSTREAM__BASE_URL", "http://127.0.0.1:9")
        .env("BRIDGE_UPSTREAM__API_ID", "id")
        .env("BRIDGE_UPSTREAM__API_SECRET", "secret")
        .env("BRIDGE_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("BRIDGE_AMQP__URL", broker_url().await)
        .env("BRIDGE_AMQP__AUDIT_QUEUE", format!("{tag}.transfer.audit"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for what in ["AGENT", "PBX", "AUDIT"] {
        let name = format!("{tag}.transfer.{}", what.to_lowercase());
        command.env(format!("BRIDGE_AMQP__{what}_EXCHANGE"), name);
    }
    for (key, value) in settings {
        command.env(format!("BRIDGE_RUNTIME__{key}"), value);
    }
    let serve = Serve {
        child: command.spawn().expect("serve starts"),
        _dir: dir,
    };
    let ready = format!("http://127.0.0.1:{port}/readyz");
    for _ in 0..200 {
        let answer = reqwest::get(&ready).await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return serve;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("serve was not ready within 20 s");
}

/// The CPUs a thread may run on, as `/proc` lists them ("0-1", "1").
fn cpus_allowed(status: &str) -> String {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("a Cpus_allowed_list line");
    line.trim().to_string()
}

/// A thread's scheduling policy, the 41st field of its `stat` (0 is the
/// default, SCHED_OTHER; 3 is SCHED_BATCH). The name, the 2nd, is in
/// parentheses and may hold spaces, so fields are counted after it.
fn policy(stat: &str) -> u32 {
    let after_name = &stat[stat.rfind(')').expect("a name in parentheses") + 1..];
    let field = after_name
        .split_whitespace()
        .nth(41 - 3)
        .expect("41 fields");
    field.parse().expect("a number")
}

const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// Each thread of `pid`: its name, the CPUs it may run on, and its policy.
fn threads(pid: u32) -> Vec<(String, String, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let read = |path: &std::path::Path, file| std::fs::read_to_string(path.join(file));
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = read(&path, "comm").ok()?.trim().to_string();
            let cpus = cpus_allowed(&read(&path, "status").ok()?);
            Some((name, cpus, policy(&read(&path, "stat").ok()?)))
        })
        .collect()
}

/// Whether every thread in `seen` runs under `wanted`.
fn all_under<'a>(seen: impl IntoIterator<Item = &'a (String, String, u32)>, wanted: u32) -> bool {
    seen.into_iter().all(|(_, _, policy)| *policy == wanted)
}

#[tokio::test]
async fn serve_keeps_every_thread_on_one_of_two_cpus_under_sched_batch_unless_told_not_to() {
    let mine = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let allowed = std::thread::available_parallelism().unwrap().get();
    let tag = test_prefix();
    let mut cleanup = BrokerCleanup::new(&broker_url().await);
    cleanup.queue(&format!("{tag}.transfer.audit"));
    for what in ["agent", "pbx", "audit"] {
        cleanup.exchange(&format!("{tag}.transfer.{what}"));
    }
    let auto = serve(&tag, &[]).await;
    let seen = threads(auto.child.id());
    let names: BTreeSet<&str> = seen.iter().map(|(name, ..)| name.as_str()).collect();
    for started in ["sqlx-sqlite-wor", "lapin-io-loop"] {
        assert!(names.contains(started), "no {started} thread: {seen:?}");
    }
    // tokio names its blocking pool's threads so; the current-thread
    // runtime has no other threads of its own.
    let (blocking, kept): (Vec<_>, Vec<_>) = seen
        .iter()
        .partition(|(name, ..)| name.starts_with("tokio-"));
    assert!(
        blocking.iter().all(|(_, cpus, _)| *cpus == mine),
        "{seen:?}"
    );
    let lists: BTreeSet<&str> = kept.iter().map(|(_, cpus, _)| cpus.as_str()).collect();
    match allowed {
        2 => {
            assert_eq!(lists.len(), 1, "{seen:?}");
            let one = lists.first().unwrap();
            assert!(one.parse::<usize>().is_ok(), "not one CPU: {seen:?}");
            assert!(all_under(kept, SCHED_BATCH), "{seen:?}");
        }
        _ => {
            assert_eq!(lists, BTreeSet::from([mine.as_str()]), "{seen:?}");
            assert!(all_under(&seen, SCHED_OTHER), "{seen:?}");
        }
    }
    drop(auto);
    let off = serve(&tag, &[("ONE_CPU", "off")]).await;
    let seen = threads(off.child.id());
    assert!(seen.iter().all(|(_, cpus, _)| *cpus == mine), "{seen:?}");
    assert!(all_under(&seen, SCHED_OTHER), "{seen:?}");
    drop(off);
    let unbatched = serve(&tag, &[("SCHED_BATCH", "off")]).await;
    let seen = threads(unbatched.child.id());
    assert!(all_under(&seen, SCHED_OTHER), "{seen:?}");
}
