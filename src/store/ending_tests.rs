//! Ending transfers in sets: a group that would end other rows than it
//! read commits nothing, on either backend.

use super::*;
use crate::store::testdb::{self, TestStore};
use crate::store::{now_text, register};
use crate::transfer::{BridgeState, TransferId};

async fn register_one(db: &TestStore, id: &str) {
    let mut tx = db.store.begin().await.unwrap();
    register(&mut tx, db.backend(), &testdb::plain(id), "i1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// A group's endings are read under the write lock, so each must find its
/// transfer TRACKING; one that does not is a bug, and nothing of the
/// transaction commits: on SQLite the check goes with the COMMIT.
#[tokio::test]
async fn endings_that_do_not_all_end_a_transfer_commit_nothing() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (t1, t2) = (
            TransferId::parse("t1").unwrap(),
            TransferId::parse("t2").unwrap(),
        );
        for id in [&t1, &t2] {
            register_one(&db, id.as_str()).await;
        }
        let mut conn = db.store.writer().await.unwrap();
        let expire = Ending::new(&t2, BridgeState::Expired, None);
        end_many(&mut conn, backend, &[expire], &now_text())
            .await
            .unwrap();
        drop(conn);
        let mut tx = db.store.begin().await.unwrap();
        let both = [
            Ending::new(&t1, BridgeState::Cancelled, None),
            Ending::new(&t2, BridgeState::Cancelled, None),
        ];
        let result = match end_many(&mut tx, backend, &both, &now_text()).await {
            Ok(()) => tx.commit().await,
            Err(e) => Err(e),
        };
        let e = result.expect_err("one of the two was not TRACKING");
        let why = ["changed other rows than it read", "1 of 2 transfers ended"];
        assert!(
            why.iter().any(|w| e.to_string().contains(w)),
            "{backend:?}: {e}"
        );
        let stored = db.store.get(&t1).await.unwrap().unwrap();
        assert_eq!(stored.state, BridgeState::Tracking, "{backend:?}");
        let stored = db.store.get(&t2).await.unwrap().unwrap();
        assert_eq!(stored.state, BridgeState::Expired, "{backend:?}");
    }
}
