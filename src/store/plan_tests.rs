//! The group commit's PostgreSQL statements keep their plans before the
//! planner has statistics (see `testdb::postgres_unanalysed`): each looks
//! its rows up by id, whatever it guesses about the rest of the table.

use super::ending::END_MANY_POSTGRES;
use super::testdb;

/// Sixteen endings of the 10,000 tracked transfers, as `end_many` binds them.
fn endings() -> String {
    let rows: Vec<_> = (1..=16)
        .map(|i| {
            serde_json::json!({"id": format!("plan{}", i * 600), "state": "COMPLETED",
                "reason": null, "polls": 1, "upstream_status": "COMPLETED",
                "upstream_json": "{}", "sip_json": null})
        })
        .collect();
    serde_json::to_string(&rows).unwrap()
}

#[tokio::test]
async fn endings_look_each_transfer_up_by_id() {
    let db = testdb::postgres_unanalysed(10_000).await;
    let plan = testdb::plan(&db.store, END_MANY_POSTGRES, &[&endings(), "now"]).await;
    let text = plan.join("\n");
    assert!(
        text.contains("Index Scan using transfers_id_key on transfers"),
        "{text}"
    );
    assert!(!text.contains("transfers_state"), "{text}");
    assert!(!text.contains("Seq Scan on transfers"), "{text}");
}
