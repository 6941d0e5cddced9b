//! Ending transfers in sets: a group that would end other rows than it
//! read commits nothing, on either backend; nor does one that expects rows
//! that moved since they were read.

use serde_json::json;

use super::*;
use crate::store::testdb::{self, TRICKY, TestStore};
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
        let seen = Upstream::new(&t1, "ONGOING", &json!({"status": "ONGOING"}).to_string(), 1);
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

/// A group too large for one JSON array (on SQLite, over 64 KiB) is checked
/// array by array: every array that ends its rows commits, and one whose
/// rows were not TRACKING fails the whole group, wherever it falls.
#[tokio::test]
async fn a_group_of_many_arrays_is_checked_array_by_array() {
    let long = "r".repeat(40 * 1024);
    for db in testdb::each().await {
        let backend = db.backend();
        let (t1, t2) = register_two(&db).await;
        let (t3, t4) = (
            TransferId::parse("t3").unwrap(),
            TransferId::parse("t4").unwrap(),
        );
        register_one(&db, t3.as_str()).await;
        register_one(&db, t4.as_str()).await;
        let ending = |id| Ending::new(id, BridgeState::Cancelled, Some(long.clone()));
        end_in_tx(&db, &[ending(&t1), ending(&t2)]).await.unwrap();
        for id in [&t1, &t2] {
            let stored = db.store.get(id).await.unwrap().unwrap();
            assert_eq!(stored.state, BridgeState::Cancelled, "{backend:?}");
        }
        // t1's array ends nothing; t3's and t4's would.
        let group = [ending(&t1), ending(&t3), ending(&t4)];
        end_in_tx(&db, &group)
            .await
            .expect_err("t1 was not TRACKING");
        for id in [&t3, &t4] {
            let stored = db.store.get(id).await.unwrap().unwrap();
            assert_eq!(stored.state, BridgeState::Tracking, "{backend:?}");
        }
    }
}

/// A group whose texts span several statements (on SQLite, BLOBs of 64 KiB;
/// see `store::blob_batches`), recorded and then ended: every transfer
/// keeps its own reason, upstream body and SIP instruction byte for byte,
/// an ending without a body keeps the one recorded before, and one without
/// an instruction stores none.
#[tokio::test]
async fn a_large_group_keeps_every_transfers_texts() {
    let n = 120;
    for db in testdb::each().await {
        let backend = db.backend();
        let ids: Vec<TransferId> = (0..n)
            .map(|i| TransferId::parse(&format!("t{i}")).unwrap())
            .collect();
        let body = |i: usize, status: &str| json!({"status": status, "i": i, "pad": TRICKY.repeat(i % 23 + 8)});
        let mut tx = db.store.begin().await.unwrap();
        for id in &ids {
            register(&mut tx, backend, &testdb::plain(id.as_str()), "i1")
                .await
                .unwrap();
        }
        let seen: Vec<Upstream> = (0..n)
            .map(|i| Upstream::new(&ids[i], "ONGOING", &body(i, "ONGOING").to_string(), 1))
            .collect();
        record_upstream(&mut tx, backend, &seen).await.unwrap();
        tx.commit().await.unwrap();
        let sip = testdb::tricky_sip();
        let bodies: Vec<String> = (0..n).map(|i| body(i, "COMPLETED").to_string()).collect();
        let endings: Vec<Ending<'_>> = (0..n)
            .map(|i| {
                let reason = (i % 3 > 0).then(|| format!("{i} {TRICKY}"));
                let ending = Ending::new(&ids[i], BridgeState::Completed, reason);
                let ending = ending.sip((i % 2 == 0).then_some(&sip));
                match i % 5 {
                    0 => ending,
                    _ => ending.seen("COMPLETED", &bodies[i]),
                }
            })
            .collect();
        end_in_tx(&db, &endings).await.unwrap();
        for (i, id) in ids.iter().enumerate() {
            let stored = db.store.get(id).await.unwrap().unwrap();
            let said = if i % 5 == 0 { "ONGOING" } else { "COMPLETED" };
            assert_eq!(stored.upstream, Some(body(i, said)), "{backend:?} {i}");
            assert_eq!(stored.upstream_status.as_deref(), Some(said), "{backend:?}");
            let reason = (i % 3 > 0).then(|| format!("{i} {TRICKY}"));
            assert_eq!(stored.reason, reason, "{backend:?} {i}");
            assert_eq!(stored.sip, (i % 2 == 0).then(|| sip.clone()), "{backend:?}");
            assert_eq!(stored.state, BridgeState::Completed, "{backend:?}");
        }
    }
}
