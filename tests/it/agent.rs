//! AGENT outcomes reach `transfer.agent` once, confirmed, with the contract's
//! properties and headers; every state change reaches the audit exchange.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn agent_outcome_is_published_once_with_properties_and_headers() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let mut audit = app.bind(&app.config.amqp.audit_exchange, "#").await;
    let id = unique("agent");
    app.script(&id, completes_with(json!({"transferType": "AGENT", "currentTaskName": "billing",
        "transferVariables": {"reason": "dispute", "amount": 42.5}, "referenceVariables": {"caseId": "C-7"}})));
    let registered = app
        .register(json!({"callTransferId": id, "metadata": {"queue": "gold"}}))
        .await;
    assert_eq!(registered.status(), 201);

    let message = agent.next().await;
    assert_eq!(message.routing_key.as_str(), "agent.billing");
    let props = &message.properties;
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        props.message_id().as_ref().unwrap().as_str(),
        format!("{id}.agent")
    );
    assert_eq!(
        props.correlation_id().as_ref().unwrap().as_str(),
        format!("conv-{id}")
    );
    assert_eq!(
        props.kind().as_ref().unwrap().as_str(),
        "transfer.completed"
    );
    assert_eq!(props.app_id().as_ref().unwrap().as_str(), "transfer-bridge");
    assert!(props.timestamp().is_some());
    assert_eq!(
        header(&message, "x-call-transfer-id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        header(&message, "x-transfer-type").as_deref(),
        Some("AGENT")
    );
    assert_eq!(
        header(&message, "x-current-task").as_deref(),
        Some("billing")
    );

    let event = body(&message);
    assert_eq!(event["eventId"], format!("{id}.completed"));
    assert_eq!(event["type"], "transfer.completed");
    assert_eq!(event["callTransferId"], id);
    assert_eq!(event["externalConversationId"], format!("conv-{id}"));
    assert_eq!(event["status"], "COMPLETED");
    assert_eq!(event["transferType"], "AGENT");
    assert_eq!(event["currentTaskName"], "billing");
    assert_eq!(event["transferVariables"]["amount"], 42.5);
    assert_eq!(event["referenceVariables"]["caseId"], "C-7");
    assert_eq!(event["route"], "agent");
    assert_eq!(event["metadata"]["queue"], "gold");
    assert!(event["occurredAt"].as_str().unwrap().ends_with('Z'));

    // Exactly one agent message for this transfer.
    assert!(agent.next_within(Duration::from_secs(1)).await.is_none());
    let view = app.settled(&id).await;
    assert_eq!(view["state"], "COMPLETED");
    assert_eq!(view["upstreamStatus"], "COMPLETED");

    let audits = audit.drain(Duration::from_millis(500)).await;
    let keys: Vec<_> = audits.iter().map(|d| d.routing_key.to_string()).collect();
    assert_eq!(keys, ["transfer.tracking", "transfer.completed"]);
    assert_eq!(body(&audits[1])["eventId"], format!("{id}.completed"));
}

#[tokio::test]
async fn the_durable_audit_queue_keeps_records_without_a_consumer() {
    let app = spawn_app().await;
    let id = unique("audit");
    app.script(&id, json!({"timeline": [{"status": "EXPIRED"}]}));
    app.register_id(&id).await;
    let view = app.settled(&id).await;
    assert_eq!(view["state"], "EXPIRED");
    // The bridge declared and bound the queue itself; it is a stream (no
    // basic.get), so read it from its first offset.
    let conn =
        lapin::Connection::connect(&broker_url().await, lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let ids = crate::topology::read_stream(&conn, &app.config.amqp.audit_queue, 2).await;
    assert_eq!(
        ids,
        [
            format!("{id}.audit.tracking"),
            format!("{id}.audit.expired")
        ]
    );
}

#[tokio::test]
async fn disconnect_and_missing_output_reach_audit_only() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "#").await;
    let disconnect = unique("hangup");
    let bare = unique("bare");
    app.script(
        &disconnect,
        completes_with(json!({"transferType": "CALLER_DISCONNECT"})),
    );
    app.script(&bare, completes_with(serde_json::Value::Null));
    app.register_id(&disconnect).await;
    app.register_id(&bare).await;
    for id in [&disconnect, &bare] {
        let view = app.settled(id).await;
        assert_eq!(view["state"], "COMPLETED");
        let kinds: Vec<_> = view["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["audit", "audit"], "{id}");
    }
    assert!(
        agent
            .next_within(Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn unroutable_agent_messages_are_retried_until_a_queue_is_bound() {
    let app = spawn_app().await;
    let id = unique("unroutable");
    app.script(
        &id,
        completes_with(json!({"transferType": "AGENT", "currentTaskName": "sales"})),
    );
    app.register_id(&id).await;
    // No queue is bound to the agent exchange: the broker returns the
    // mandatory message, and the action stays pending with the reason.
    let mut last_error = String::new();
    for _ in 0..100 {
        let view = app.view(&id).await;
        let agent = view["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "agent")
            .cloned();
        if let Some(agent) = agent
            && agent["attempts"].as_u64().unwrap() >= 2
        {
            assert_eq!(agent["status"], "pending");
            last_error = agent["lastError"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last_error.contains("NO_ROUTE") || last_error.contains("312"),
        "{last_error}"
    );
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let message = agent.next().await;
    assert_eq!(
        message.properties.message_id().as_ref().unwrap().as_str(),
        format!("{id}.agent")
    );
    let view = app.settled(&id).await;
    assert!(
        view["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "delivered")
    );
}
