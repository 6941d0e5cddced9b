//! The published JSON Schema of `TransferEvent`: the checked-in file matches
//! the code, and what the running bridge emits validates against it.
//!
//! Refresh the file after changing `TransferEvent`:
//! `UPDATE_SCHEMA=1 cargo nextest run -E 'test(checked_in_schema_is_current)'`

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use jsonschema::Validator;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};
use transfer_bridge::routing::TransferEvent;

use crate::helpers::*;
use crate::receiver::{Receiver, Reply, SECRET};

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/transfer-event.schema.json")
}

/// The schema of what the bridge *sends*: the serialize contract makes every
/// field required and `Option`s nullable, which is the event's promise.
fn generated() -> String {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<TransferEvent>();
    format!("{}\n", serde_json::to_string_pretty(&schema).unwrap())
}

/// Validates against the checked-in file, the one consumers actually get.
fn checked_in() -> (Value, Validator) {
    let text = std::fs::read_to_string(schema_path()).expect("schema file exists");
    let schema: Value = serde_json::from_str(&text).unwrap();
    // `format` is only an annotation in 2020-12 unless asked for.
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles");
    (schema, validator)
}

fn errors(validator: &Validator, event: &Value) -> Vec<String> {
    validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Valid, and no key the schema does not describe: the schema leaves
/// `additionalProperties` open so consumers survive additions, but the
/// bridge itself must not emit a field that is missing from it.
fn assert_conforms(schema: &Value, validator: &Validator, event: &Value) {
    let errors = errors(validator, event);
    assert!(errors.is_empty(), "{errors:?} in {event:#}");
    let described = schema["properties"].as_object().unwrap();
    for key in event.as_object().unwrap().keys() {
        assert!(described.contains_key(key), "{key} is not in the schema");
    }
}

#[test]
fn checked_in_schema_is_current() {
    let fresh = generated();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(schema_path(), &fresh).unwrap();
    }
    let on_disk = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        on_disk == fresh,
        "schema/transfer-event.schema.json is stale; refresh it with\n  \
         UPDATE_SCHEMA=1 cargo nextest run -E 'test(checked_in_schema_is_current)'"
    );
}

/// An event as the bridge emits it, built through the real type.
fn sample() -> Value {
    let event: TransferEvent = serde_json::from_value(json!({
        "eventId": "ct-1.completed", "type": "transfer.completed",
        "occurredAt": "2026-05-01T10:00:00Z", "callTransferId": "ct-1",
        "externalConversationId": "conv-1", "state": "COMPLETED", "status": "COMPLETED",
        "transferType": "AGENT", "currentTaskName": "billing",
        "transferVariables": {"amount": 4.5}, "referenceVariables": {},
        "inputContext": null, "route": "agent", "metadata": {"queue": "gold"},
        "sip": null, "reason": null}))
    .unwrap();
    serde_json::to_value(event).unwrap()
}

/// What a mutation breaks, and how.
type Mutation = (&'static str, fn(&mut Value));

#[test]
fn the_schema_rejects_mutated_events() {
    let (schema, validator) = checked_in();
    let good = sample();
    assert_conforms(&schema, &validator, &good);
    let mutations: [Mutation; 10] = [
        ("missing nullable field", |e| {
            drop(e.as_object_mut().unwrap().remove("route"))
        }),
        ("missing eventId", |e| {
            drop(e.as_object_mut().unwrap().remove("eventId"))
        }),
        ("unknown state", |e| e["state"] = "DONE".into()),
        ("unknown type", |e| e["type"] = "transfer.done".into()),
        ("null required string", |e| {
            e["callTransferId"] = Value::Null
        }),
        ("variables not an object", |e| {
            e["transferVariables"] = "x".into()
        }),
        ("non-string metadata", |e| e["metadata"]["queue"] = 7.into()),
        ("not a timestamp", |e| e["occurredAt"] = "yesterday".into()),
        ("SIP without its message", |e| {
            e["sip"] = json!({"method": "BYE"})
        }),
        ("free text as inputContext", |e| {
            e["inputContext"] = "x".into()
        }),
    ];
    for (what, mutate) in mutations {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(!validator.is_valid(&bad), "accepted an event with {what}");
    }
}

/// AGENT, SYSTEM with a REFER, EXPIRED, CANCELLED, a delivered webhook and a
/// failed one (`delivery.failed`) through the real bridge; every body seen on
/// any exchange or by the webhook receiver must conform.
#[tokio::test]
async fn emitted_events_conform_to_the_schema() {
    let (schema, validator) = checked_in();
    let app = spawn_app_with(|c| {
        c.webhook.secret = Some(SECRET.parse().unwrap());
        c.webhook.allow_http = true;
        c.webhook.allowed_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "#").await;
    let mut pbx = app.bind(&app.config.amqp.pbx_exchange, "#").await;
    let mut audit = app.bind(&app.config.amqp.audit_exchange, "#").await;
    let ok = Receiver::start(&[SECRET], vec![]).await;
    let gone = Receiver::start(&[SECRET], vec![Reply::Status(410)]).await;

    let ids = run_every_outcome(&app, &ok.url, &gone.url).await;
    for id in &ids {
        app.settled(id).await;
    }

    let mut events: Vec<Value> = vec![body(&agent.next().await), body(&pbx.next().await)];
    events.extend(
        audit
            .drain(Duration::from_millis(500))
            .await
            .iter()
            .map(body),
    );
    events.extend(ok.wait_for(1).await.into_iter().map(|g| g.body));
    events.extend(gone.wait_for(1).await.into_iter().map(|g| g.body));
    for event in &events {
        assert_conforms(&schema, &validator, event);
    }

    // Every kind of event the scenario makes was actually seen and checked.
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    let want = [
        "delivery.failed",
        "transfer.cancelled",
        "transfer.completed",
        "transfer.expired",
        "transfer.tracking",
    ];
    assert_eq!(types, BTreeSet::from(want));
    let sip = events
        .iter()
        .find(|e| e["sip"].is_object())
        .expect("a SIP event");
    assert_eq!(sip["sip"]["method"], "REFER");
    let agent_event = &events[0];
    let mut mutated = agent_event.clone();
    mutated["state"] = "NOT_A_STATE".into();
    assert!(!validator.is_valid(&mutated), "the schema must reject it");
}

/// Registers one transfer per outcome and returns their ids.
async fn run_every_outcome(app: &TestApp, ok_url: &str, gone_url: &str) -> Vec<String> {
    let agent = unique("schema-agent");
    app.script(
        &agent,
        completes_with(json!({"transferType": "AGENT",
        "currentTaskName": "billing", "transferVariables": {"amount": 42.5, "vip": true}})),
    );
    let response = app
        .register(json!({"callTransferId": agent, "metadata": {"queue": "gold"}}))
        .await;
    assert_eq!(response.status(), 201);

    let system = unique("schema-system");
    let mut script = completes_with(json!({"transferType": "SYSTEM",
        "currentTaskName": "verify", "referenceVariables": {"caseId": "C-9"}}));
    script["type"] = "SIP".into();
    script["sip"] = json!({"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"});
    app.script(&system, script);
    app.register_id(&system).await;

    let expired = unique("schema-expired");
    app.script(&expired, json!({"timeline": [{"status": "EXPIRED"}]}));
    app.register_id(&expired).await;

    let cancelled = unique("schema-cancelled");
    app.script(&cancelled, json!({"timeline": [{"status": "ONGOING"}]}));
    app.register_id(&cancelled).await;
    let url = format!("{}/v1/transfers/{cancelled}", app.base);
    assert_eq!(app.http.delete(url).send().await.unwrap().status(), 200);

    let mut ids = vec![agent, system, expired, cancelled];
    for (prefix, callback) in [("schema-hook", ok_url), ("schema-gone", gone_url)] {
        let id = unique(prefix);
        let output = json!({"transferType": "CALLER_DISCONNECT"});
        app.script(
            &id,
            json!({"timeline": [{"status": "COMPLETED"}], "outputContext": output}),
        );
        let response = app
            .register(json!({"callTransferId": id, "callbackUrl": callback}))
            .await;
        assert_eq!(response.status(), 201);
        ids.push(id);
    }
    ids
}
