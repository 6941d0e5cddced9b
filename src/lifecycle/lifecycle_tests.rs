//! Each transition, the actions it enqueues, and the no-op once a transfer
//! left TRACKING, on a real store of each backend (SQLite and PostgreSQL).

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Row as _;
use tokio::sync::Notify;

use super::*;
use crate::config::Config;
use crate::store::{Registered, testdb};

pub(super) struct Fixture {
    pub(super) lifecycle: Lifecycle,
    waiters: Arc<Waiters>,
    outbox_wake: Arc<Notify>,
    _db: testdb::TestStore,
}

/// One fixture per backend.
pub(super) async fn fixtures() -> Vec<Fixture> {
    let mut all = Vec::new();
    for db in testdb::each().await {
        all.push(fixture(db));
    }
    all
}

fn fixture(db: testdb::TestStore) -> Fixture {
    let store = db.store.clone();
    let config = Config::from_figment(Config::embedded()).unwrap();
    let (waiters, outbox_wake) = (Waiters::new(10), Arc::new(Notify::new()));
    let lifecycle = Lifecycle::new(
        store,
        config.router(),
        crate::outbox::Handoff::wake_only(outbox_wake.clone()),
        waiters.clone(),
        "i1".into(),
    );
    Fixture {
        lifecycle,
        waiters,
        outbox_wake,
        _db: db,
    }
}

/// A plain registration of `id` (also the hand-off tests').
pub(super) use crate::store::testdb::plain as new;

pub(super) fn resource(id: &str, status: &str, transfer_type: &str) -> (CallTransfer, Value) {
    let raw = json!({"id": id, "externalConversationId": "conv", "status": status,
        "createdAt": "2030-01-01T00:00:00Z", "type": "SIP",
        "sip": {"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"},
        "outputContext": {"transferType": transfer_type, "currentTaskName": "billing"}});
    (serde_json::from_value(raw.clone()).unwrap(), raw)
}

/// [`resource`], as a poll or a return hands it to an ending.
pub(super) fn fetched(id: &str, status: &str, transfer_type: &str) -> Arc<Fetched> {
    let (resource, raw) = self::resource(id, status, transfer_type);
    Arc::new(Fetched::new(resource, raw))
}

pub(super) async fn names(f: &Fixture, id: &str) -> Vec<String> {
    let id = TransferId::parse(id).unwrap();
    let actions = f.lifecycle.actions(&id).await.unwrap();
    let mut names: Vec<String> = actions
        .into_iter()
        .map(|a| format!("{}:{}", a.kind, a.id))
        .collect();
    names.sort();
    names
}

pub(super) fn ended(state: BridgeState, seen: Option<&Arc<Fetched>>) -> Finish<'_> {
    Finish {
        state,
        reason: None,
        seen,
        polls: Some(3),
        known: None,
    }
}

#[tokio::test]
async fn registration_enqueues_its_audit_record_once() {
    for f in fixtures().await {
        registration_enqueues_its_audit_record_once_on(f).await;
    }
}

async fn registration_enqueues_its_audit_record_once_on(f: Fixture) {
    let first = f.lifecycle.register(&new("t1"), None).await.unwrap();
    assert!(matches!(first, Registered::Created(ref t) if t.state == BridgeState::Tracking));
    let again = f.lifecycle.register(&new("t1"), None).await.unwrap();
    assert!(matches!(again, Registered::Identical(_)));
    assert_eq!(names(&f, "t1").await, ["audit:t1.audit.tracking"]);
}

#[tokio::test]
async fn an_upstream_status_is_recorded_without_actions() {
    for f in fixtures().await {
        an_upstream_status_is_recorded_without_actions_on(f).await;
    }
}

async fn an_upstream_status_is_recorded_without_actions_on(f: Fixture) {
    f.lifecycle.register(&new("t1"), None).await.unwrap();
    let (ongoing, raw) = resource("t1", "ONGOING", "AGENT");
    let id = TransferId::parse("t1").unwrap();
    let seen = Seen {
        resource: &ongoing,
        raw: &raw.to_string(),
    };
    f.lifecycle.upstream_seen(&id, seen, 2).await.unwrap();
    assert_eq!(names(&f, "t1").await.len(), 1);
    let stored = f.lifecycle.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.upstream_status.as_deref(), Some("ONGOING"));
    assert_eq!((stored.state, stored.polls), (BridgeState::Tracking, 2));
}

#[tokio::test]
async fn completion_enqueues_its_actions_wakes_waiters_and_happens_once() {
    for f in fixtures().await {
        completion_enqueues_its_actions_wakes_waiters_and_happens_once_on(f).await;
    }
}

async fn completion_enqueues_its_actions_wakes_waiters_and_happens_once_on(f: Fixture) {
    f.lifecycle.register(&new("t1"), None).await.unwrap();
    let id = TransferId::parse("t1").unwrap();
    let mut waiter = f.waiters.hold(&id).unwrap();
    let seen = fetched("t1", "COMPLETED", "SYSTEM");
    let finished = f
        .lifecycle
        .finish(&id, ended(BridgeState::Completed, Some(&seen)))
        .await
        .unwrap();
    let Finished::Changed { transfer, actions } = finished else {
        panic!("{finished:?}")
    };
    assert_eq!((transfer.state, actions), (BridgeState::Completed, 2));
    assert!(transfer.sip.is_some(), "the SYSTEM route makes a REFER");
    assert!(
        tokio::time::timeout(Duration::from_secs(1), waiter.changed())
            .await
            .is_ok()
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(1), f.outbox_wake.notified())
            .await
            .is_ok()
    );
    let all = [
        "audit:t1.audit.completed",
        "audit:t1.audit.tracking",
        "pbx:t1.pbx",
    ];
    assert_eq!(names(&f, "t1").await, all);
    // Once ended, another change is a no-op: no new state, no new actions.
    let cancel = Finish {
        reason: Some("late"),
        ..ended(BridgeState::Cancelled, None)
    };
    let again = f.lifecycle.finish(&id, cancel).await.unwrap();
    assert!(matches!(again, Finished::AlreadyEnded(ref t) if t.state == BridgeState::Completed));
    assert_eq!(names(&f, "t1").await, all);
}

#[tokio::test]
async fn cancelled_failed_and_expired_enqueue_their_audit_records() {
    for f in fixtures().await {
        cancelled_failed_and_expired_enqueue_their_audit_records_on(f).await;
    }
}

async fn cancelled_failed_and_expired_enqueue_their_audit_records_on(f: Fixture) {
    for (id, state) in [
        ("c1", BridgeState::Cancelled),
        ("f1", BridgeState::Failed),
        ("e1", BridgeState::Expired),
    ] {
        f.lifecycle.register(&new(id), None).await.unwrap();
        let change = Finish {
            reason: Some("why"),
            ..ended(state, None)
        };
        let tid = TransferId::parse(id).unwrap();
        let finished = f.lifecycle.finish(&tid, change).await.unwrap();
        assert!(
            matches!(finished, Finished::Changed { actions: 1, .. }),
            "{id}"
        );
        let audit = format!("audit:{id}.audit.{}", state.event_suffix());
        assert!(names(&f, id).await.contains(&audit), "{id}");
        let stored = f.lifecycle.store.get(&tid).await.unwrap().unwrap();
        assert_eq!(
            (stored.state, stored.reason.as_deref()),
            (state, Some("why"))
        );
    }
    let unknown = TransferId::parse("nobody").unwrap();
    let finished = f
        .lifecycle
        .finish(&unknown, ended(BridgeState::Failed, None))
        .await;
    assert!(matches!(finished.unwrap(), Finished::Unknown));
}

#[tokio::test]
async fn a_sip_return_registers_and_completes_in_one_go_and_repeats_change_nothing() {
    for f in fixtures().await {
        a_sip_return_registers_and_completes_in_one_go_and_repeats_change_nothing_on(f).await;
    }
}

async fn a_sip_return_registers_and_completes_in_one_go_and_repeats_change_nothing_on(f: Fixture) {
    let seen = fetched("r1", "COMPLETED", "AGENT");
    let first = f
        .lifecycle
        .sip_return(&new("r1"), seen.clone())
        .await
        .unwrap();
    assert_eq!(first.returned, Returned::Created);
    let after_first = names(&f, "r1").await;
    assert_eq!(after_first, ["agent:r1.agent", "audit:r1.audit.completed"]);
    let again = f.lifecycle.sip_return(&new("r1"), seen).await.unwrap();
    assert_eq!(again.returned, Returned::Existing);
    assert!(again.created.is_none(), "a repeat is read, not told");
    assert_eq!(names(&f, "r1").await, after_first);
}

#[tokio::test]
async fn one_read_gives_what_the_two_reads_give() {
    for f in fixtures().await {
        one_read_gives_what_the_two_reads_give_on(f).await;
    }
}

async fn one_read_gives_what_the_two_reads_give_on(f: Fixture) {
    let debug = |views: &[ActionView]| format!("{views:?}");
    let id = TransferId::parse("t1").unwrap();
    let (registered, enqueued) = f.lifecycle.register_viewed(&new("t1"), None).await.unwrap();
    assert!(matches!(registered, Registered::Created(_)));
    let read = f.lifecycle.actions(&id).await.unwrap();
    assert_eq!(
        debug(&enqueued),
        debug(&read),
        "the commit's view is the read's"
    );
    let (again, none) = f.lifecycle.register_viewed(&new("t1"), None).await.unwrap();
    assert!(matches!(again, Registered::Identical(_)) && none.is_empty());

    let seen = fetched("t1", "COMPLETED", "SYSTEM");
    let finish = ended(BridgeState::Completed, Some(&seen));
    f.lifecycle.finish(&id, finish).await.unwrap();
    let (transfer, actions) = f.lifecycle.with_actions(&id).await.unwrap().unwrap();
    let stored = f.lifecycle.store.get(&id).await.unwrap().unwrap();
    assert_eq!(format!("{transfer:?}"), format!("{stored:?}"));
    assert_eq!(actions.len(), 3);
    assert_eq!(
        debug(&actions),
        debug(&f.lifecycle.actions(&id).await.unwrap())
    );

    // A transfer without actions still reads (the LEFT JOIN's one row).
    let mut tx = f.lifecycle.store.begin().await.unwrap();
    store::register(&mut tx, f.lifecycle.store.backend(), &new("bare"), "i1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let bare = TransferId::parse("bare").unwrap();
    let (transfer, actions) = f.lifecycle.with_actions(&bare).await.unwrap().unwrap();
    assert_eq!((transfer.id, actions.len()), (bare, 0));
    let unknown = TransferId::parse("nobody").unwrap();
    assert!(f.lifecycle.with_actions(&unknown).await.unwrap().is_none());
}

#[tokio::test]
async fn a_transfers_actions_are_its_own_when_another_id_extends_it_with_a_dot() {
    for f in fixtures().await {
        a_transfers_actions_are_its_own_on(f).await;
    }
}

/// On SQLite a transfer's actions are found by the range of action ids
/// that start with `<id>.`: `a.b`'s and `a.`'s fall inside `a`'s range and
/// must still not be `a`'s.
async fn a_transfers_actions_are_its_own_on(f: Fixture) {
    for id in ["a", "a.b", "a.", "a-", "a.b.c", "b"] {
        f.lifecycle.register(&new(id), None).await.unwrap();
    }
    assert_eq!(names(&f, "a").await, ["audit:a.audit.tracking"]);
    assert_eq!(names(&f, "a.b").await, ["audit:a.b.audit.tracking"]);
    assert_eq!(names(&f, "a.").await, ["audit:a..audit.tracking"]);
    let a = TransferId::parse("a").unwrap();
    let (_, actions) = f.lifecycle.with_actions(&a).await.unwrap().unwrap();
    let ids: Vec<_> = actions.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["a.audit.tracking"]);
    assert_eq!(f.lifecycle.redeliver(&a).await.unwrap(), 1);
    if f.lifecycle.store.backend() == Backend::Sqlite {
        // The lookup's shape reads the primary key's index, and the index
        // on transfer_id is gone.
        let reader = f.lifecycle.store.reader();
        let plan = sqlx::query(
            "EXPLAIN QUERY PLAN SELECT id FROM actions \
             WHERE id >= $1 || '.' AND id < $1 || '/' AND transfer_id = $1",
        )
        .bind("a")
        .fetch_all(reader)
        .await
        .unwrap();
        let plan: Vec<String> = plan.iter().map(|r| r.get("detail")).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("sqlite_autoindex_actions_1")),
            "{plan:?}"
        );
        let gone: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'actions_transfer'")
                .fetch_all(reader)
                .await
                .unwrap();
        assert!(gone.is_empty(), "{gone:?}");
    }
}

#[tokio::test]
async fn reads_that_arrive_together_each_get_their_own_transfer() {
    for f in fixtures().await {
        reads_together_on(f).await;
    }
}

/// Reads share statements (`outbox::ViewReads`): each caller still gets
/// exactly what a read of its own gives, with ids that extend one another,
/// an unknown one, the same transfer twice in one batch, and a completed
/// transfer's several actions in their order.
async fn reads_together_on(f: Fixture) {
    let ids = ["a", "a.b", "a.", "b", "nobody", "a", "b", "a.b"];
    for id in &ids[..4] {
        f.lifecycle.register(&new(id), None).await.unwrap();
    }
    let seen = fetched("a.b", "COMPLETED", "AGENT");
    let a_b = TransferId::parse("a.b").unwrap();
    let completed = ended(BridgeState::Completed, Some(&seen));
    f.lifecycle.finish(&a_b, completed).await.unwrap();
    let ids: Vec<TransferId> = ids.iter().map(|i| TransferId::parse(i).unwrap()).collect();
    let store = &f.lifecycle.store;
    let mut reader = store.reader().acquire().await.unwrap();
    let mut alone = Vec::new();
    for id in &ids {
        let viewed = outbox::with_transfer(&mut reader, store.backend(), id).await;
        alone.push(format!("{:?}", viewed.unwrap()));
    }
    assert!(alone[0].contains("a.audit.tracking") && alone[4] == "None");
    assert!(alone[1].matches("ActionView").count() >= 3, "{}", alone[1]);
    let together: Vec<&str> = ids.iter().map(TransferId::as_str).collect();
    let found = outbox::with_transfers(&mut reader, store.backend(), &together)
        .await
        .unwrap();
    assert_eq!(found.len(), 4, "{found:?}");
    for (id, alone) in together.iter().zip(&alone) {
        assert_eq!(&format!("{:?}", found.get(*id)), alone, "{id}");
    }
    // Many at once through the lifecycle, so batches form.
    let reads = (0..8).flat_map(|_| ids.iter().map(|id| f.lifecycle.with_actions(id)));
    let read = futures::future::join_all(reads).await;
    for (result, alone) in read.into_iter().zip(alone.iter().cycle()) {
        assert_eq!(&format!("{:?}", result.unwrap()), alone);
    }
}

#[tokio::test]
async fn reads_together_on_a_closed_store_each_fail_without_hanging() {
    for f in fixtures().await {
        f.lifecycle.register(&new("t1"), None).await.unwrap();
        f.lifecycle.store.close().await;
        let id = TransferId::parse("t1").unwrap();
        let reads = (0..8).map(|_| f.lifecycle.with_actions(&id));
        let read = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(reads))
            .await
            .expect("every read answered");
        assert!(read.iter().all(Result::is_err), "{read:?}");
    }
}
