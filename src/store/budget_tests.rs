//! The shared budget's and the learned durations' SQL, on both backends.

use std::sync::Arc;

use super::super::testdb;
use super::Reserved;

#[tokio::test]
async fn concurrent_reservers_never_take_the_day_past_the_cap() {
    for db in testdb::each().await {
        let backend = db.backend();
        let store = Arc::new(db.store.clone());
        // Eight reservers asking 7 at a time from a cap of 100: the grants
        // add up to exactly 100, the last one partial.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut got = 0;
                    loop {
                        let r = store.reserve_budget("2030-01-01", 7, 100).await.unwrap();
                        assert!(r.spent <= 100, "{r:?}");
                        if r.granted == 0 {
                            return got;
                        }
                        got += r.granted;
                    }
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        assert_eq!(total, 100, "{backend:?}");
        assert_eq!(store.budget_spent("2030-01-01").await.unwrap(), 100);
        // Another day is a budget of its own.
        assert_eq!(store.budget_spent("2030-01-02").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn a_lower_cap_leaves_the_rest_for_a_higher_one_and_release_gives_back() {
    for db in testdb::each().await {
        let backend = db.backend();
        let store = &db.store;
        let day = "2030-01-01";
        // Routine reservations stop at 25 of 30; signals may take the rest.
        let first = store.reserve_budget(day, 20, 25).await.unwrap();
        assert_eq!(
            first,
            Reserved {
                granted: 20,
                spent: 20
            },
            "{backend:?}"
        );
        let partial = store.reserve_budget(day, 20, 25).await.unwrap();
        assert_eq!(
            partial,
            Reserved {
                granted: 5,
                spent: 25
            },
            "{backend:?}"
        );
        let none = store.reserve_budget(day, 20, 25).await.unwrap();
        assert_eq!(
            none,
            Reserved {
                granted: 0,
                spent: 25
            },
            "{backend:?}"
        );
        let signal = store.reserve_budget(day, 20, 30).await.unwrap();
        assert_eq!(
            signal,
            Reserved {
                granted: 5,
                spent: 30
            },
            "{backend:?}"
        );
        // Returning the unused part of a batch makes it available again.
        store.release_budget(day, 12).await.unwrap();
        assert_eq!(store.budget_spent(day).await.unwrap(), 18, "{backend:?}");
        let again = store.reserve_budget(day, 20, 25).await.unwrap();
        assert_eq!(
            again,
            Reserved {
                granted: 7,
                spent: 25
            },
            "{backend:?}"
        );
        // A cap of zero grants nothing, even on a fresh day.
        let zero = store.reserve_budget("2030-01-02", 20, 0).await.unwrap();
        assert_eq!(zero.granted, 0, "{backend:?}");
    }
}

#[tokio::test]
async fn learned_durations_are_recorded_read_back_and_pruned() {
    for db in testdb::each().await {
        let backend = db.backend();
        let store = &db.store;
        let mine: Vec<f64> = (1..=5).map(f64::from).collect();
        store.record_durations("a", &mine).await.unwrap();
        store.record_durations("b", &[60.5, 61.5]).await.unwrap();
        let recent = store.recent_durations(3).await.unwrap();
        let seconds: Vec<f64> = recent.iter().map(|(_, s)| *s).collect();
        assert_eq!(seconds, [5.0, 60.5, 61.5], "{backend:?}: oldest first");
        // What others recorded after a cursor, never the caller's own.
        let first_seq = store.recent_durations(100).await.unwrap()[0].0;
        let theirs = store.durations_since(first_seq, "b", 100).await.unwrap();
        let seconds: Vec<f64> = theirs.iter().map(|(_, s)| *s).collect();
        assert_eq!(seconds, [2.0, 3.0, 4.0, 5.0], "{backend:?}");
        let theirs = store.durations_since(0, "a", 1).await.unwrap();
        assert_eq!(theirs.len(), 1, "{backend:?}: limited");
        assert_eq!(theirs[0].1, 60.5, "{backend:?}");
        // A batch larger than one statement's chunk.
        let many: Vec<f64> = (0..700).map(f64::from).collect();
        store.record_durations("a", &many).await.unwrap();
        assert_eq!(store.recent_durations(1000).await.unwrap().len(), 707);
        store.prune_durations(100).await.unwrap();
        let left = store.recent_durations(1000).await.unwrap();
        assert_eq!(left.len(), 100, "{backend:?}");
        assert_eq!(
            left.last().unwrap().1,
            699.0,
            "{backend:?}: the latest kept"
        );
    }
}
