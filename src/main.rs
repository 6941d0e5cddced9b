//! The `transfer-bridge` binary: parse the CLI, load config, start tracing,
//! and hand over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use transfer_bridge::affinity::{self, Placement, RuntimeConfig, SchedBatch};
use transfer_bridge::config::Config;
use transfer_bridge::{App, demo, simulator, telemetry};

/// mimalloc instead of glibc's malloc: a burst spent about a sixth of the
/// bridge's CPU in glibc's malloc and free (chunk consolidation and arena
/// locks across the runtime's threads); see the README's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "transfer-bridge",
    version,
    about = "Tracks GenerativeAgent call transfers and delivers their outcomes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The whole flow on one machine: simulator, bridge, local RabbitMQ.
    Demo,
    /// Run the upstream stand-in alone.
    Simulator {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: String,
        /// Credentials the simulator accepts (asapp-api-id / asapp-api-secret).
        #[arg(long, env = "BRIDGE_UPSTREAM__API_ID", default_value = "sim-id")]
        api_id: String,
        #[arg(
            long,
            env = "BRIDGE_UPSTREAM__API_SECRET",
            default_value = "sim-secret",
            hide_env_values = true
        )]
        api_secret: String,
    },
    /// SIP tools.
    Sip {
        #[command(subcommand)]
        command: SipCommand,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum SipCommand {
    /// Print the SIP instruction a call-transfer JSON (an upstream GET body,
    /// from FILE or `-` for stdin) produces under the active routes.
    Render {
        #[arg(value_name = "FILE|-")]
        input: String,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print only the SIP message text instead of the JSON instruction.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate config and routes; print the effective config, secrets redacted.
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    transfer_bridge::alloc::tune();
    let cli = Cli::parse();
    match runtime() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One async thread per core the bridge's own OS threads leave free.
///
/// The bridge keeps busy threads of its own beside the runtime: SQLite's
/// connection workers (every statement and fsync runs there) and lapin's I/O
/// loop. So a multi-thread runtime gets one worker fewer than the machine has
/// cores: with as many as cores, the workers kept waking each other to share
/// work one of them could do (on 2 cores one worker spent 7-13% less CPU per
/// signalled transfer than two).
///
/// Where that leaves one worker (2 cores or fewer), the runtime is tokio's
/// current-thread one: the thread that runs `main` runs every task. A
/// multi-thread runtime with one worker still runs `main`'s future (the HTTP
/// accept loop among it) on the main thread, and hands every wake-up from
/// SQLite's and lapin's threads through its shared queues to the worker. On
/// 2 cores the current-thread runtime spent about 11% less CPU per signalled
/// transfer (1.41-1.56 ms against 1.53-1.66 ms; lower in nine of ten
/// alternating pairs, by 8-14% in those nine), less per GET at fixed
/// polling (0.034, 0.035 ms against 0.043, 0.037 ms), and drained a burst of
/// 10,000 completions sooner (2.61-2.74 s against 2.68-2.95 s, six pairs;
/// README, "Throughput and CPU", ninth round).
///
/// `TOKIO_WORKER_THREADS=N` picks a multi-thread runtime of N workers: two
/// drain a burst faster still, at more CPU per transfer.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    use tokio::runtime::Builder;
    let mut builder = match this_flavour() {
        Flavour::CurrentThread => Builder::new_current_thread(),
        // tokio reads `TOKIO_WORKER_THREADS` itself.
        Flavour::MultiThread(None) => Builder::new_multi_thread(),
        Flavour::MultiThread(Some(workers)) => {
            let mut builder = Builder::new_multi_thread();
            builder.worker_threads(workers);
            builder
        }
    };
    // tokio's blocking pool runs heavy work off the async thread: not on its CPU.
    builder
        .on_thread_start(affinity::release_this_thread)
        .enable_all()
        .build()
}

/// Which runtime [`runtime`] builds.
#[derive(Debug, PartialEq)]
enum Flavour {
    CurrentThread,
    /// Workers; `None` when `TOKIO_WORKER_THREADS` names the count.
    MultiThread(Option<usize>),
}

/// The runtime [`runtime`] builds on this machine.
fn this_flavour() -> Flavour {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let told = std::env::var_os("TOKIO_WORKER_THREADS").is_some();
    flavour(cores, told)
}

/// The runtime for a machine of `cores`, `told` whether `TOKIO_WORKER_THREADS`
/// is set.
fn flavour(cores: usize, told: bool) -> Flavour {
    match (told, cores.saturating_sub(1)) {
        (true, _) => Flavour::MultiThread(None),
        (false, 0 | 1) => Flavour::CurrentThread,
        (false, workers) => Flavour::MultiThread(Some(workers)),
    }
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config_check(config).await,
        Command::Serve { config } => serve(config).await,
        Command::Sip {
            command: SipCommand::Render { input, config, raw },
        } => sip_render(&input, config, raw),
        Command::Demo => demo::run().await,
        Command::Simulator {
            bind,
            api_id,
            api_secret,
        } => run_simulator(&bind, &api_id, &api_secret).await,
    }
}

/// Exit code 2 means "your configuration is wrong".
fn load(config: Option<PathBuf>) -> Result<Config, ExitCode> {
    Config::load(config.as_deref()).map_err(|e| {
        eprintln!("config error: {e}");
        ExitCode::from(2)
    })
}

async fn config_check(config: Option<PathBuf>) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    print!("{}", config.redacted_toml());
    if let Some(warning) = config.missing_credentials() {
        eprintln!("warning: {warning}");
    }
    check_audit_queue(&config).await;
    eprintln!("config ok");
    ExitCode::SUCCESS
}

/// When the broker answers, compare its audit queue with the config. The
/// check is about the config, so an unreachable broker is a note, never a
/// failure, and a mismatch is a warning (`serve` runs with it).
async fn check_audit_queue(config: &Config) {
    use transfer_bridge::delivery::amqp::topology::{self, AuditCheck};
    let amqp = &config.amqp;
    let wanted = topology::describe_args(amqp);
    match topology::check_audit_queue(amqp, std::time::Duration::from_secs(3)).await {
        Ok(AuditCheck::Absent) => eprintln!(
            "broker: audit queue '{}' does not exist yet; serve declares it with {wanted}",
            amqp.audit_queue
        ),
        Ok(AuditCheck::Matches) => eprintln!(
            "broker: audit queue '{}' matches the config ({wanted})",
            amqp.audit_queue
        ),
        Ok(AuditCheck::Mismatch(mismatch)) => eprint!("warning: {mismatch}"),
        Err(e) => eprintln!(
            "note: broker not reached ({e}); the audit queue was not compared with the broker's, \
             which config check does not need"
        ),
    }
}

fn sip_render(input: &str, config: Option<PathBuf>, raw: bool) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = if input == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(input)
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let resource: transfer_bridge::upstream::CallTransfer = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{input} is not a call transfer: {e}");
            return ExitCode::FAILURE;
        }
    };
    match config.router().instruction_for(&resource) {
        Ok(sip) if raw => {
            print!("{}", sip.message);
            ExitCode::SUCCESS
        }
        Ok(sip) => {
            println!("{}", serde_json::to_string_pretty(&sip).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("no SIP instruction: {reason}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>) -> ExitCode {
    let config = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    telemetry::init_tracing(config.telemetry.format);
    if let Some(missing) = config.missing_credentials() {
        eprintln!("config error: {missing}");
        return ExitCode::from(2);
    }
    place_threads(config.runtime);
    let bind = config.http.bind;
    let result = async {
        let app = App::build(config).await?;
        let listener = tokio::net::TcpListener::bind(bind).await?;
        app.run(listener, shutdown_signal()).await
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "transfer-bridge failed");
            ExitCode::FAILURE
        }
    }
}

/// Before the store and the broker start their threads: keep them on one
/// CPU where `runtime.one_cpu` says, and there under SCHED_BATCH unless
/// `runtime.sched_batch` is off (see `affinity`). `serve` runs on the async
/// thread itself, which starts them.
fn place_threads(runtime: RuntimeConfig) {
    let one_async_thread = this_flavour() == Flavour::CurrentThread;
    match affinity::keep_on_one_cpu(runtime.one_cpu, one_async_thread) {
        Placement::OneCpu { cpu } => {
            tracing::info!(cpu, "threads kept on one CPU (runtime.one_cpu)");
            if runtime.sched_batch == SchedBatch::Auto {
                match affinity::batch_this_thread() {
                    Ok(()) => tracing::info!("threads run under SCHED_BATCH (runtime.sched_batch)"),
                    Err(e) => tracing::warn!(error = %e, "SCHED_BATCH refused; default policy"),
                }
            }
        }
        Placement::Free(why) => tracing::info!(%why, "threads on any CPU"),
    }
}

/// Cancelled on the first SIGTERM or ctrl-c; a second one exits at once.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; draining (signal again to exit now)");
        trigger.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal; exiting without draining");
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_simulator(bind: &str, api_id: &str, api_secret: &str) -> ExitCode {
    telemetry::init_tracing(transfer_bridge::config::LogFormat::Auto);
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot bind {bind}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match simulator::start(listener, api_id, api_secret) {
        Ok(handle) => {
            tracing::info!(addr = %handle.addr, api_id, "simulator listening (control API under /_sim/)");
            shutdown_signal().cancelled().await;
            handle.stop();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("simulator failed: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Flavour, flavour};

    #[test]
    fn one_thread_where_one_worker_would_be_left_else_one_worker_fewer_than_cores() {
        assert_eq!(flavour(1, false), Flavour::CurrentThread);
        assert_eq!(flavour(2, false), Flavour::CurrentThread);
        assert_eq!(flavour(3, false), Flavour::MultiThread(Some(2)));
        assert_eq!(flavour(16, false), Flavour::MultiThread(Some(15)));
        assert_eq!(flavour(2, true), Flavour::MultiThread(None));
    }
}
