//! A full disk under the store: registrations get 503 with Retry-After while
//! nothing accepted is lost, and once space is back the store, /readyz and
//! the outbox recover by themselves, with no restart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::*;

/// A small tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} ({}): this test needs root and a sandbox \
             that allows mount(2); it fills that filesystem to test recovery from a full disk",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A registration of about 40 KB of metadata, each one taking room twice
/// (the transfer row and its TRACKING audit event).
fn heavy(id: &str) -> Value {
    let metadata: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("k{i:02}"), Value::String("m".repeat(1000))))
        .collect();
    json!({"callTransferId": id, "metadata": metadata})
}

/// Ballast that leaves the store about 2 MB; deleting it is "freeing space".
/// It frees more than SQLite needs to checkpoint: the WAL grows to 1000 pages
/// (4 MB) before it is copied into the database file and reused, so a disk
/// with less room than that fills again under any write load.
fn ballast(dir: &Path) -> PathBuf {
    let path = dir.join("ballast");
    std::fs::write(&path, vec![0u8; 14_000_000]).unwrap();
    path
}

#[tokio::test]
async fn a_full_disk_answers_503_and_the_store_recovers_without_a_restart() {
    let disk = Tmpfs::mount("16m");
    let store = format!("sqlite://{}/bridge.db", disk.path().display());
    let app = spawn_app_with(|c| c.store.url = SecretString::from(store)).await;
    // AGENT outcomes are mandatory publishes: give them a queue.
    let _agents = app.bind(&app.config.amqp.agent_exchange, "#").await;
    let ballast = ballast(disk.path());
    let (accepted, refusal) = fill(&app).await;
    assert!(
        accepted.len() >= 3,
        "the disk filled too early: {}",
        accepted.len()
    );
    check_refusal(refusal).await;
    // More failed commits, on every pooled connection.
    for i in 0..20 {
        let r = app.register(heavy(&unique(&format!("full{i}")))).await;
        assert!(matches!(r.status().as_u16(), 201 | 503), "{}", r.status());
    }
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness while full"
    );
    // /readyz commits a one-row write; whether that fits on an almost full
    // disk (SQLite reuses its WAL's space after a checkpoint) varies, so
    // only its recovery below is asserted.

    std::fs::remove_file(ballast).unwrap();
    let freed = Instant::now();
    let recovered = recover(&app).await;
    eprintln!(
        "disk-full figures: {} registrations accepted before the disk filled; \
         store writable again {:?} after space was freed",
        accepted.len(),
        recovered
    );
    assert!(
        freed.elapsed() < Duration::from_secs(10),
        "{:?}",
        freed.elapsed()
    );
    nothing_lost(&app, &accepted).await;
}

/// Register until the store refuses; every 201 must survive.
async fn fill(app: &TestApp) -> (Vec<String>, reqwest::Response) {
    let mut accepted = Vec::new();
    for i in 0..400 {
        let id = unique(&format!("fill{i}"));
        app.script(&id, completes_with(json!({"transferType": "AGENT"})));
        let response = app.register(heavy(&id)).await;
        match response.status().as_u16() {
            201 => accepted.push(id),
            _ => return (accepted, response),
        }
    }
    panic!("a 16 MB disk with 14 MB of ballast took 400 registrations of 40 KB: not full");
}

async fn check_refusal(response: reqwest::Response) {
    assert_eq!(
        response.status(),
        503,
        "a full disk is not an internal error"
    );
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        retry_after.as_ref().map(|v| v.to_str().unwrap()),
        Some("5"),
        "{body}"
    );
    assert_eq!(body["error"]["code"], "503-01");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("storage is unavailable"), "{message}");
}

/// Poll until registering, cancelling and /readyz all work again; the time
/// the store took to take writes again.
async fn recover(app: &TestApp) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let mut writable = None;
    loop {
        let id = unique("after");
        let created = app.register(json!({"callTransferId": id})).await.status();
        if created == 201 {
            writable.get_or_insert(started.elapsed());
            let url = format!("{}/v1/transfers/{id}", app.base);
            let cancelled = app.http.delete(url).send().await.unwrap().status();
            let ready = app.get("/readyz").await.status();
            if cancelled == 200 && ready == 200 {
                return writable.unwrap_or_default();
            }
        }
        assert!(
            Instant::now() < deadline,
            "not recovered 10 s after space was freed: register {created}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every accepted transfer is still there, completes, and its actions are
/// delivered: the outbox resumed by itself.
async fn nothing_lost(app: &TestApp, accepted: &[String]) {
    for id in accepted {
        let view = app.settled(id).await;
        assert_eq!(view["state"], "COMPLETED", "{view}");
        let actions = view["actions"].as_array().unwrap();
        assert!(!actions.is_empty(), "{view}");
        assert!(actions.iter().all(|a| a["status"] == "delivered"), "{view}");
        assert_eq!(view["metadata"]["k00"], "m".repeat(1000));
    }
}
