//! The broker topology the bridge declares: a bounded audit log, readable as
//! a stream, and a pre-existing audit queue that must not stop the bridge.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Connection, ConnectionProperties};
use serde_json::{Value, json};
use transfer_bridge::config::AuditQueueType;

use crate::helpers::*;
use crate::rabbitmq::{queue_arg, queue_info};

const BIN: &str = env!("CARGO_BIN_EXE_transfer-bridge");

#[tokio::test]
async fn the_audit_log_is_a_bounded_stream_after_start() {
    let app = spawn_app().await;
    let info = queue_info(&app.config.amqp.audit_queue).expect("the audit queue exists");
    assert_eq!(info["type"], "stream", "{info}");
    assert_eq!(
        queue_arg(&info, "x-max-age"),
        Some(json!("604800s")),
        "{info}"
    );
    assert_eq!(
        queue_arg(&info, "x-max-length-bytes"),
        Some(json!(5_000_000_000u64)),
        "{info}"
    );
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready["checks"]["auditQueue"]["status"], "declared",
        "{ready}"
    );
}

#[tokio::test]
async fn a_quorum_audit_queue_is_bounded_and_drops_its_oldest() {
    let app = spawn_app_with(|c| {
        c.amqp.audit_queue_type = AuditQueueType::Quorum;
        c.amqp.audit_max_age = Duration::from_secs(86_400);
        c.amqp.audit_max_length_bytes = 1_000_000;
    })
    .await;
    let info = queue_info(&app.config.amqp.audit_queue).expect("the audit queue exists");
    assert_eq!(info["type"], "quorum", "{info}");
    assert_eq!(queue_arg(&info, "x-message-ttl"), Some(json!(86_400_000)));
    assert_eq!(
        queue_arg(&info, "x-max-length-bytes"),
        Some(json!(1_000_000))
    );
    assert_eq!(queue_arg(&info, "x-overflow"), Some(json!("drop-head")));
}

#[tokio::test]
async fn a_pre_existing_unbounded_audit_queue_does_not_stop_the_bridge() {
    let url = broker_url().await;
    let legacy = format!("{}.transfer.audit", test_prefix());
    let mut cleanup = BrokerCleanup::new(&url);
    cleanup.queue(&legacy);
    declare_legacy_queue(&url, &legacy).await;

    let app = spawn_app_with(|c| c.amqp.audit_queue = legacy.clone()).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "a mismatch does not make it unready");
    let ready: Value = ready.json().await.unwrap();
    let audit = &ready["checks"]["auditQueue"];
    assert_eq!(audit["status"], "mismatch", "{ready}");
    assert!(
        audit["error"]
            .as_str()
            .unwrap()
            .contains("PRECONDITION_FAILED - inequivalent arg"),
        "{audit}"
    );
    assert!(
        audit["migrate"].to_string().contains("delete_queue"),
        "{audit}"
    );

    // Deliveries go on, audit records included, into the queue as it is.
    let id = unique("legacy");
    app.script(
        &id,
        completes_with(json!({"transferType": "CALLER_DISCONNECT"})),
    );
    app.register_id(&id).await;
    let view = app.settled(&id).await;
    let audit_ids = action_ids(&view, "audit");
    assert!(!audit_ids.is_empty() && all_delivered(&view), "{view}");
    assert_eq!(queued_ids(&url, &legacy).await, audit_ids);
    assert_eq!(queue_info(&legacy).unwrap()["type"], "classic");

    // `config check` reaches the broker and reports the same, exit 0.
    let out = config_check(&url, &legacy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("warning: audit queue '{legacy}' already exists")),
        "{stderr}"
    );
    assert!(stderr.contains("rabbitmqctl delete_queue"), "{stderr}");
}

#[tokio::test]
async fn config_check_changes_nothing_and_does_not_need_the_broker() {
    let url = broker_url().await;
    let fresh = format!("{}.transfer.audit", test_prefix());
    let out = config_check(&url, &fresh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("does not exist yet"), "{stderr}");
    assert!(
        queue_info(&fresh).is_none(),
        "config check declared {fresh}"
    );

    let out = config_check("amqp://guest:guest@127.0.0.1:1/%2f", &fresh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("note: broker not reached"), "{stderr}");
}

#[tokio::test]
async fn a_consumer_reads_the_audit_stream_from_the_first_offset() {
    let app = spawn_app().await;
    let mut expected = BTreeSet::new();
    for label in ["replay-a", "replay-b"] {
        let id = unique(label);
        app.script(
            &id,
            completes_with(json!({"transferType": "CALLER_DISCONNECT"})),
        );
        app.register_id(&id).await;
        expected.extend(action_ids(&app.settled(&id).await, "audit"));
    }
    assert_eq!(expected.len(), 4, "tracking and completed, twice");
    let conn = Connection::connect(&broker_url().await, ConnectionProperties::default())
        .await
        .unwrap();
    // Reading does not consume: a second reader from `first` sees it all again.
    for reader in 0..2 {
        let seen = read_stream(&conn, &app.config.amqp.audit_queue, expected.len()).await;
        assert_eq!(seen.len(), expected.len(), "reader {reader}: {seen:?}");
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
    }
}

/// Message ids of a stream from its first offset, in order: at least
/// `count`, then whatever else arrives within a short grace (so a test sees
/// extras). What a stream consumer must do: a prefetch (basic.qos), manual
/// acks, and an `x-stream-offset` to start from.
pub async fn read_stream(conn: &Connection, queue: &str, count: usize) -> Vec<String> {
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_qos(100, BasicQosOptions::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString(LongString::from("first")),
    );
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let wait = if seen.len() < count { 10_000 } else { 300 };
        let next = tokio::time::timeout(Duration::from_millis(wait), consumer.next()).await;
        let Ok(next) = next else {
            assert!(seen.len() >= count, "only {seen:?} read from the stream");
            break;
        };
        let delivery = next.expect("consumer open").unwrap();
        seen.push(message_id(&delivery.properties));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = channel.close(200, "read".into()).await;
    seen
}

/// The queue an older bridge declared: classic, durable, no bounds.
async fn declare_legacy_queue(url: &str, name: &str) {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), durable, FieldTable::default())
        .await
        .unwrap();
    let _ = conn.close(200, "declared".into()).await;
}

/// Message ids waiting in a (classic) queue, fetched one by one.
async fn queued_ids(url: &str, queue: &str) -> BTreeSet<String> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut ids = BTreeSet::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        ids.insert(message_id(&message.delivery.properties));
    }
    let _ = conn.close(200, "read".into()).await;
    ids
}

fn message_id(properties: &lapin::BasicProperties) -> String {
    properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

fn action_ids(view: &Value, kind: &str) -> BTreeSet<String> {
    view["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

fn all_delivered(view: &Value) -> bool {
    view["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "delivered")
}

fn config_check(url: &str, audit_queue: &str) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(["config", "check"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env("BRIDGE_AMQP__URL", url)
        .env("BRIDGE_AMQP__AUDIT_QUEUE", audit_queue)
        .output()
        .expect("binary runs")
}
