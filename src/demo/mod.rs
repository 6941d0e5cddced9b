//! `transfer-bridge demo`: the whole flow on one machine with no credentials.
//! An in-process simulator is the upstream, a temporary SQLite file the
//! store, and the local RabbitMQ the broker.

use std::process::ExitCode;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

mod consumer;
mod receiver;

use crate::App;
use crate::config::{Config, mask_url_password};
use crate::delivery::Outcome;
use crate::delivery::webhook::WebhookSecret;
use crate::simulator::{self, Script, SimHandle};

const SIM_ID: &str = "demo-id";
const SIM_SECRET: &str = "demo-secret";
const DEADLINE: Duration = Duration::from_secs(60);

/// One sample transfer: a name, its script, and how to register it.
struct Sample {
    label: &'static str,
    script: Value,
    /// Register with an upstream `create` body instead of an id.
    create: bool,
}

pub async fn run() -> ExitCode {
    // The demo prints its own story; logs only for problems unless asked.
    if std::env::var_os("RUST_LOG").is_none() {
        // SAFETY: single-threaded at this point; nothing else reads the env yet.
        unsafe { std::env::set_var("RUST_LOG", "warn") };
    }
    crate::telemetry::init_tracing(crate::config::LogFormat::Pretty);
    match demo().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn demo() -> anyhow::Result<()> {
    let mut config = Config::load(None)?;
    let broker = config.amqp.url.expose_secret().to_string();
    if let Err(e) = probe_broker(&broker).await {
        anyhow::bail!(
            "cannot reach RabbitMQ at {} ({e}); start it with `rabbitmq-server -detached` or `docker run -d -p 5672:5672 rabbitmq:4`",
            mask_url_password(&broker)
        );
    }
    let sim = simulator::start(
        tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        SIM_ID,
        SIM_SECRET,
    )?;
    let dir = tempfile_dir()?;
    config.upstream.base_url = sim.base_url();
    config.upstream.api_id = SIM_ID.into();
    config.upstream.api_secret = SecretString::from(SIM_SECRET);
    config.store.url = SecretString::from(format!("sqlite://{}/demo.db", dir.display()));
    // Demo timelines last seconds, not minutes: poll on a short fixed interval.
    config.polling.policy = crate::config::PolicyKind::Fixed;
    config.polling.active_interval = Duration::from_millis(200);
    config.polling.ongoing_interval = Duration::from_millis(200);
    config.outbox.poll_interval = Duration::from_millis(100);
    let consumer = consumer::bind(&broker, &config.amqp).await?;
    let result = run_samples(config, &sim).await;
    consumer.delete().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The bridge on the demo's config, the samples through it, the outcomes.
async fn run_samples(mut config: Config, sim: &SimHandle) -> anyhow::Result<()> {
    // Outcome webhooks to a local "IVR": loopback must be allowed explicitly.
    let secret = WebhookSecret::generate();
    config.webhook.default_url = Some(receiver::start(secret.clone()).await?);
    config.webhook.secret = Some(secret);
    config.webhook.allow_http = true;
    config.webhook.allowed_cidrs = vec!["127.0.0.0/8".parse().expect("valid CIDR")];

    let app = App::build(config).await?;
    let mut reports = app.dispatcher().subscribe();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let running = tokio::spawn(app.run(listener, stop.clone()));
    tokio::spawn(async move {
        while let Ok(r) = reports.recv().await {
            let outcome = match &r.outcome {
                Outcome::Delivered => "delivered".to_string(),
                Outcome::Retry { error, .. } => format!("will retry: {error}"),
                Outcome::Failed { error } => format!("failed: {error}"),
            };
            println!("  action {:<44} {outcome}", r.action_id);
        }
    });

    wait_ready(&base).await?;
    let ids = register_samples(sim, &base).await?;
    let finished = wait_until_settled(&base, &ids).await?;
    print_table(&finished);
    print_sip(&base, &ids).await?;
    stop.cancel();
    running.await??;
    Ok(())
}

fn samples() -> Vec<Sample> {
    let done = |output: Value| {
        json!({"timeline": [
        {"status": "ACTIVE", "forMs": 300}, {"status": "ONGOING", "forMs": 700}, {"status": "COMPLETED"}],
        "outputContext": output})
    };
    vec![
        Sample {
            label: "agent",
            create: true,
            script: done(
                json!({"transferType": "AGENT", "currentTaskName": "billing",
            "transferVariables": {"reason": "dispute", "amount": 42.5}, "referenceVariables": {"caseId": "C-1"}}),
            ),
        },
        Sample {
            label: "system",
            create: false,
            script: {
                let mut s = done(
                    json!({"transferType": "SYSTEM", "currentTaskName": "verify_identity",
                "transferVariables": {"verified": true, "priority": "high"}}),
                );
                s["type"] = "SIP".into();
                s["sip"] =
                    json!({"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"});
                s
            },
        },
        Sample {
            label: "disconnect",
            create: false,
            script: done(json!({"transferType": "CALLER_DISCONNECT"})),
        },
        Sample {
            label: "no-output",
            create: false,
            script: done(Value::Null),
        },
        Sample {
            label: "expired",
            create: false,
            script: json!({"timeline": [
            {"status": "ACTIVE", "forMs": 800}, {"status": "EXPIRED"}]}),
        },
    ]
}

async fn register_samples(sim: &SimHandle, base: &str) -> anyhow::Result<Vec<String>> {
    let run = uuid::Uuid::new_v4().simple().to_string();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for sample in samples() {
        let id = format!("demo-{}-{}", &run[..8], sample.label);
        let script: Script = serde_json::from_value(sample.script)?;
        let body = if sample.create {
            sim.script_on_create(&id, script);
            json!({"create": {"id": id, "externalConversationId": format!("conv-{id}"), "type": "PHONE_NUMBER",
                "phoneNumber": {"country": "US"}, "inputContext": {"taskName": "welcome"}},
                "metadata": {"queue": "demo"}})
        } else {
            sim.script(&id, script);
            json!({"callTransferId": id, "metadata": {"queue": "demo"}})
        };
        let response = client
            .post(format!("{base}/v1/transfers"))
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let view: Value = response.json().await?;
        anyhow::ensure!(
            status.is_success(),
            "registering {id} failed: {status} {view}"
        );
        match view["upstream"]["phoneNumber"]["transferNumber"].as_str() {
            Some(number) => println!("registered {id} ({status}); the IVR dials {number}"),
            None => println!("registered {id} ({status})"),
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Poll the bridge's own API until every transfer ended and every action settled.
async fn wait_until_settled(base: &str, ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let client = reqwest::Client::new();
    let start = tokio::time::Instant::now();
    loop {
        let mut views = Vec::new();
        for id in ids {
            views.push(
                client
                    .get(format!("{base}/v1/transfers/{id}"))
                    .send()
                    .await?
                    .json::<Value>()
                    .await?,
            );
        }
        let settled = views.iter().all(|v| {
            v["state"] != "TRACKING"
                && v["actions"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|x| x["status"] != "pending"))
        });
        if settled {
            return Ok(views);
        }
        anyhow::ensure!(
            start.elapsed() < DEADLINE,
            "transfers did not settle within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_table(views: &[Value]) {
    println!(
        "\n{:<28} {:<10} {:<18} {:<6} actions",
        "transfer", "state", "transferType", "polls"
    );
    for v in views {
        let transfer_type = v["upstream"]["outputContext"]["transferType"]
            .as_str()
            .unwrap_or("-");
        let actions: Vec<String> = v["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{}:{}",
                    a["kind"].as_str().unwrap_or("?"),
                    a["status"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "{:<28} {:<10} {:<18} {:<6} {}",
            v["callTransferId"].as_str().unwrap_or("?"),
            v["state"].as_str().unwrap_or("?"),
            transfer_type,
            v["polls"],
            actions.join(" ")
        );
    }
}

/// Registering before the broker link is up works (actions wait in the
/// outbox) but makes a noisy demo; wait for `/readyz` first.
async fn wait_ready(base: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the bridge did not become ready within 10 s")
}

/// Show the SIP message the SYSTEM sample produced, as a dialplan fetches it.
async fn print_sip(base: &str, ids: &[String]) -> anyhow::Result<()> {
    let Some(system) = ids.iter().find(|id| id.ends_with("-system")) else {
        return Ok(());
    };
    let message = reqwest::get(format!(
        "{base}/v1/transfers/{system}/sip?format=sip&wait=10s"
    ))
    .await?
    .text()
    .await?;
    println!(
        "\nGET /v1/transfers/{system}/sip?format=sip&wait=10s\n{}",
        message.replace("\r\n", "\n")
    );
    Ok(())
}

async fn probe_broker(url: &str) -> anyhow::Result<()> {
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    let conn = tokio::time::timeout(Duration::from_secs(3), connect)
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))??;
    let _ = conn.close(200, "probe".into()).await;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "transfer-bridge-demo-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
