//! A broker resource alarm: visible on `/readyz` and `/metrics` while it
//! lasts, nothing lost or retried in a loop, and everything goes out with its
//! ids when it clears.
//!
//! The alarm blocks every publisher on the broker, so this test runs alone
//! (`.config/nextest.toml` gives it every test thread) and keeps the alarm
//! to a few seconds.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::rabbitmq::MemoryAlarm;

const TRANSFERS: usize = 5;

#[tokio::test]
async fn memory_alarm_shows_on_readyz_and_loses_nothing() {
    // A confirm timeout well inside the alarm window: a publish that timed
    // out and was retried during the alarm would show as attempts > 1.
    let app = spawn_app_with(|c| c.amqp.confirm_timeout = Duration::from_millis(500)).await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let ids: Vec<String> = (0..TRANSFERS)
        .map(|i| unique(&format!("alarm{i}")))
        .collect();
    for id in &ids {
        app.script(
            id,
            json!({"timeline": [{"status": "COMPLETED"}],
                "outputContext": {"transferType": "AGENT", "currentTaskName": "alarm"}}),
        );
    }
    let alarm = MemoryAlarm::raise();
    for id in &ids {
        app.register_id(id).await;
    }
    let ready = wait_for_readyz(&app, 503).await;
    let broker = &ready["checks"]["broker"];
    assert_eq!(broker["blocked"], true, "{ready}");
    assert!(
        broker["error"].as_str().unwrap().contains("memory"),
        "the broker's alarm is named: {ready}"
    );
    assert!(metric_line(&app, "bridge_amqp_blocked 1").await);

    // Once the bridge knows of the alarm, the actions handed over at commit
    // give their claims back unused (no attempt counted) instead of each
    // holding a delivery slot, so webhooks and a stop are not stuck behind
    // them.
    let late = unique("alarmlate");
    app.script(
        &late,
        json!({"timeline": [{"status": "COMPLETED"}],
            "outputContext": {"transferType": "CALLER_DISCONNECT"}}),
    );
    app.register_id(&late).await;
    let view = loop {
        let view = app.view(&late).await;
        if view["state"] == "COMPLETED" && view["actions"].as_array().unwrap().len() == 2 {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for action in view["actions"].as_array().unwrap() {
        assert_eq!(action["attempts"], 0, "held a slot: {view}");
    }

    // Publishes wait: nothing gets through, nothing is retried in a loop.
    assert!(
        agent.next_within(Duration::from_secs(2)).await.is_none(),
        "a publish went through during the alarm"
    );
    for id in &ids {
        let view = app.view(id).await;
        for action in view["actions"].as_array().unwrap() {
            assert_eq!(action["status"], "pending", "{view}");
            assert!(
                action["attempts"].as_u64().unwrap() <= 1,
                "spinning: {view}"
            );
        }
    }
    drop(alarm);

    let mut seen = BTreeSet::new();
    while seen.len() < TRANSFERS {
        let delivery = agent
            .next_within(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("only {seen:?} after the alarm cleared"));
        let id = delivery.properties.message_id().as_ref().unwrap();
        assert!(seen.insert(id.to_string()), "{id} twice");
    }
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("{id}.agent")).collect();
    assert_eq!(seen, expected);
    for id in &ids {
        let view = app.settled(id).await;
        let actions = view["actions"].as_array().unwrap();
        assert!(actions.iter().all(|a| a["status"] == "delivered"), "{view}");
    }
    wait_for_readyz(&app, 200).await;
    assert!(metric_line(&app, "bridge_amqp_blocked 0").await);
}

async fn wait_for_readyz(app: &TestApp, status: u16) -> Value {
    for _ in 0..100 {
        let response = app.get("/readyz").await;
        if response.status() == status {
            return response.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "/readyz never answered {status}: {}",
        app.get("/readyz").await.text().await.unwrap()
    );
}

async fn metric_line(app: &TestApp, line: &str) -> bool {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines().any(|l| l == line) || panic!("no `{line}` in /metrics:\n{text}")
}
