//! What `Tx` must do that sqlx's `Transaction` did for it.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Executor;

use crate::store::testdb;
use crate::store::{NewTransfer, Registered, Store, register};
use crate::transfer::TransferId;

fn new(id: &str) -> NewTransfer {
    NewTransfer {
        id: TransferId::parse(id).unwrap(),
        callback_url: None,
        metadata: BTreeMap::new(),
        request_json: "{}".into(),
        upstream_status: None,
        upstream: None,
        integration: None,
        return_signal: None,
    }
}

/// The next transaction, which must not wait long: on SQLite the writer
/// pool has one connection, the one the last transaction left behind.
async fn next_tx(store: &Store) -> super::Tx {
    tokio::time::timeout(Duration::from_secs(5), store.begin())
        .await
        .expect("the writer connection came back to the pool")
        .expect("BEGIN on the connection the last transaction left")
}

#[tokio::test]
async fn a_transaction_dropped_before_commit_is_rolled_back_and_its_connection_reused() {
    for db in testdb::each().await {
        let backend = db.backend();
        let mut tx = db.store.begin().await.unwrap();
        register(&mut tx, &new("t1"), "i1").await.unwrap();
        // An early return or an error's `?`: no COMMIT, no ROLLBACK.
        drop(tx);
        // Left inside its transaction, the connection would refuse BEGIN.
        let mut tx = next_tx(&db.store).await;
        let again = register(&mut tx, &new("t1"), "i1").await.unwrap();
        assert!(
            matches!(again, Registered::Created(_)),
            "{backend:?}: the dropped registration was rolled back"
        );
        tx.commit().await.unwrap();
        let id = TransferId::parse("t1").unwrap();
        assert!(db.store.get(&id).await.unwrap().is_some(), "{backend:?}");
    }
}

#[tokio::test]
async fn a_connection_whose_rollback_fails_is_closed_not_reused() {
    for db in testdb::each().await {
        let backend = db.backend();
        let mut tx = db.store.begin().await.unwrap();
        // A mark that lives as long as the connection does.
        tx.execute("CREATE TEMPORARY TABLE marker (x INTEGER)")
            .await
            .unwrap();
        // As when SQLite ends a transaction by itself (SQLITE_FULL): the
        // ROLLBACK that follows the drop finds none and fails.
        tx.execute("COMMIT").await.unwrap();
        drop(tx);
        let mut tx = next_tx(&db.store).await;
        let marked = tx.execute("SELECT COUNT(*) FROM marker").await;
        assert!(
            marked.is_err(),
            "{backend:?}: the connection whose rollback failed was reused"
        );
    }
}
