//! Tracking to the end: restarts, upstream faults, every terminal state.

use std::time::Duration;

use serde_json::json;
use transfer_bridge::simulator::Fault;

use crate::helpers::*;

#[tokio::test]
async fn a_restart_resumes_tracking_and_publishes() {
    let mut app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let id = unique("restart");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 1500}, {"status": "COMPLETED"}],
        "outputContext": {"transferType": "AGENT", "currentTaskName": "after_restart"}}),
    );
    app.register_id(&id).await;
    app.stop().await;
    assert!(
        agent
            .next_within(Duration::from_millis(1600))
            .await
            .is_none(),
        "nothing while down"
    );
    app.start().await;
    let message = agent.next().await;
    assert_eq!(body(&message)["callTransferId"], id);
    assert_eq!(message.routing_key.as_str(), "agent.after_restart");
    assert_eq!(app.settled(&id).await["state"], "COMPLETED");
    assert!(
        agent
            .next_within(Duration::from_millis(500))
            .await
            .is_none(),
        "exactly one"
    );
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried() {
    let app = spawn_app().await;
    let id = unique("faults");
    app.script(&id, completes_with(json!({"transferType": "SYSTEM"})));
    app.sim.inject(
        Fault {
            retry_after: Some("1".into()),
            ..Fault::status(429)
        }
        .times(1),
    );
    app.sim.inject(Fault::status(503).times(2));
    // A 408 invites a repeat: retried, not the end of the transfer.
    app.sim.inject(Fault::status(408).times(1));
    app.sim.inject(
        Fault {
            malformed: true,
            ..Fault::default()
        }
        .times(1),
    );
    let started = std::time::Instant::now();
    app.register_id(&id).await;
    let view = app.settled(&id).await;
    assert_eq!(view["state"], "COMPLETED");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let statuses = app.sim.counters().by_status;
    assert_eq!(statuses.get(&429), Some(&1));
    assert_eq!(statuses.get(&503), Some(&2));
    assert_eq!(statuses.get(&408), Some(&1));
}

#[tokio::test]
async fn not_found_past_the_grace_period_fails() {
    let app = spawn_app_with(|c| c.polling.not_found_grace = Duration::from_millis(500)).await;
    let late = unique("late");
    let never = unique("never");
    // Visible after 300 ms: inside the grace period, so tracking goes on.
    app.script(
        &late,
        json!({"timeline": [{"status": "EXPIRED"}], "visibleAfterMs": 300}),
    );
    app.register_id(&late).await;
    app.register_id(&never).await;
    assert_eq!(app.settled(&late).await["state"], "EXPIRED");
    let failed = app.settled(&never).await;
    assert_eq!(failed["state"], "FAILED");
    assert!(
        failed["reason"].as_str().unwrap().contains("404"),
        "{failed}"
    );
}

/// Refused credentials open the bridge-wide circuit instead of failing
/// transfers one poll at a time; transfers that come due once it has stayed
/// open past `upstream.auth_fail_after` end FAILED with "auth refused", and
/// they cost no request each.
#[tokio::test]
async fn refused_credentials_fail_the_transfer() {
    let app = spawn_app_with(|c| {
        c.upstream.api_secret = "wrong".to_string().into();
        c.upstream.auth_fail_after = Duration::from_millis(800);
        c.upstream.auth_probe_initial = Duration::from_millis(300);
    })
    .await;
    let ids: Vec<String> = (0..5).map(|_| unique("auth")).collect();
    for id in &ids {
        app.script(id, json!({"timeline": [{"status": "ACTIVE"}]}));
        app.register_id(id).await;
    }
    for id in &ids {
        let view = app.settled(id).await;
        assert_eq!(view["state"], "FAILED");
        assert!(
            view["reason"].as_str().unwrap().contains("auth refused"),
            "{view}"
        );
    }
    // Five first polls (perhaps fewer) plus a few probes; not a poll per
    // transfer per interval.
    let gets = app.sim.counters().gets;
    assert!(gets <= 8, "{gets} GETs");
}

#[tokio::test]
async fn the_vendor_guides_dialect_is_understood_end_to_end() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let id = unique("quirks");
    let mut script = completes_with(
        json!({"transferType": "agent", "currentTaskName": "Welcome",
        "transferVariables": {"vip": true, "tags": ["a", "b"]}}),
    );
    script["quirks"] = true.into();
    script["inputContext"] = json!({"taskName": "Welcome", "inputVariables": {"email": "x@y.z"}});
    app.script(&id, script);
    app.register_id(&id).await;
    let event = body(&agent.next().await);
    assert_eq!(event["status"], "COMPLETED");
    assert_eq!(event["transferType"], "AGENT");
    assert_eq!(event["transferVariables"]["vip"], true);
    assert_eq!(event["inputContext"]["inputVariables"]["email"], "x@y.z");
}

#[tokio::test]
async fn tracking_time_is_bounded() {
    let app = spawn_app_with(|c| c.polling.max_tracking_time = Duration::from_millis(600)).await;
    let id = unique("forever");
    app.script(&id, json!({"timeline": [{"status": "ONGOING"}]}));
    app.register_id(&id).await;
    let view = app.settled(&id).await;
    assert_eq!(view["state"], "FAILED");
    assert!(
        view["reason"]
            .as_str()
            .unwrap()
            .contains("tracking time exceeded")
    );
}

/// A `Retry-After` years ahead (a server's mistake) delays that one
/// transfer by at most a day; the tracker lives on and serves the others.
/// Before the cap the scheduler's timer wheel panicked on the deadline and
/// polling stopped for every transfer.
#[tokio::test]
async fn an_absurd_retry_after_delays_one_transfer_and_nothing_else() {
    let app = spawn_app().await;
    let stalled = unique("absurd");
    app.script(&stalled, completes_with(json!({"transferType": "SYSTEM"})));
    app.sim.inject(Fault {
        id: Some(stalled.clone()),
        retry_after: Some("Fri, 01 Jan 2100 00:00:00 GMT".into()),
        ..Fault::status(503).times(1)
    });
    app.register_id(&stalled).await;
    for _ in 0..100 {
        if app.sim.counters().by_status.get(&503) == Some(&1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.sim.counters().by_status.get(&503), Some(&1));
    let next = unique("after-absurd");
    app.script(&next, completes_with(json!({"transferType": "SYSTEM"})));
    app.register_id(&next).await;
    assert_eq!(
        app.post(&format!("/v1/transfers/{next}/returned"))
            .await
            .status(),
        202
    );
    assert_eq!(app.settled(&next).await["state"], "COMPLETED");
    let view: serde_json::Value = app
        .get(&format!("/v1/transfers/{stalled}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["state"], "TRACKING");
}
