//! Signed outcome webhooks: signatures, retries, 410, Retry-After,
//! abort-message, exhaustion, redrive and the SSRF guard.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Receiver, Reply, SECRET};

async fn webhook_app() -> TestApp {
    spawn_app_with(|c| {
        c.webhook.secret = Some(SECRET.parse().unwrap());
        c.webhook.allow_http = true;
        c.webhook.allowed_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        c.webhook.retry.schedule = vec![
            Duration::ZERO,
            Duration::from_millis(100),
            Duration::from_millis(100),
            Duration::from_millis(100),
        ];
        c.webhook.retry.jitter = 0.0;
        c.webhook.retry.max_retry_after = Duration::from_secs(2);
    })
    .await
}

async fn register_with_callback(app: &TestApp, id: &str, url: &str, output: Value) {
    app.script(
        id,
        json!({"timeline": [{"status": "COMPLETED"}], "outputContext": output}),
    );
    let response = app
        .register(json!({"callTransferId": id, "callbackUrl": url}))
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn webhook_action(view: &Value) -> Value {
    view["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "webhook")
        .cloned()
        .expect("a webhook action")
}

#[tokio::test]
async fn outcomes_are_signed_and_retried_until_a_2xx() {
    let app = webhook_app().await;
    let receiver = Receiver::start(&[SECRET], vec![Reply::Status(500), Reply::Status(503)]).await;
    let id = unique("hook");
    register_with_callback(
        &app,
        &id,
        &receiver.url,
        json!({"transferType": "CALLER_DISCONNECT"}),
    )
    .await;
    let got = receiver.wait_for(3).await;
    assert!(got.iter().all(|g| g.verified), "every signature verifies");
    assert!(
        got.iter()
            .all(|g| g.id == format!("{id}_webhook_completed")),
        "same webhook-id on every retry"
    );
    assert_eq!(got[2].body["type"], "transfer.completed");
    assert_eq!(got[2].body["callTransferId"], id);
    let view = app.settled(&id).await;
    let action = webhook_action(&view);
    assert_eq!(action["status"], "delivered");
    assert_eq!(action["attempts"], 3);
}

#[tokio::test]
async fn gone_and_abort_stop_retries_and_are_audited() {
    let app = webhook_app().await;
    let mut audit = app
        .bind(&app.config.amqp.audit_exchange, "delivery.failed")
        .await;
    for reply in [Reply::Status(410), Reply::Abort] {
        let receiver = Receiver::start(&[SECRET], vec![reply.clone()]).await;
        let id = unique("stop");
        register_with_callback(&app, &id, &receiver.url, json!({"transferType": "SYSTEM"})).await;
        let view = app.settled(&id).await;
        assert_eq!(webhook_action(&view)["status"], "failed", "{reply:?}");
        let event = body(&audit.next().await);
        assert_eq!(event["type"], "delivery.failed");
        assert_eq!(event["callTransferId"], id);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.got().len(), 1, "no retry after {reply:?}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_and_redirects_are_not_followed() {
    let app = webhook_app().await;
    let elsewhere = Receiver::start(&[SECRET], vec![]).await;
    let receiver = Receiver::start(
        &[SECRET],
        vec![
            Reply::RetryAfter(429, "1"),
            Reply::Redirect(elsewhere.url.clone()),
        ],
    )
    .await;
    let id = unique("later");
    register_with_callback(
        &app,
        &id,
        &receiver.url,
        json!({"transferType": "AGENT", "currentTaskName": "t"}),
    )
    .await;
    let got = receiver.wait_for(3).await;
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_millis(950),
        "Retry-After: 1 honoured"
    );
    assert!(elsewhere.got().is_empty(), "redirect not followed");
}

#[tokio::test]
async fn exhausted_retries_fail_and_can_be_redriven() {
    let app = webhook_app().await;
    let receiver = Receiver::start(&[SECRET], vec![Reply::Status(500); 4]).await;
    let id = unique("exhaust");
    register_with_callback(&app, &id, &receiver.url, json!({"transferType": "SYSTEM"})).await;
    let view = app.settled(&id).await;
    let action = webhook_action(&view);
    assert_eq!(action["status"], "failed");
    assert_eq!(action["attempts"], 4);
    assert!(
        action["lastError"]
            .as_str()
            .unwrap()
            .contains("retries exhausted"),
        "{action}"
    );
    let redrive = app
        .http
        .post(format!("{}/v1/transfers/{id}/redeliver", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(redrive.status(), 202);
    let got = receiver.wait_for(5).await;
    assert_eq!(got[4].id, got[0].id, "redrive keeps the id");
    assert_eq!(
        webhook_action(&app.settled(&id).await)["status"],
        "delivered"
    );
}

#[tokio::test]
async fn rotation_signs_with_old_and_new_secrets() {
    let new_secret = "whsec_dGhpcyBpcyBhIG5ldyBzZWNyZXQga2V5IDEyMzQ=";
    let app = spawn_app_with(|c| {
        c.webhook.secret = Some(new_secret.parse().unwrap());
        c.webhook.previous_secrets = vec![SECRET.parse().unwrap()];
        c.webhook.allow_http = true;
        c.webhook.allowed_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let old_only = Receiver::start(&[SECRET], vec![]).await;
    let id = unique("rotate");
    register_with_callback(&app, &id, &old_only.url, json!({"transferType": "SYSTEM"})).await;
    assert!(old_only.wait_for(1).await[0].verified);
}

#[tokio::test]
async fn unsafe_callback_urls_are_refused_at_registration() {
    let app = spawn_app_with(|c| c.webhook.secret = Some(SECRET.parse().unwrap())).await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://localhost/hook",
        "http://hooks.example.com/plain-http",
    ] {
        let response = app
            .register(json!({"callTransferId": unique("ssrf"), "callbackUrl": url}))
            .await;
        assert_eq!(response.status(), 422, "{url}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("callbackUrl"),
            "{error}"
        );
    }
}

/// `webhook.allowed_hosts` alone (no `allow_http`, no `allowed_cidrs`) lets
/// a callback reach the host it names over http, signed as ever; a host it
/// does not name is still refused at registration.
#[tokio::test]
async fn an_allowed_host_receives_its_webhooks() {
    let app = spawn_app_with(|c| {
        c.webhook.secret = Some(SECRET.parse().unwrap());
        c.webhook.allowed_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let receiver = Receiver::start(&[SECRET], vec![]).await;
    assert!(
        receiver.url.starts_with("http://127.0.0.1:"),
        "{}",
        receiver.url
    );
    let id = unique("allowedhost");
    register_with_callback(&app, &id, &receiver.url, json!({"transferType": "SYSTEM"})).await;
    let got = receiver.wait_for(1).await;
    assert!(got[0].verified);
    let other = receiver.url.replace("127.0.0.1", "127.0.0.2");
    let response = app
        .register(json!({"callTransferId": unique("refused"), "callbackUrl": other}))
        .await;
    assert_eq!(response.status(), 422);
}
