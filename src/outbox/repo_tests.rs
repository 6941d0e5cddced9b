//! The outbox's SQL on both backends.

use super::*;
use crate::store::testdb::{self, TRICKY};
use crate::store::{Registered, register};
use crate::transfer::AmqpTarget;

/// An action's body and target go into the table as one JSON array of rows
/// (see `enqueue`): what is claimed back is byte for byte what was enqueued,
/// the body the broker gets on every redelivery.
#[tokio::test]
async fn an_enqueued_body_and_target_are_claimed_back_as_written() {
    for db in testdb::each().await {
        let backend = db.backend();
        let new = testdb::plain("t1");
        let id = new.id.clone();
        let target = Target::Amqp(AmqpTarget {
            exchange: "transfer.agent".into(),
            routing_key: format!("agent.{TRICKY}"),
            mandatory: true,
            event_type: "transfer.completed".into(),
            correlation_id: Some(TRICKY.into()),
            transfer_type: Some("AGENT".into()),
            current_task: Some(TRICKY.into()),
        });
        let mut action = Action::new(&id, "agent", ActionKind::Route("agent".into()), target);
        action.body = serde_json::json!({"note": TRICKY, "n": 1.5}).to_string() + TRICKY;
        let mut tx = db.store.begin().await.unwrap();
        let registered = register(&mut tx, backend, &new, "i1").await.unwrap();
        assert!(matches!(registered, Registered::Created(_)), "{backend:?}");
        enqueue(&mut tx, backend, std::slice::from_ref(&action), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let claimed = claim_due(&db.store, "i1", 60_000, 10, true).await.unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        let back = &claimed[0].action;
        assert_eq!(back.body, action.body, "{backend:?}");
        assert_eq!(back.target, action.target, "{backend:?}");
        assert_eq!((&back.id, &back.name), (&action.id, &action.name));
    }
}
