//! Ids are fields: a transfer id with dots reaches every message whole.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn dotted_ids_reach_headers_and_audit_records_whole() {
    let app = spawn_app().await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let mut audit = app
        .bind(&app.config.amqp.audit_exchange, "transfer.completed")
        .await;
    let id = unique("ct.1.leg");
    app.script(
        &id,
        completes_with(json!({"transferType": "AGENT", "currentTaskName": "billing"})),
    );
    app.register_id(&id).await;
    let published = agent.next().await;
    assert_eq!(
        header(&published, "x-call-transfer-id").as_deref(),
        Some(id.as_str())
    );
    let message_id = published
        .properties
        .message_id()
        .as_ref()
        .unwrap()
        .to_string();
    assert_eq!(message_id, format!("{id}.agent"));
    let record = audit.next().await;
    assert_eq!(
        header(&record, "x-call-transfer-id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(body(&record)["callTransferId"], id.as_str());
    assert_eq!(body(&record)["eventId"], format!("{id}.completed"));
}
