//! The store's own transactions, on both backends: a BEGIN that travels
//! with the first statement and a COMMIT with the last must give what
//! sqlx's transactions gave.

use super::*;
use crate::store::testdb::{self, TestStore};

/// Each store with a table of its own for these tests.
async fn each() -> [TestStore; 2] {
    let dbs = testdb::each().await;
    for db in &dbs {
        sqlx::query("CREATE TABLE probe (id BIGINT PRIMARY KEY, checked_at TEXT NOT NULL)")
            .execute(db.store.pool())
            .await
            .unwrap();
    }
    dbs
}

async fn insert(conn: &mut Conn, id: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("INSERT INTO probe (id, checked_at) VALUES ($1, 'x')")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The ids a fresh connection sees (what is committed).
async fn committed(db: &TestStore) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM probe ORDER BY id")
        .fetch_all(db.store.reader())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_read_that_carries_the_begin_gets_its_row() {
    for db in each().await {
        let mut tx = db.store.begin().await.unwrap();
        // The driver's own `fetch_optional` would see the BEGIN's result
        // first and find no row.
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM probe")
            .fetch_one(&mut tx)
            .await
            .unwrap();
        assert_eq!(count, 0, "{:?}", db.backend());
        insert(&mut tx, 1).await.unwrap();
        assert!(committed(&db).await.is_empty(), "{:?}", db.backend());
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [1], "{:?}", db.backend());
    }
}

#[tokio::test]
async fn counts_of_changed_rows_are_the_statements_own() {
    for db in each().await {
        let mut plain = db.store.writer().await.unwrap();
        let three = "INSERT INTO probe (id, checked_at) VALUES (1, 'x'), (2, 'x'), (3, 'x')";
        sqlx::query(three).execute(&mut plain).await.unwrap();
        drop(plain);
        let mut tx = db.store.begin().await.unwrap();
        // SQLite counts the last INSERT, UPDATE or DELETE for a BEGIN or a
        // COMMIT: here 3, then 1.
        assert_eq!(insert(&mut tx, 4).await.unwrap(), 1, "{:?}", db.backend());
        tx.commit_with_next();
        let two = sqlx::query("UPDATE probe SET checked_at = 'y' WHERE id <= 2")
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(two.rows_affected(), 2, "{:?}", db.backend());
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [1, 2, 3, 4], "{:?}", db.backend());
    }
}

#[tokio::test]
async fn a_statement_after_the_one_carrying_the_commit_is_refused() {
    let [db, _] = each().await;
    let mut tx = db.store.begin().await.unwrap();
    insert(&mut tx, 1).await.unwrap();
    tx.commit_with_next();
    insert(&mut tx, 2).await.unwrap();
    // Committed already, before `commit`: the COMMIT went with the INSERT.
    assert_eq!(committed(&db).await, [1, 2]);
    let e = insert(&mut tx, 3).await.unwrap_err();
    assert!(
        e.to_string().contains("after its transaction's COMMIT"),
        "{e}"
    );
    tx.commit().await.unwrap();
    assert_eq!(committed(&db).await, [1, 2]);
}

#[tokio::test]
async fn a_failed_transaction_commits_nothing_and_the_next_one_works() {
    for commit_with_last in [false, true] {
        for db in each().await {
            let what = format!(
                "{:?}, COMMIT with the last: {commit_with_last}",
                db.backend()
            );
            let mut tx = db.store.begin().await.unwrap();
            insert(&mut tx, 1).await.unwrap();
            if commit_with_last {
                tx.commit_with_next();
            }
            // A repeated key: the statement (and whatever rode with it) fails.
            insert(&mut tx, 1).await.unwrap_err();
            drop(tx);
            assert!(committed(&db).await.is_empty(), "{what}");
            let mut tx = db.store.begin().await.unwrap();
            insert(&mut tx, 2).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(committed(&db).await, [2], "{what}");
        }
    }
}

#[tokio::test]
async fn a_rollback_keeps_nothing() {
    for db in each().await {
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 1).await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 2).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [2], "{:?}", db.backend());
    }
}

#[tokio::test]
async fn a_transaction_with_no_statement_commits_nothing_and_frees_its_connection() {
    for db in each().await {
        db.store.begin().await.unwrap().commit().await.unwrap();
        drop(db.store.begin().await.unwrap());
        // The writer pool holds one connection on SQLite: it came back.
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 1).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [1], "{:?}", db.backend());
    }
}
