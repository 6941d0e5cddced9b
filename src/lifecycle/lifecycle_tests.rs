//! Each transition, the actions it enqueues, and the no-op once a transfer
//! left TRACKING, on a real SQLite store.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::config::Config;

struct Fixture {
    lifecycle: Lifecycle,
    waiters: Arc<Waiters>,
    outbox_wake: Arc<Notify>,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    let config = Config::from_figment(Config::embedded()).unwrap();
    let (waiters, outbox_wake) = (Waiters::new(10), Arc::new(Notify::new()));
    let lifecycle = Lifecycle::new(store, config.router(), outbox_wake.clone(), waiters.clone());
    Fixture {
        lifecycle,
        waiters,
        outbox_wake,
        _dir: dir,
    }
}

fn new(id: &str) -> NewTransfer {
    NewTransfer {
        id: TransferId::parse(id).unwrap(),
        callback_url: None,
        metadata: BTreeMap::new(),
        request_json: "sha256:x".into(),
        upstream_status: None,
        upstream: None,
        integration: None,
        return_signal: None,
    }
}

fn resource(id: &str, status: &str, transfer_type: &str) -> (CallTransfer, Value) {
    let raw = json!({"id": id, "externalConversationId": "conv", "status": status,
        "createdAt": "2030-01-01T00:00:00Z", "type": "SIP",
        "sip": {"returnTransferType": "REFER", "returnUri": "sip:ivr@pbx.example.com"},
        "outputContext": {"transferType": transfer_type, "currentTaskName": "billing"}});
    (serde_json::from_value(raw.clone()).unwrap(), raw)
}

async fn names(f: &Fixture, id: &str) -> Vec<String> {
    let id = TransferId::parse(id).unwrap();
    let actions = f.lifecycle.actions(&id).await.unwrap();
    let mut names: Vec<String> = actions
        .into_iter()
        .map(|a| format!("{}:{}", a.kind, a.id))
        .collect();
    names.sort();
    names
}

fn ended(state: BridgeState, seen: Option<Seen<'_>>) -> Finish<'_> {
    Finish {
        state,
        reason: None,
        seen,
        polls: Some(3),
    }
}

#[tokio::test]
async fn registration_enqueues_its_audit_record_once() {
    let f = fixture().await;
    let first = f.lifecycle.register(&new("t1"), None).await.unwrap();
    assert!(matches!(first, Registered::Created(ref t) if t.state == BridgeState::Tracking));
    let again = f.lifecycle.register(&new("t1"), None).await.unwrap();
    assert!(matches!(again, Registered::Identical(_)));
    assert_eq!(names(&f, "t1").await, ["audit:t1.audit.tracking"]);
}

#[tokio::test]
async fn an_upstream_status_is_recorded_without_actions() {
    let f = fixture().await;
    f.lifecycle.register(&new("t1"), None).await.unwrap();
    let (ongoing, raw) = resource("t1", "ONGOING", "AGENT");
    let id = TransferId::parse("t1").unwrap();
    let seen = Seen {
        resource: &ongoing,
        raw: &raw,
    };
    f.lifecycle.upstream_seen(&id, seen, 2).await.unwrap();
    assert_eq!(names(&f, "t1").await.len(), 1);
    let stored = f.lifecycle.store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.upstream_status.as_deref(), Some("ONGOING"));
    assert_eq!((stored.state, stored.polls), (BridgeState::Tracking, 2));
}

#[tokio::test]
async fn completion_enqueues_its_actions_wakes_waiters_and_happens_once() {
    let f = fixture().await;
    f.lifecycle.register(&new("t1"), None).await.unwrap();
    let id = TransferId::parse("t1").unwrap();
    let mut waiter = f.waiters.hold(&id).unwrap();
    let (done, raw) = resource("t1", "COMPLETED", "SYSTEM");
    let seen = Some(Seen {
        resource: &done,
        raw: &raw,
    });
    let finished = f
        .lifecycle
        .finish(&id, ended(BridgeState::Completed, seen))
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
    let f = fixture().await;
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
    let f = fixture().await;
    let (done, raw) = resource("r1", "COMPLETED", "AGENT");
    let seen = Seen {
        resource: &done,
        raw: &raw,
    };
    let first = f.lifecycle.sip_return(&new("r1"), seen).await.unwrap();
    assert_eq!(first, Returned::Created);
    let after_first = names(&f, "r1").await;
    assert_eq!(after_first, ["agent:r1.agent", "audit:r1.audit.completed"]);
    let again = f.lifecycle.sip_return(&new("r1"), seen).await.unwrap();
    assert_eq!(again, Returned::Existing);
    assert_eq!(names(&f, "r1").await, after_first);
}
