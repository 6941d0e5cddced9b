use std::time::Duration;

use super::ViewReads;
use crate::store::testdb;
use crate::transfer::TransferId;

/// `id` registered in its own transaction, and a reading task on `store`.
async fn reading(store: &crate::store::Store, id: &str) -> (TransferId, ViewReads) {
    let new = testdb::plain(id);
    let mut tx = store.begin().await.unwrap();
    crate::store::register(&mut tx, store.backend(), &new, "i1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (new.id, ViewReads::start(store.clone()))
}

/// Reader connections out of the pool (checked out and not idle).
fn out_of(store: &crate::store::Store) -> u32 {
    let reader = store.reader();
    reader.size() - reader.num_idle() as u32
}

#[tokio::test]
async fn sqlite_reads_keep_their_connection_and_reuse_it() {
    let db = testdb::sqlite().await;
    let store = &db.store;
    let (id, reads) = reading(store, "kept.1").await;
    for _ in 0..5 {
        let (transfer, _) = reads.get(&id).await.unwrap().expect("found");
        assert_eq!(transfer.id, id);
        // Time enough for a connection given back to reach the pool (sqlx
        // returns it from a task of its own).
        tokio::time::sleep(Duration::from_millis(50)).await;
        // One connection kept after each read, not one more per read.
        assert_eq!(out_of(store), 1, "reads one at a time keep one connection");
    }
    let unknown = TransferId::parse("kept.unknown").unwrap();
    assert!(reads.get(&unknown).await.unwrap().is_none());
    assert_eq!(out_of(store), 1);
}

#[tokio::test]
async fn the_store_closes_while_reads_keep_connections() {
    for db in testdb::each().await {
        let store = &db.store;
        // The handle lives on past the close, as the app's lifecycle does.
        let (id, reads) = reading(store, "kept.2").await;
        let many = (0..20).map(|_| reads.get(&id));
        for read in futures::future::join_all(many).await {
            assert!(read.unwrap().is_some());
        }
        let closed = tokio::time::timeout(Duration::from_secs(10), store.close()).await;
        assert!(
            closed.is_ok(),
            "{:?}: close waited on kept connections",
            db.backend()
        );
        assert!(
            reads.get(&id).await.is_err(),
            "a read after the close fails"
        );
    }
}

#[tokio::test]
async fn postgres_reads_give_their_connection_back() {
    let db = testdb::postgres().await;
    let store = &db.store;
    let (id, reads) = reading(store, "kept.3").await;
    assert!(reads.get(&id).await.unwrap().is_some());
    // sqlx hands it back from a task of its own.
    for _ in 0..100 {
        if out_of(store) == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "a PostgreSQL reader stayed out of the pool: {}",
        out_of(store)
    );
}
