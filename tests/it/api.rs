//! The HTTP contract: idempotent registration, errors in the envelope, auth,
//! listing, cancelling.

use serde_json::{Value, json};

use crate::helpers::*;

fn assert_envelope(body: &Value, code: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["requestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn registration_is_idempotent() {
    let app = spawn_app().await;
    let id = unique("idem");
    app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
    let body = json!({"callTransferId": id, "metadata": {"a": "1"}});
    let first = app.register(body.clone()).await;
    assert_eq!(first.status(), 201);
    let view: Value = first.json().await.unwrap();
    assert_eq!(view["state"], "TRACKING");
    assert_eq!(view["callTransferId"], id);
    let again = app.register(body).await;
    assert_eq!(again.status(), 200);
    let conflict = app
        .register(json!({"callTransferId": id, "metadata": {"a": "2"}}))
        .await;
    assert_eq!(conflict.status(), 409);
    assert_envelope(&conflict.json().await.unwrap(), "409-01");
}

#[tokio::test]
async fn invalid_input_gets_the_envelope() {
    let app = spawn_app().await;
    for (body, code) in [
        (json!({}), "422-01"),
        (json!({"callTransferId": ""}), "422-01"),
        (json!({"callTransferId": "a/b"}), "422-01"),
        (json!({"callTransferId": "x".repeat(200)}), "422-01"),
        (json!({"callTransferId": 5}), "422-01"),
        (json!({"callTransferId": "ok", "surprise": true}), "422-01"),
        (
            json!({"callTransferId": "ok", "callbackUrl": "ftp://x"}),
            "422-01",
        ),
        (
            json!({"create": {"id": "c", "externalConversationId": "e", "type": "PHONE_NUMBER"}}),
            "422-01",
        ),
    ] {
        let response = app.register(body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_envelope(&response.json().await.unwrap(), code);
    }
    let url = format!("{}/v1/transfers", app.base);
    let syntax = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(syntax.status(), 400);
    assert_envelope(&syntax.json().await.unwrap(), "400-01");
    let media = app
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), 415);
    assert_envelope(&media.json().await.unwrap(), "415-01");
    let huge = json!({"callTransferId": "big", "metadata": {"k": "v".repeat(100_000)}});
    let too_large = app.register(huge).await;
    assert_eq!(too_large.status(), 413);
    assert_envelope(&too_large.json().await.unwrap(), "413-01");
    let missing = app.get("/v1/transfers/nope").await;
    assert_eq!(missing.status(), 404);
    assert_envelope(&missing.json().await.unwrap(), "404-01");
    let request_id = app
        .http
        .get(format!("{}/v1/transfers/nope", app.base))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(request_id.headers()["x-request-id"], "req-123");
    assert_eq!(
        request_id.json::<Value>().await.unwrap()["error"]["requestId"],
        "req-123"
    );
}

#[tokio::test]
async fn bearer_tokens_guard_v1_only() {
    let app = spawn_app_with(|c| c.http.api_tokens = vec!["s3cret-token".to_string().into()]).await;
    let url = format!("{}/v1/transfers", app.base);
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_envelope(&none.json().await.unwrap(), "401-01");
    let wrong = app
        .http
        .get(&url)
        .bearer_auth("s3cret-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(&url)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn list_filters_by_state_and_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = unique(&format!("list{i}"));
        app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
        app.register_id(&id).await;
        ids.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/transfers?state=TRACKING&limit=2", app.base);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.push(item["callTransferId"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let done: Value = app
        .get("/v1/transfers?state=COMPLETED")
        .await
        .json()
        .await
        .unwrap();
    assert!(done["items"].as_array().unwrap().is_empty());
    let bad = app.get("/v1/transfers?state=NOPE").await;
    assert_eq!(bad.status(), 422);
}

#[tokio::test]
async fn delete_cancels_and_audits() {
    let app = spawn_app().await;
    let mut audit = app
        .bind(&app.config.amqp.audit_exchange, "transfer.cancelled")
        .await;
    let id = unique("cancel");
    app.script(&id, json!({"timeline": [{"status": "ONGOING"}]}));
    app.register_id(&id).await;
    let response = app
        .http
        .delete(format!("{}/v1/transfers/{id}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["state"], "CANCELLED");
    let event = body(&audit.next().await);
    assert_eq!(event["type"], "transfer.cancelled");
    assert_eq!(event["callTransferId"], id);
    // Polling stopped.
    let before = app.sim.gets(&id);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(app.sim.gets(&id), before);
}

#[tokio::test]
async fn create_sends_the_body_upstream_and_returns_the_number() {
    let app = spawn_app().await;
    let id = unique("create");
    let body = json!({"create": {"id": id, "externalConversationId": "conv-1", "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"}, "inputContext": {"taskName": "welcome", "inputVariables": {"x": "y"}}}});
    let response = app.register(body.clone()).await;
    assert_eq!(response.status(), 201);
    let view: Value = response.json().await.unwrap();
    assert!(
        view["upstream"]["phoneNumber"]["transferNumber"]
            .as_str()
            .unwrap()
            .starts_with('+')
    );
    assert_eq!(view["upstreamStatus"], "ACTIVE");
    // An identical repeat costs no upstream request.
    let again = app.register(body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.sim.counters().creates, 1);

    // Created upstream already (e.g. the bridge crashed after the POST): 409, then GET.
    let other = unique("create409");
    app.script(&other, json!({"timeline": [{"status": "ACTIVE"}]}));
    let response = app
        .register(json!({"create": {"id": other, "externalConversationId": "c", "type": "SIP"}}))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(app.sim.counters().by_status.get(&409), Some(&1));
}

/// A signal's answer counts the polls the tracker made, not only those the
/// store recorded (it records a status change, never an unchanged poll).
#[tokio::test]
async fn a_returned_signal_answers_with_the_live_poll_count() {
    let app = spawn_app().await;
    let id = unique("livepolls");
    app.script(&id, json!({"timeline": [{"status": "ONGOING"}]}));
    app.register_id(&id).await;
    for _ in 0..100 {
        if app.sim.gets(&id) >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let made = app.sim.gets(&id);
    assert!(made >= 4, "only {made} polls in 5 s");
    let stored = app.view(&id).await;
    let response = app.post(&format!("/v1/transfers/{id}/returned")).await;
    assert_eq!(response.status(), 202);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["state"], "TRACKING");
    let polls = view["polls"].as_u64().unwrap();
    assert!(polls >= made, "{polls} polls in the answer, {made} made");
    assert!(polls >= stored["polls"].as_u64().unwrap(), "{view}");
    assert_eq!(view["actions"].as_array().map(Vec::len), Some(1), "{view}");
}
