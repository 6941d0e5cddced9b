//! The API's reads of transfers with their actions look each transfer's
//! actions up in the `transfer_id` index on PostgreSQL, with statistics or
//! without (see `with_actions!`).

use super::WITH_TRANSFERS_POSTGRES;
use crate::store::testdb;

#[tokio::test]
async fn actions_are_looked_up_per_transfer() {
    let db = testdb::postgres_unanalysed(10_000).await;
    let ids: Vec<String> = (1..=20).map(|i| format!("plan{}", i * 500)).collect();
    let ids = serde_json::to_string(&ids).unwrap();
    testdb::without_and_with_statistics(&db.store, async |when| {
        let text = testdb::plan(&db.store, WITH_TRANSFERS_POSTGRES, &[&ids]).await;
        assert!(text.contains("actions_transfer"), "{when}:\n{text}");
        assert!(!text.contains("Seq Scan on actions"), "{when}:\n{text}");
        assert!(!text.contains("Seq Scan on transfers"), "{when}:\n{text}");
    })
    .await;
}
