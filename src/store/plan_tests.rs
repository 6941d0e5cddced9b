//! The group commit's PostgreSQL statements look their rows up by id, with
//! statistics or without (see `testdb::postgres_unanalysed`): a small
//! table, where reading all of it looks cheap to the planner, and a new
//! one, where it guesses. On SQLite, the lookups of TRACKING rows read the
//! indexes that hold only those.

use super::ending::END_MANY_POSTGRES;
use super::instances::{ADOPT_SQLITE, ADOPT_UNOWNED_SQLITE, HOLDS, OWN_ALL, PRUNE};
use super::seen::RECORD_UPSTREAM_POSTGRES;
use super::testdb::{self, TestStore};
use super::transfers::select;

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

/// On SQLite the indexes on state and owner hold only TRACKING rows
/// (migration 0009), and every lookup by state or owner still reads them:
/// resuming, adopting, the lease checks. 2,000 rows, one in ten TRACKING.
#[tokio::test]
async fn tracking_lookups_read_the_tracking_only_indexes_on_sqlite() {
    let db = testdb::sqlite().await;
    sqlx::query(
        "INSERT INTO transfers (id, state, request_json, created_at, updated_at, owner) \
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) \
         SELECT 'plan' || n, CASE WHEN n % 10 = 0 THEN 'TRACKING' ELSE 'COMPLETED' END, \
         '{}', 'x', 'x', 'i1' FROM g",
    )
    .execute(db.store.pool())
    .await
    .unwrap();
    for index in ["transfers_state", "transfers_owner"] {
        let sql: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = $1")
            .bind(index)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        assert!(sql.ends_with("WHERE state = 'TRACKING'"), "{sql}");
    }
    let cases = [
        (
            select!("WHERE state = 'TRACKING' ORDER BY seq"),
            "transfers_state",
        ),
        (OWN_ALL, "transfers_state"),
        (ADOPT_SQLITE, "transfers_owner"),
        (ADOPT_UNOWNED_SQLITE, "transfers_owner"),
        (HOLDS, "transfers_owner"),
        (PRUNE, "transfers_owner"),
    ];
    for (sql, index) in cases {
        let plan = testdb::plan(&db.store, sql, &[]).await;
        assert!(plan.contains(index), "{sql}:\n{plan}");
        // No step reads the whole table: `SCAN transfers`, or `SCAN t` under
        // the alias the prune's subquery gives it.
        assert!(!plan.contains("SCAN t"), "{sql}:\n{plan}");
    }
}
