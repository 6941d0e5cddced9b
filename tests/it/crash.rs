//! Fault injection for durability tests: kill a bridge like a crash, and
//! drop its broker connection from the broker's side.

use tokio_util::sync::CancellationToken;
use transfer_bridge::App;
use transfer_bridge::config::Config;

/// A bridge on its own runtime and thread, so a test can kill it the way a
/// crash would: every task dropped mid-await, no drain, no clean close.
pub struct Crashable {
    pub base: String,
    /// A clean stop, as SIGTERM would.
    shutdown: CancellationToken,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crashable {
    pub fn start(config: Config) -> Self {
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = App::build(config).await.unwrap();
                tokio::select! {
                    _ = app.run(listener, stop) => {}
                    _ = killed => {}
                }
            });
            // Drop every task where it stands.
            runtime.shutdown_background();
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            base: format!("http://{addr}"),
            shutdown,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Stop cleanly and wait until the bridge has (on a blocking thread:
    /// call it from `spawn_blocking`).
    pub fn stop(mut self) {
        self.shutdown.cancel();
        self.thread.take().unwrap().join().unwrap();
    }

    pub fn crash(mut self) {
        let _ = self.kill.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Crashable {
    /// A test that fails before `crash()` must not leave this bridge running
    /// on its own runtime, where it would re-declare what cleanup deletes.
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Close this bridge's broker connection from the broker side, as a broker
/// restart would, leaving other tests' connections alone.
pub fn kill_broker_connection(connection_name: &str) -> usize {
    // The table format prints pids as `<rabbit@host.N.N.N>`, which is what
    // close_connection takes (the JSON formatter's `#PID<...>` is not).
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--quiet",
            "--no-table-headers",
        ])
        .output()
        .expect("rabbitmqctl runs (the broker-restart test needs the local RabbitMQ's CLI)");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let mut closed = 0;
    for line in listing.lines().filter(|l| l.contains(connection_name)) {
        let pid = line.split('\t').next().unwrap();
        let status = std::process::Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: simulated broker restart"])
            .status()
            .unwrap();
        assert!(status.success(), "closing {pid}");
        closed += 1;
    }
    closed
}
