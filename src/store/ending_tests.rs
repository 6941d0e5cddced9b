//! Ending transfers in sets: a group that would end other rows than it
//! read commits nothing, on either backend; nor does one that expects rows
//! that moved since they were read.

use serde_json::json;

use super::*;
use crate::store::testdb::{self, TestStore};
use crate::store::{Upstream, now_text, record_upstream, register};
use crate::transfer::{BridgeState, TransferId};

/// `t1` and `t2`, registered.
async fn register_two(db: &TestStore) -> (TransferId, TransferId) {
    let ids = ["t1", "t2"].map(|id| TransferId::parse(id).unwrap());
    for id in &ids {
        register_one(db, id.as_str()).await;
    }
    let [t1, t2] = ids;
    (t1, t2)
}

/// `endings` in a transaction of their own, committed if they went through.
async fn end_in_tx(db: &TestStore, endings: &[Ending<'_>]) -> Result<(), StoreError> {
    let mut tx = db.store.begin().await?;
    end_many(&mut tx, db.backend(), endings, &now_text()).await?;
    tx.commit().await
}

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
        let (t1, t2) = register_two(&db).await;
        let mut conn = db.store.writer().await.unwrap();
        let expire = Ending::new(&t2, BridgeState::Expired, None);
        end_many(&mut conn, backend, &[expire], &now_text())
            .await
            .unwrap();
        drop(conn);
        let both = [
            Ending::new(&t1, BridgeState::Cancelled, None),
            Ending::new(&t2, BridgeState::Cancelled, None),
        ];
        let result = end_in_tx(&db, &both).await;
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

/// An ending planned from a transfer read earlier, not under the write lock
/// (`Ending::expecting`), ends its row only if the row is still what was
/// read: after a status was recorded, or with another owner, the group
/// fails and the transfer stays TRACKING.
#[tokio::test]
async fn an_ending_expecting_a_row_ends_it_only_if_it_did_not_move() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (t1, t2) = register_two(&db).await;
        let store = &db.store;
        let read = |id| async move { store.get(id).await.unwrap().unwrap() };
        let (before1, before2) = (read(&t1).await, read(&t2).await);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let mut conn = db.store.writer().await.unwrap();
        let seen = Upstream::new(&t1, "ONGOING", &json!({"status": "ONGOING"}), 1);
        record_upstream(&mut conn, backend, [&seen]).await.unwrap();
        sqlx::query("UPDATE transfers SET owner = 'i2' WHERE id = 't2'")
            .execute(&mut conn)
            .await
            .unwrap();
        drop(conn);
        for (id, before) in [(&t1, &before1), (&t2, &before2)] {
            let stale = Ending::new(id, BridgeState::Completed, None).expecting(before);
            let e = end_in_tx(&db, &[stale]).await.expect_err("the row moved");
            assert_eq!(
                read(id).await.state,
                BridgeState::Tracking,
                "{backend:?}: {e}"
            );
            let now = read(id).await;
            let fresh = Ending::new(id, BridgeState::Completed, None).expecting(&now);
            end_in_tx(&db, &[fresh]).await.unwrap();
            assert_eq!(read(id).await.state, BridgeState::Completed, "{backend:?}");
        }
    }
}
