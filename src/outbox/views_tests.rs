//! The API's reads of transfers with their actions keep their PostgreSQL
//! plan before the planner has statistics (see `with_actions!`).

use super::WITH_TRANSFERS_POSTGRES;
use crate::store::testdb;

#[tokio::test]
async fn actions_are_looked_up_per_transfer_before_any_statistics() {
    let db = testdb::postgres_unanalysed(10_000).await;
    let ids: Vec<String> = (1..=20).map(|i| format!("plan{}", i * 500)).collect();
    let ids = serde_json::to_string(&ids).unwrap();
    let plan = testdb::plan(&db.store, WITH_TRANSFERS_POSTGRES, &[&ids]).await;
    let text = plan.join("\n");
    assert!(text.contains("actions_transfer"), "{text}");
    assert!(!text.contains("Seq Scan on actions"), "{text}");
    assert!(!text.contains("Seq Scan on transfers"), "{text}");
}
