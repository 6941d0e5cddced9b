//! The budget and the learned durations on a real store: shared between
//! instances on PostgreSQL, kept across a restart on SQLite.

use std::sync::Arc;
use std::time::Duration;

use super::{StoreDurationLog, StoreLedger};
use crate::config::Config;
use crate::store::Store;
use crate::store::testdb::{self, scratch_database};
use crate::tracker::{AdaptivePolicy, Completion, IntegrationId, Learned, PollPolicy};
use crate::upstream::{Budget, Priority};

fn budget(store: &Store, daily: u32) -> Arc<Budget> {
    let mut config = Config::from_figment(Config::embedded()).unwrap().upstream;
    config.rate_limit_per_s = 1000;
    config.daily_budget = daily;
    config.signal_reserve = 0;
    config.budget_batch = 20;
    let ledger = Arc::new(StoreLedger::new(store.clone()));
    Arc::new(Budget::new(&config).with_ledger(ledger))
}

/// Start `n` requests at once; how many got through within `within`.
async fn granted(budget: &Arc<Budget>, n: usize, within: Duration) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                tokio::time::timeout(within, budget.acquire(Priority::Signal))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut count = 0;
    for task in tasks {
        count += usize::from(task.await.unwrap());
    }
    count
}

fn today() -> String {
    time::OffsetDateTime::now_utc().date().to_string()
}

#[tokio::test]
async fn two_instances_on_one_postgres_never_spend_more_than_the_daily_budget() {
    let database = scratch_database().await;
    let (one, two) = (
        Store::connect(database.url()).await.unwrap(),
        Store::connect(database.url()).await.unwrap(),
    );
    let (a, b) = (budget(&one, 50), budget(&two, 50));
    let within = Duration::from_secs(3);
    let (got_a, got_b) = tokio::join!(granted(&a, 40, within), granted(&b, 40, within));
    assert_eq!(got_a + got_b, 50, "{got_a} + {got_b}");
    assert_eq!(one.budget_spent(&today()).await.unwrap(), 50);
    // Each sees the whole deployment's count (as of its latest read).
    a.refresh().await.unwrap();
    b.refresh().await.unwrap();
    assert_eq!(a.snapshot().used_today, 50);
    assert_eq!(b.snapshot().remaining, 0);
}

#[tokio::test]
async fn what_an_instance_did_not_send_goes_back_at_a_clean_stop() {
    let db = testdb::postgres().await;
    let (a, b) = (budget(&db.store, 30), budget(&db.store, 30));
    assert_eq!(granted(&a, 3, Duration::from_secs(2)).await, 3);
    assert_eq!(db.store.budget_spent(&today()).await.unwrap(), 20);
    a.release_unused().await;
    assert_eq!(db.store.budget_spent(&today()).await.unwrap(), 3);
    let within = Duration::from_millis(1500);
    assert_eq!(granted(&b, 30, within).await, 27, "the rest of the day");
}

#[tokio::test]
async fn on_sqlite_the_budget_spent_before_a_restart_still_counts_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridge.db", dir.path().display());
    let within = Duration::from_millis(1500);
    // A run that spends 12 and stops cleanly.
    let store = Store::connect(&url).await.unwrap();
    let first = budget(&store, 30);
    assert_eq!(granted(&first, 12, within).await, 12);
    first.release_unused().await;
    store.close().await;
    // The next run starts from 12, spends 5 and crashes: the other 13 of
    // its batch stay counted, never sent.
    let store = Store::connect(&url).await.unwrap();
    let second = budget(&store, 30);
    assert_eq!(granted(&second, 5, within).await, 5);
    assert_eq!(second.snapshot().used_today, 17);
    drop(second);
    store.close().await;
    // The one after finds the day spent.
    let store = Store::connect(&url).await.unwrap();
    let third = budget(&store, 30);
    third.refresh().await.unwrap();
    assert_eq!(third.snapshot().used_today, 30, "known before any request");
    assert_eq!(granted(&third, 1, within).await, 0);
    assert_eq!(third.snapshot().used_today, 30);
}

fn completed(seconds: u64) -> Completion {
    Completion {
        length: Some(Duration::from_secs(seconds)),
        signalled: false,
        lag: None,
        integration: IntegrationId::SHARED,
    }
}

#[tokio::test]
async fn learned_lengths_are_shared_between_instances_and_loaded_at_start() {
    let db = testdb::postgres().await;
    let cfg = Config::from_figment(Config::embedded()).unwrap().polling;
    let window = cfg.learn_window;
    let instance = |id: &str| {
        let learned = Learned::default();
        let policy = AdaptivePolicy::sharing(&cfg, &learned);
        let log = StoreDurationLog::new(db.store.clone(), id.into());
        (learned, policy, log)
    };
    let (learned_a, policy_a, log_a) = instance("a");
    let (learned_b, policy_b, log_b) = instance("b");
    learned_a.load(&log_a, window).await.unwrap();
    learned_b.load(&log_b, window).await.unwrap();
    for seconds in [40, 50, 60] {
        policy_a.observe_completion(&completed(seconds));
    }
    // One batch from a; b learns it, a does not learn its own twice.
    assert_eq!(learned_a.exchange(&log_a, window).await.unwrap(), 0);
    assert_eq!(learned_b.exchange(&log_b, window).await.unwrap(), 3);
    assert_eq!((policy_a.learned(), policy_b.learned()), (3, 3));
    policy_b.observe_completion(&completed(70));
    learned_b.exchange(&log_b, window).await.unwrap();
    assert_eq!(learned_a.exchange(&log_a, window).await.unwrap(), 1);
    assert_eq!(policy_a.learned(), 4);
    // A new instance (or a restart) starts from the history, not the prior.
    let (learned_c, policy_c, log_c) = instance("c");
    assert!(learned_c.load(&log_c, window).await.unwrap());
    assert_eq!(policy_c.learned(), 4);
    assert_eq!(learned_c.exchange(&log_c, window).await.unwrap(), 0);
}
