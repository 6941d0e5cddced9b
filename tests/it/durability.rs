//! Nothing is lost when the bridge crashes mid-dispatch or the broker drops
//! the connection; redeliveries carry the same ids.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;
use transfer_bridge::simulator;

use crate::crash::{Crashable, kill_broker_connection};
use crate::helpers::*;

const TRANSFERS: usize = 40;

#[tokio::test]
async fn a_crash_mid_dispatch_loses_nothing() {
    let mut app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    app.stop().await;
    let crashable = Crashable::start(app.config.clone());
    let http = reqwest::Client::new();
    let mut ids = BTreeSet::new();
    for i in 0..TRANSFERS {
        let id = unique(&format!("crash{i}"));
        app.script(
            &id,
            json!({"timeline": [{"status": "COMPLETED"}],
            "outputContext": {"transferType": "AGENT", "currentTaskName": "crash"}}),
        );
        let r = http
            .post(format!("{}/v1/transfers", crashable.base))
            .json(&json!({"callTransferId": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.insert(id);
    }
    // Crash as soon as deliveries are flowing.
    let first = agent.next().await;
    crashable.crash();

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    fn record(seen: &mut BTreeMap<String, usize>, d: &lapin::message::Delivery) {
        let event = body(d);
        let id = event["callTransferId"].as_str().unwrap().to_string();
        assert_eq!(
            d.properties.message_id().as_ref().unwrap().as_str(),
            format!("{id}.agent"),
            "a duplicate keeps its id"
        );
        *seen.entry(id).or_default() += 1;
    }
    record(&mut seen, &first);
    app.start().await;
    while seen.len() < TRANSFERS {
        let d = agent
            .next_within(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of {TRANSFERS} delivered", seen.len()));
        record(&mut seen, &d);
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), ids);
    for id in &ids {
        let view = app.settled(id).await;
        assert!(
            view["actions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a["status"] == "delivered"),
            "{view}"
        );
    }
}

#[tokio::test]
async fn a_dropped_broker_connection_recovers_by_itself() {
    let name = unique("bridge-conn");
    let conn_name = name.clone();
    let app = spawn_app_with(move |c| c.amqp.connection_name = conn_name).await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let mut ids = BTreeSet::new();
    for round in 0..2 {
        for i in 0..10 {
            let id = unique(&format!("brk{round}-{i}"));
            app.script(
                &id,
                json!({"timeline": [{"status": "COMPLETED"}],
                "outputContext": {"transferType": "AGENT", "currentTaskName": "restart"}}),
            );
            app.register_id(&id).await;
            ids.insert(id);
        }
        if round == 0 {
            assert!(
                kill_broker_connection(&name) >= 1,
                "found the bridge's connection"
            );
        }
    }
    let mut seen = BTreeSet::new();
    while seen.len() < ids.len() {
        let d = agent
            .next_within(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of {} delivered", seen.len(), ids.len()));
        seen.insert(body(&d)["callTransferId"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ids);
    // Ready again once reconnected.
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn readyz_names_the_broker_when_it_is_unreachable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::start(listener, SIM_ID, SIM_SECRET).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&sim, dir.path()).await;
    config.amqp.url = "amqp://guest:guest@127.0.0.1:1/%2f".to_string().into();
    let app = transfer_bridge::App::build(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(listener, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["broker"]["ok"], false);
    assert_eq!(body["checks"]["store"]["ok"], true);
    assert_eq!(body["checks"]["tracker"]["ok"], true);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    stop.cancel();
    running.await.unwrap().unwrap();
}

/// A "broker" that accepts connections and never says a word (a stalled
/// node, a half-dead proxy): each attempt gives up after
/// `amqp.connect_timeout` and the next one follows, and a stop is not held
/// up by an attempt in progress.
#[tokio::test]
async fn a_silent_broker_is_retried_and_does_not_hold_up_a_stop() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::start(listener, SIM_ID, SIM_SECRET).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&sim, dir.path()).await;
    config.amqp.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f").into();
    config.amqp.connect_timeout = Duration::from_millis(300);
    config.amqp.reconnect_initial = Duration::from_millis(50);
    let app = transfer_bridge::App::build(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run(listener, stop.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge stopped retrying"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stopped promptly")
        .unwrap()
        .unwrap();
    holder.abort();
}
