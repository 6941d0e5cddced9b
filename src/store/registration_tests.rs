//! Registrations taken to be new: what the caller is told is what a read
//! gives, and a registration that was not new fails the transaction.

use serde_json::json;

use super::*;
use crate::store::testdb::{self, TRICKY};

fn tricky(id: &str) -> NewTransfer {
    let mut n = testdb::plain(id);
    n.callback_url = Some(TRICKY.into());
    n.metadata.insert(TRICKY.into(), TRICKY.into());
    n.request_json = TRICKY.into();
    n.upstream_status = Some("ACTIVE".into());
    n.upstream = Some(json!({"id": id, TRICKY: [TRICKY, 1.5, -0.0, 1e300, null]}));
    n.integration = Some(TRICKY.into());
    n.return_signal = Some(false);
    n
}

#[tokio::test]
async fn transfers_taken_as_new_are_what_a_read_of_their_rows_gives() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (a, b) = (tricky("a"), testdb::plain("b"));
        let mut tx = db.store.begin().await.unwrap();
        let taken = insert_taken_as_new(&mut tx, backend, &[&a, &b], "i1")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let Some(taken) = taken else {
            // PostgreSQL runs every statement now: it does not apply.
            assert_eq!(backend, Backend::Postgres);
            assert!(db.store.get(&a.id).await.unwrap().is_none());
            continue;
        };
        assert_eq!(backend, Backend::Sqlite);
        for id in [&a.id, &b.id] {
            let stored = db.store.get(id).await.unwrap();
            assert_eq!(stored.as_ref(), taken.get(id.as_str()), "{id}");
        }
    }
}

#[tokio::test]
async fn a_registration_taken_as_new_that_was_not_fails_its_transaction() {
    let [db, _] = testdb::each().await;
    let backend = db.backend();
    let stored = testdb::plain("stored");
    let mut tx = db.store.begin().await.unwrap();
    register(&mut tx, backend, &stored, "i1").await.unwrap();
    tx.commit().await.unwrap();
    let fresh = testdb::plain("fresh");
    let mut tx = db.store.begin().await.unwrap();
    let taken = insert_taken_as_new(&mut tx, backend, &[&fresh, &stored], "i1").await;
    assert!(taken.unwrap().is_some());
    let e = tx.commit().await.unwrap_err();
    assert!(e.to_string().contains("was not new"), "{e}");
    assert!(db.store.get(&fresh.id).await.unwrap().is_none());
    // Rolled back on its connection: the next transaction works.
    let mut tx = db.store.begin().await.unwrap();
    register(&mut tx, backend, &fresh, "i1").await.unwrap();
    tx.commit().await.unwrap();
    assert!(db.store.get(&fresh.id).await.unwrap().is_some());
}

#[tokio::test]
async fn an_id_named_twice_is_not_taken_as_new() {
    let [db, _] = testdb::each().await;
    let twice = testdb::plain("twice");
    let mut tx = db.store.begin().await.unwrap();
    let taken = insert_taken_as_new(&mut tx, db.backend(), &[&twice, &twice], "i1").await;
    assert!(taken.unwrap().is_none());
    tx.commit().await.unwrap();
    assert!(db.store.get(&twice.id).await.unwrap().is_none());
}

#[tokio::test]
async fn repeats_read_together_tell_identical_from_conflicting_as_one_read_does() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (same, other) = (tricky("same"), tricky("other"));
        let mut tx = db.store.begin().await.unwrap();
        insert_many(&mut tx, backend, &[&same, &other], "i1")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut changed = other.clone();
        changed.request_json = "sha256:another body".into();
        let unknown = testdb::plain("unknown");
        let mut tx = db.store.begin().await.unwrap();
        let news = [&same, &changed, &unknown];
        let mut together = repeats(&mut tx, backend, &news).await.unwrap();
        assert_eq!(together.len(), 2, "{backend:?}: the unknown id is left out");
        for new in [&same, &changed] {
            let alone = repeat(&mut tx, new).await.unwrap();
            let read = together.remove(new.id.as_str()).unwrap();
            let (Registered::Identical(a) | Registered::Conflict(a)) = &alone else {
                unreachable!("a stored id is a repeat")
            };
            match (&read, new.id.as_str()) {
                (Registered::Identical(t), "same") | (Registered::Conflict(t), "other") => {
                    assert_eq!(format!("{t:?}"), format!("{a:?}"), "{backend:?}");
                }
                _ => panic!("{backend:?}: {} judged wrongly", new.id.as_str()),
            }
        }
        assert!(repeats(&mut tx, backend, &[]).await.unwrap().is_empty());
        tx.rollback().await.unwrap();
    }
}

/// Registrations too large for one JSON array (over 64 KiB on SQLite) are
/// checked array by array: all new, they commit; one not new fails the
/// transaction wherever its array falls.
#[tokio::test]
async fn registrations_of_many_arrays_are_checked_array_by_array() {
    let [db, _] = testdb::each().await;
    let backend = db.backend();
    let large = |id: &str| {
        let mut n = testdb::plain(id);
        n.request_json = "x".repeat(40 * 1024);
        n
    };
    let (a, b) = (large("a"), large("b"));
    let mut tx = db.store.begin().await.unwrap();
    let taken = insert_taken_as_new(&mut tx, backend, &[&a, &b], "i1").await;
    assert!(taken.unwrap().is_some());
    tx.commit().await.unwrap();
    let (c, d) = (large("c"), large("d"));
    let mut tx = db.store.begin().await.unwrap();
    let taken = insert_taken_as_new(&mut tx, backend, &[&a, &c, &d], "i1").await;
    assert!(taken.unwrap().is_some());
    let e = tx.commit().await.unwrap_err();
    assert!(e.to_string().contains("was not new"), "{e}");
    for id in [&c.id, &d.id] {
        assert!(db.store.get(id).await.unwrap().is_none(), "{id}");
    }
}
