//! `transfer-bridge serve` as users run it: on a machine that gives it two
//! CPUs, its async thread and the threads it hands work to (SQLite's
//! connection threads, lapin's I/O thread) share one of them
//! (`runtime.one_cpu = "auto"`), while tokio's blocking pool, where heavy
//! work goes, keeps them all; with `"off"`, or any other count of CPUs,
//! every thread may run on all of them.

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

/// `serve` on the default config but for its names, store and broker, with
/// `runtime.one_cpu` as given; once `/readyz` says it is ready (its store
/// open, its broker connected), so its threads have started.
async fn serve(tag: &str, one_cpu: Option<&str>) -> Serve {
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
    if let Some(one_cpu) = one_cpu {
        command.env("BRIDGE_RUNTIME__ONE_CPU", one_cpu);
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

/// Each thread of `pid`: its name and the CPUs it may run on.
fn threads(pid: u32) -> Vec<(String, String)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let read = |path: std::path::PathBuf, file| std::fs::read_to_string(path.join(file));
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let name = read(path.clone(), "comm").ok()?.trim().to_string();
            Some((name, cpus_allowed(&read(path, "status").ok()?)))
        })
        .collect()
}

#[tokio::test]
async fn serve_keeps_every_thread_on_one_of_two_cpus_unless_told_not_to() {
    let mine = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
    let allowed = std::thread::available_parallelism().unwrap().get();
    let tag = test_prefix();
    let mut cleanup = BrokerCleanup::new(&broker_url().await);
    cleanup.queue(&format!("{tag}.transfer.audit"));
    for what in ["agent", "pbx", "audit"] {
        cleanup.exchange(&format!("{tag}.transfer.{what}"));
    }
    let auto = serve(&tag, None).await;
    let seen = threads(auto.child.id());
    let names: BTreeSet<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    for started in ["sqlx-sqlite-wor", "lapin-io-loop"] {
        assert!(names.contains(started), "no {started} thread: {seen:?}");
    }
    // tokio names its blocking pool's threads so; the current-thread
    // runtime has no other threads of its own.
    let (blocking, kept): (Vec<_>, Vec<_>) = seen
        .iter()
        .partition(|(name, _)| name.starts_with("tokio-"));
    assert!(blocking.iter().all(|(_, cpus)| *cpus == mine), "{seen:?}");
    let lists: BTreeSet<&str> = kept.iter().map(|(_, cpus)| cpus.as_str()).collect();
    match allowed {
        2 => {
            assert_eq!(lists.len(), 1, "{seen:?}");
            let one = lists.first().unwrap();
            assert!(one.parse::<usize>().is_ok(), "not one CPU: {seen:?}");
        }
        _ => assert_eq!(lists, BTreeSet::from([mine.as_str()]), "{seen:?}"),
    }
    drop(auto);
    let off = serve(&tag, Some("off")).await;
    let seen = threads(off.child.id());
    assert!(seen.iter().all(|(_, cpus)| *cpus == mine), "{seen:?}");
}
