//! The group commit's PostgreSQL statements look their rows up by id, with
//! statistics or without (see `testdb::postgres_unanalysed`): a small
//! table, where reading all of it looks cheap to the planner, and a new
//! one, where it guesses.

use super::ending::END_MANY_POSTGRES;
use super::seen::RECORD_UPSTREAM_POSTGRES;
use super::testdb::{self, TestStore};

/// Eighteen rows for the 10,000 tracked transfers, as the statements bind
/// them: the ending's columns and the status's.
fn rows() -> String {
    let rows: Vec<_> = (1..=18)
        .map(|i| {
            serde_json::json!({"id": format!("plan{}", i * 500), "state": "COMPLETED",
                "reason": null, "polls": 1, "upstream_status": "COMPLETED",
                "upstream_json": "{}", "sip_json": null, "status": "ONGOING", "raw": "{}"})
        })
        .collect();
    serde_json::to_string(&rows).unwrap()
}

/// `sql`'s plan reads `transfers` through its unique index on `id` only.
async fn looks_up_by_id(db: &TestStore, sql: &str, when: &str) {
    let text = testdb::plan(&db.store, sql, &[&rows(), "now"]).await;
    assert!(text.contains("transfers_id_key"), "{when}:\n{text}");
    assert!(!text.contains("transfers_state"), "{when}:\n{text}");
    assert!(!text.contains("Seq Scan on transfers"), "{when}:\n{text}");
}

#[tokio::test]
async fn endings_and_statuses_look_each_transfer_up_by_id() {
    let db = testdb::postgres_unanalysed(10_000).await;
    testdb::without_and_with_statistics(&db.store, async |when| {
        looks_up_by_id(&db, END_MANY_POSTGRES, when).await;
        looks_up_by_id(&db, RECORD_UPSTREAM_POSTGRES, when).await;
    })
    .await;
}
