//! The store's own transactions, on both backends: a BEGIN that travels
//! with the first statement, and statements queued to go with the next one
//! or the COMMIT, must give what sqlx's transactions gave.

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

/// After a transaction that failed or was rolled back: the next one works
/// and commits only its own row, 2.
async fn the_next_commits(db: &TestStore, what: &str) {
    let mut tx = db.store.begin().await.unwrap();
    insert(&mut tx, 2).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(committed(db).await, [2], "{what}");
}

/// After a failed transaction: nothing of it committed, and the writer
/// connection marked before it is still the pool's (closed, the connection
/// would have taken its mark with it).
async fn rolled_back_on_its_connection(db: &TestStore) {
    assert!(committed(db).await.is_empty(), "{:?}", db.backend());
    assert!(
        testdb::writer_kept(&db.store).await,
        "the writer was replaced"
    );
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
        // SQLite counts the last INSERT, UPDATE or DELETE for a BEGIN: here
        // 3, then 1.
        assert_eq!(insert(&mut tx, 4).await.unwrap(), 1, "{:?}", db.backend());
        // A queued statement in front changes one row, the UPDATE two.
        tx.with_next(insert_query(5, "x")).await.unwrap();
        let two = sqlx::query("UPDATE probe SET checked_at = 'y' WHERE id <= 2")
            .execute(&mut tx)
            .await
            .unwrap();
        assert_eq!(two.rows_affected(), 2, "{:?}", db.backend());
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [1, 2, 3, 4, 5], "{:?}", db.backend());
    }
}

#[tokio::test]
async fn a_failed_transaction_commits_nothing_and_the_next_one_works() {
    for queued in [false, true] {
        for db in each().await {
            let what = format!("{:?}, the failing statement queued: {queued}", db.backend());
            let mut tx = db.store.begin().await.unwrap();
            insert(&mut tx, 1).await.unwrap();
            // A repeated key: the statement (and whatever rode with it) fails.
            match queued {
                true => {
                    let ran = tx.with_next(insert_query(1, "x")).await;
                    assert!(ran.is_err() || tx.commit().await.is_err(), "{what}");
                }
                false => {
                    insert(&mut tx, 1).await.unwrap_err();
                    drop(tx);
                }
            }
            assert!(committed(&db).await.is_empty(), "{what}");
            the_next_commits(&db, &what).await;
        }
    }
}

#[tokio::test]
async fn a_rollback_keeps_nothing() {
    for db in each().await {
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 1).await.unwrap();
        tx.rollback().await.unwrap();
        the_next_commits(&db, &format!("{:?}", db.backend())).await;
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

/// `INSERT` of `id` as a query to queue.
fn insert_query(id: i64, checked_at: &str) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments> {
    sqlx::query("INSERT INTO probe (id, checked_at) VALUES ($1, $2)")
        .bind(id)
        .bind(checked_at)
}

#[tokio::test]
async fn a_statement_queued_with_the_next_runs_in_front_of_it_unseen() {
    for db in each().await {
        let backend = db.backend();
        let mut tx = db.store.begin().await.unwrap();
        let ran = tx.with_next(insert_query(7, "q")).await.unwrap();
        assert_eq!(ran.is_none(), backend == Backend::Sqlite, "{backend:?}");
        // Each statement's parameters are its own: the queued one's first.
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, checked_at FROM probe WHERE id >= $1 AND checked_at = $2")
                .bind(1_i64)
                .bind("q")
                .fetch_all(&mut tx)
                .await
                .unwrap();
        assert_eq!(rows, [(7, "q".to_string())], "{backend:?}");
        // A queued read's rows and counts are not the next statement's.
        let read = sqlx::query("SELECT id FROM probe");
        tx.with_next(read).await.unwrap();
        tx.with_next(insert_query(8, "q")).await.unwrap();
        assert_eq!(insert(&mut tx, 9).await.unwrap(), 1, "{backend:?}");
        assert!(committed(&db).await.is_empty(), "{backend:?}");
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [7, 8, 9], "{backend:?}");
    }
}

/// A transaction that inserted `first` and queued the INSERT of `second`,
/// with what queuing it gave.
async fn with_one_queued(
    db: &TestStore,
    first: i64,
    second: i64,
) -> (Conn, Result<Option<AnyQueryResult>, StoreError>) {
    let mut tx = db.store.begin().await.unwrap();
    insert(&mut tx, first).await.unwrap();
    let queued = tx.with_next(insert_query(second, "x")).await;
    (tx, queued)
}

#[tokio::test]
async fn a_statement_queued_last_goes_with_the_commit_and_not_with_a_rollback() {
    for db in each().await {
        let backend = db.backend();
        let (tx, queued) = with_one_queued(&db, 1, 2).await;
        queued.unwrap();
        tx.rollback().await.unwrap();
        assert!(committed(&db).await.is_empty(), "{backend:?}");
        let (tx, queued) = with_one_queued(&db, 3, 4).await;
        queued.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [3, 4], "{backend:?}");
        // Queued alone, it carries the BEGIN as well.
        let mut tx = db.store.begin().await.unwrap();
        tx.with_next(insert_query(5, "x")).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [3, 4, 5], "{backend:?}");
        // The writer's one connection (SQLite) came back each time.
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 6).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_queued_statement_that_fails_fails_its_transaction() {
    for db in each().await {
        let backend = db.backend();
        // A repeated key.
        let (mut tx, queued) = with_one_queued(&db, 1, 1).await;
        let next = insert(&mut tx, 2).await;
        assert!(queued.is_err() || next.is_err(), "{backend:?}");
        drop(tx);
        assert!(committed(&db).await.is_empty(), "{backend:?}");
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 3).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(committed(&db).await, [3], "{backend:?}");
    }
}

#[tokio::test]
async fn a_failed_commit_rolls_back_and_keeps_its_connection() {
    for db in each().await {
        testdb::mark_writer(&db.store).await;
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 1).await.unwrap();
        let failed = match tx.with_next(insert_query(1, "again")).await {
            // SQLite queued it: it fails with the COMMIT it rides on.
            Ok(_) => tx.commit().await,
            // PostgreSQL ran it at once.
            Err(e) => Err(e),
        };
        assert!(failed.is_err(), "{:?}", db.backend());
        rolled_back_on_its_connection(&db).await;
        the_next_commits(&db, &format!("{:?}", db.backend())).await;
    }
}

#[tokio::test]
async fn commit_if_commits_what_succeeded_and_rolls_back_what_failed() {
    for db in each().await {
        testdb::mark_writer(&db.store).await;
        let mut tx = db.store.begin().await.unwrap();
        insert(&mut tx, 1).await.unwrap();
        let failed = insert(&mut tx, 1).await.map_err(StoreError::from);
        let ended = tx.commit_if(failed).await;
        assert!(ended.is_err(), "{:?}", db.backend());
        rolled_back_on_its_connection(&db).await;
        let mut tx = db.store.begin().await.unwrap();
        let written = insert(&mut tx, 2).await.map_err(StoreError::from);
        assert_eq!(tx.commit_if(written).await.unwrap(), 1);
        assert_eq!(committed(&db).await, [2], "{:?}", db.backend());
    }
}
