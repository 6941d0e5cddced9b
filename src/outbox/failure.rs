//! An action given up on: marked failed and, in the same transaction, its
//! `delivery.failed` audit record enqueued, so the failure itself is never
//! lost.

use super::repo;
use crate::store::{Store, StoreError};
use crate::transfer::{Action, ActionKind, AmqpTarget, Target, TransferEvent};

/// Mark `action` failed under `by`'s claim and record its audit event. A
/// claim that lapsed meanwhile is another attempt's now: nothing is written.
pub(super) async fn record(
    store: &Store,
    by: &str,
    audit_exchange: &str,
    action: &Action,
    error: &str,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    if !repo::mark_failed(&mut tx, &action.id, by, error).await? {
        tracing::warn!(action_id = %action.id, "the claim lapsed meanwhile: the failure is not recorded");
        return tx.rollback().await;
    }
    if action.kind != ActionKind::Audit {
        let failed = [audit_record(action, error, audit_exchange)];
        repo::enqueue(&mut tx, store.backend(), &failed, None).await?;
    }
    tx.commit().await
}

/// The `delivery.failed` audit record of `action`: its own event (every
/// action of a state change carries it), re-typed and re-dated.
fn audit_record(action: &Action, error: &str, audit_exchange: &str) -> Action {
    let event = serde_json::from_str::<TransferEvent>(&action.body)
        .ok()
        .map(|event| event.delivery_failed(&action.id, error));
    let field =
        |get: fn(&TransferEvent) -> &Option<String>| event.as_ref().and_then(|e| get(e).clone());
    let target = Target::Amqp(AmqpTarget {
        exchange: audit_exchange.to_owned(),
        routing_key: "delivery.failed".into(),
        mandatory: true,
        event_type: "delivery.failed".into(),
        correlation_id: field(|e| &e.external_conversation_id),
        transfer_type: field(|e| &e.transfer_type),
        current_task: field(|e| &e.current_task_name),
    });
    let name = format!("audit.delivery_failed.{}", action.name);
    let mut failure = Action::new(&action.transfer_id, &name, ActionKind::Audit, target);
    failure.body = serde_json::to_string(&event).expect("events serialize");
    failure
}
