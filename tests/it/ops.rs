//! Operating it: drain on shutdown, registration rate limit, OpenAPI, metrics.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn shutdown_drains_with_503_then_finishes_in_flight_work() {
    let mut app = spawn_app_with(|c| c.shutdown.grace = Duration::from_millis(800)).await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let id = unique("drain");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 300}, {"status": "COMPLETED"}],
        "outputContext": {"transferType": "AGENT", "currentTaskName": "drain"}}),
    );
    app.register_id(&id).await;
    app.begin_stop();
    let refused = app
        .register(json!({"callTransferId": unique("late")}))
        .await;
    assert_eq!(refused.status(), 503);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "503-01");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    // Tracking went on during the grace period: the completion is published.
    assert_eq!(body(&agent.next().await)["callTransferId"], id);
    app.stop().await;
}

#[tokio::test]
async fn registration_is_rate_limited_per_token() {
    let app = spawn_app_with(|c| {
        c.http.api_tokens = vec!["tok-a".to_string().into(), "tok-b".to_string().into()];
        c.http.register_rate_per_s = 1;
        c.http.register_burst = 2;
    })
    .await;
    let post = |token: &'static str| {
        let app = &app;
        async move {
            let id = unique("rl");
            app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
            app.http
                .post(format!("{}/v1/transfers", app.base))
                .bearer_auth(token)
                .json(&json!({"callTransferId": id}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(post("tok-a").await.status(), 201);
    assert_eq!(post("tok-a").await.status(), 201);
    let limited = post("tok-a").await;
    assert_eq!(limited.status(), 429);
    let after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&after), "{after}");
    assert_eq!(
        limited.json::<Value>().await.unwrap()["error"]["code"],
        "429-01"
    );
    // Another token has its own bucket.
    assert_eq!(post("tok-b").await.status(), 201);

    // Headers-only returns are transfers too: limited alike, in a bucket of
    // their own (tok-a's registrations above spent none of it).
    let ret = |n: u32| {
        let app = &app;
        async move {
            let uri = format!(
                "sip:ivr@pbx.example.com?X-GA-extConId=rl-{n}-{}&X-GA-transfer=SYSTEM",
                unique("c")
            );
            let url = format!("{}/v1/sip/returns", app.base);
            let request = app.http.post(url).bearer_auth("tok-a");
            request.json(&json!({"referTo": uri})).send().await.unwrap()
        }
    };
    assert_eq!(ret(1).await.status(), 201);
    assert_eq!(ret(2).await.status(), 201);
    assert_eq!(ret(3).await.status(), 429);
}

#[tokio::test]
async fn openapi_and_metrics_are_served() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let checked_in: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
    assert_eq!(doc, checked_in);
    let id = unique("metrics");
    app.script(&id, json!({"timeline": [{"status": "EXPIRED"}]}));
    app.register_id(&id).await;
    app.settled(&id).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "bridge_upstream_requests_total",
        "bridge_transfers_finished_total",
        "bridge_deliveries_total",
        "bridge_amqp_connected",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}
