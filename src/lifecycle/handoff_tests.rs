//! Actions committed with a state change go to this instance's dispatcher
//! already claimed, so no other path delivers them meanwhile; with no room
//! in its queue they wait unclaimed and the dispatcher is woken instead.

use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::tests::new;
use super::*;
use crate::config::Config;
use crate::outbox::repo;
use crate::store::testdb;

fn lifecycle(store: &Store, handoff: Handoff) -> Lifecycle {
    let config = Config::from_figment(Config::embedded()).unwrap();
    let waiters = Waiters::new(10);
    Lifecycle::new(
        store.clone(),
        config.router(),
        handoff,
        waiters,
        "i1".into(),
    )
}

/// A lifecycle handing over to a queue with room for `batches`, the
/// dispatcher's wake-up, and the queue.
pub(super) fn handing_over(
    store: &Store,
    batches: usize,
) -> (Lifecycle, Arc<Notify>, mpsc::Receiver<crate::outbox::Fresh>) {
    let wake = Arc::new(Notify::new());
    let lease = Duration::from_secs(60);
    let (handoff, fresh) = Handoff::channel(wake.clone(), "i1".into(), lease, batches);
    (lifecycle(store, handoff), wake, fresh)
}

/// `(claimed_by, attempts)` of an action.
async fn claim_of(store: &Store, id: &str) -> (Option<String>, i64) {
    let row: (Option<String>, i64) =
        sqlx::query_as("SELECT claimed_by, attempts FROM actions WHERE id = $1")
            .bind(id)
            .fetch_one(store.reader())
            .await
            .unwrap();
    row
}

#[tokio::test]
async fn committed_actions_are_claimed_and_handed_over() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (lifecycle, _wake, mut fresh) = handing_over(&db.store, 8);
        lifecycle.register(&new("t1"), None).await.unwrap();
        let batch = fresh.try_recv().expect("the registration's batch");
        let ids: Vec<_> = batch.claimed.iter().map(|c| c.action.id.as_str()).collect();
        assert_eq!(ids, ["t1.audit.tracking"], "{backend:?}");
        assert_eq!(batch.claimed[0].attempts, 1);
        let claim = claim_of(&db.store, "t1.audit.tracking").await;
        assert_eq!(claim, (Some("i1".into()), 1), "{backend:?}");
        // Neither this instance's poll nor another instance takes it.
        for instance in ["i1", "i2"] {
            let due = repo::claim_due(&db.store, instance, 60_000, 10, true).await;
            assert!(due.unwrap().is_empty(), "{backend:?}: {instance}");
        }
        let id = TransferId::parse("t1").unwrap();
        let cancel = Finish {
            state: BridgeState::Cancelled,
            reason: Some("hung up"),
            seen: None,
            polls: None,
            known: None,
        };
        lifecycle.finish(&id, cancel).await.unwrap();
        let batch = fresh.try_recv().expect("the cancellation's batch");
        assert_eq!(batch.claimed[0].action.id, "t1.audit.cancelled");
        let unknown = TransferId::parse("nobody").unwrap();
        let finished = lifecycle.finish(&unknown, cancel).await.unwrap();
        assert!(matches!(finished, Finished::Unknown), "{backend:?}");
        assert!(
            fresh.try_recv().is_err(),
            "{backend:?}: nothing for an unknown id"
        );
    }
}

#[tokio::test]
async fn with_no_room_actions_wait_unclaimed_and_the_dispatcher_is_woken() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (lifecycle, wake, _fresh) = handing_over(&db.store, 1);
        lifecycle.register(&new("t1"), None).await.unwrap();
        lifecycle.register(&new("t2"), None).await.unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        assert!(woken.is_ok(), "{backend:?}: the dispatcher is woken");
        assert_eq!(claim_of(&db.store, "t2.audit.tracking").await, (None, 0));
        let due = repo::claim_due(&db.store, "i1", 60_000, 10, true).await;
        let due: Vec<_> = due.unwrap().into_iter().map(|c| c.action.id).collect();
        assert_eq!(due, ["t2.audit.tracking"], "{backend:?}");
    }
}
