//! The store's SQL on both backends: the same tests, the same answers.

use std::collections::BTreeMap;

use serde_json::json;

use super::testdb::{self, TRICKY, TestStore, tricky_sip};
use super::*;
use crate::transfer::{BridgeState, Transfer, TransferId};

fn new(id: &str, body: &str) -> NewTransfer {
    NewTransfer {
        id: TransferId::parse(id).unwrap(),
        callback_url: Some("https://ivr.example.com/hook".into()),
        metadata: BTreeMap::from([("queue".into(), "billing".into())]),
        request_json: body.into(),
        upstream_status: Some("ACTIVE".into()),
        upstream: Some(json!({"id": id, "status": "ACTIVE"})),
        integration: Some("tok-0123abcd".into()),
        return_signal: Some(true),
    }
}

/// A registration with [`TRICKY`] as its body and in its metadata, and
/// `upstream` as what the upstream said.
fn tricky(id: &str, upstream: serde_json::Value) -> NewTransfer {
    let mut n = new(id, TRICKY);
    n.metadata.insert(TRICKY.into(), TRICKY.into());
    n.upstream = Some(upstream);
    n
}

async fn register_one(db: &TestStore, n: &NewTransfer) -> Registered {
    let mut tx = db.store.begin().await.unwrap();
    let registered = register(&mut tx, db.backend(), n, "i1").await.unwrap();
    tx.commit().await.unwrap();
    registered
}

#[tokio::test]
async fn registration_tells_new_identical_and_conflicting_apart() {
    for db in testdb::each().await {
        let backend = db.backend();
        let Registered::Created(t) = register_one(&db, &new("t1", "a")).await else {
            panic!("{backend:?}: first registration must create");
        };
        assert_eq!(t.state, BridgeState::Tracking, "{backend:?}");
        assert_eq!(t.return_signal, Some(true), "{backend:?}");
        assert_eq!(t.integration.as_deref(), Some("tok-0123abcd"));
        assert_eq!(t.metadata["queue"], "billing");
        assert!(matches!(
            register_one(&db, &new("t1", "a")).await,
            Registered::Identical(_)
        ));
        assert!(matches!(
            register_one(&db, &new("t1", "b")).await,
            Registered::Conflict(_)
        ));
    }
}

#[tokio::test]
async fn a_transfer_finishes_once_and_keeps_what_the_upstream_said() {
    for db in testdb::each().await {
        let backend = db.backend();
        register_one(&db, &new("t1", "a")).await;
        let id = TransferId::parse("t1").unwrap();
        let raw = json!({"id": "t1", "status": "ONGOING"});
        let mut conn = db.store.writer().await.unwrap();
        let seen = Upstream::new(&id, "ONGOING", &raw.to_string(), 4);
        record_upstream(&mut conn, backend, [&seen]).await.unwrap();
        let mut cancel = Ending::new(&id, BridgeState::Cancelled, Some("why".into()));
        cancel.polls = Some(5);
        end_many(&mut conn, backend, &[cancel], &now_text())
            .await
            .unwrap();
        let fail = Ending::new(&id, BridgeState::Failed, None);
        let again = end_many(&mut conn, backend, &[fail], &now_text()).await;
        assert!(again.is_err(), "{backend:?}: a second finish is refused");
        let stored = db.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.state, BridgeState::Cancelled, "{backend:?}");
        assert_eq!((stored.polls, stored.reason.as_deref()), (5, Some("why")));
        assert_eq!(stored.upstream, Some(raw), "{backend:?}");
        assert_eq!(stored.upstream_status.as_deref(), Some("ONGOING"));
    }
}

#[tokio::test]
async fn statuses_of_many_transfers_are_recorded_in_one_call_and_a_repeat_keeps_the_later() {
    for db in testdb::each().await {
        let backend = db.backend();
        let ids: Vec<_> = (0..3)
            .map(|i| TransferId::parse(&format!("t{i}")).unwrap())
            .collect();
        for id in &ids {
            register_one(&db, &new(id.as_str(), "a")).await;
        }
        let raw = |id: &TransferId, status: &str| json!({"id": id.as_str(), "status": status});
        let rows = [
            Upstream::new(&ids[0], "ONGOING", &raw(&ids[0], "ONGOING").to_string(), 2),
            Upstream::new(&ids[1], "ONGOING", &raw(&ids[1], "ONGOING").to_string(), 3),
            Upstream::new(&ids[0], "ACTIVE", &raw(&ids[0], "ACTIVE").to_string(), 5),
        ];
        let mut conn = db.store.writer().await.unwrap();
        record_upstream(&mut conn, backend, &rows).await.unwrap();
        let got = |t: &Transfer| (t.upstream_status.clone(), t.polls, t.upstream.clone());
        let t0 = db.store.get(&ids[0]).await.unwrap().unwrap();
        let later = (Some("ACTIVE".into()), 5, Some(raw(&ids[0], "ACTIVE")));
        assert_eq!(got(&t0), later, "{backend:?}: the later row of t0");
        let t1 = db.store.get(&ids[1]).await.unwrap().unwrap();
        let t1_row = (Some("ONGOING".into()), 3, Some(raw(&ids[1], "ONGOING")));
        assert_eq!(got(&t1), t1_row, "{backend:?}");
        let t2 = db.store.get(&ids[2]).await.unwrap().unwrap();
        assert_eq!(
            t2.upstream_status.as_deref(),
            Some("ACTIVE"),
            "{backend:?}: untouched"
        );
        assert_eq!(t2.state, BridgeState::Tracking, "{backend:?}");
    }
}

#[tokio::test]
async fn listing_filters_by_state_and_pages_with_a_cursor() {
    for db in testdb::each().await {
        let backend = db.backend();
        for i in 0..5 {
            register_one(&db, &new(&format!("t{i}"), "a")).await;
        }
        let mut conn = db.store.writer().await.unwrap();
        let id = TransferId::parse("t2").unwrap();
        let expire = Ending::new(&id, BridgeState::Expired, None);
        end_many(&mut conn, backend, &[expire], &now_text())
            .await
            .unwrap();
        let first = db
            .store
            .list(Some(BridgeState::Tracking), 3, None)
            .await
            .unwrap();
        let ids: Vec<_> = first.items.iter().map(|t| t.id.to_string()).collect();
        assert_eq!(ids, ["t0", "t1", "t3"], "{backend:?}");
        let next = db
            .store
            .list(Some(BridgeState::Tracking), 3, first.next_cursor)
            .await;
        let rest: Vec<_> = next
            .unwrap()
            .items
            .iter()
            .map(|t| t.id.to_string())
            .collect();
        assert_eq!(rest, ["t4"], "{backend:?}");
        let all = db.store.list(None, 10, None).await.unwrap();
        assert_eq!((all.items.len(), all.next_cursor), (5, None), "{backend:?}");
        assert_eq!(db.store.tracking().await.unwrap().len(), 4, "{backend:?}");
    }
}

#[tokio::test]
async fn readiness_commits_a_write_and_migrations_rerun_cleanly() {
    for db in testdb::each().await {
        db.store.check_writable().await.unwrap();
        db.store.check_writable().await.unwrap();
    }
    let db = testdb::sqlite().await;
    register_one(&db, &new("t1", "a")).await;
    let url = db.store.pool().connect_options().database_url.to_string();
    let reopened = Store::connect(&url).await.unwrap();
    let id = TransferId::parse("t1").unwrap();
    assert!(reopened.get(&id).await.unwrap().is_some());
}

#[test]
fn store_urls_name_their_backend() {
    assert_eq!(Backend::of_url("sqlite://data/b.db"), Some(Backend::Sqlite));
    assert_eq!(Backend::of_url("sqlite:b.db"), Some(Backend::Sqlite));
    assert_eq!(
        Backend::of_url("postgres://u@h/db"),
        Some(Backend::Postgres)
    );
    assert_eq!(
        Backend::of_url("postgresql://u@h/db"),
        Some(Backend::Postgres)
    );
    assert_eq!(Backend::of_url("mysql://u@h/db"), None);
}

#[tokio::test]
async fn leases_expire_and_a_dead_owners_transfers_are_adopted_once() {
    for db in testdb::each().await {
        let (store, backend) = (&db.store, db.backend());
        store.join("dead", "run-1", 0).await.unwrap();
        store.join("alive", "run-1", 60_000).await.unwrap();
        for (i, owner) in ["dead", "dead", "alive"].into_iter().enumerate() {
            let mut tx = store.begin().await.unwrap();
            register(&mut tx, backend, &new(&format!("t{i}"), "a"), owner)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(
            store.renew("dead", "run-1", 1000).await.unwrap(),
            Renewal::Lost,
            "{backend:?}"
        );
        assert_eq!(
            store.renew("alive", "run-1", 60_000).await.unwrap(),
            Renewal::Held
        );
        assert_eq!(store.live_instances().await.unwrap(), 1, "{backend:?}");
        assert_eq!(
            store.dead_instances().await.unwrap(),
            ["dead"],
            "{backend:?}"
        );
        let mut conn = store.writer().await.unwrap();
        // A live owner keeps its transfer.
        let t2 = TransferId::parse("t2").unwrap();
        assert!(
            adopt_one(&mut conn, "alive", &t2, Some("alive"))
                .await
                .unwrap()
                .is_none()
        );
        let t0 = TransferId::parse("t0").unwrap();
        let one = adopt_one(&mut conn, "alive", &t0, Some("dead"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (one.transfer.owner.as_deref(), one.from.as_deref()),
            (Some("alive"), Some("dead"))
        );
        let rest = adopt_from(&mut conn, backend, "alive", Some("dead"), 10)
            .await
            .unwrap();
        let ids: Vec<_> = rest.iter().map(|a| a.transfer.id.to_string()).collect();
        assert_eq!(
            ids,
            ["t1"],
            "{backend:?}: t0 was taken already, t2 is not the dead one's"
        );
        assert!(
            adopt_from(&mut conn, backend, "alive", Some("dead"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // On SQLite the writer pool has one connection: give it back.
        drop(conn);
        assert!(
            store.dead_instances().await.unwrap().is_empty(),
            "{backend:?}"
        );
    }
}

/// A lapsed lease that holds nothing but an outbox claim still counts as
/// dead (its claim must be voided); once it holds nothing, it does not.
#[tokio::test]
async fn a_lapsed_lease_counts_as_dead_while_it_holds_a_claim() {
    for db in testdb::each().await {
        let (store, backend) = (&db.store, db.backend());
        store.join("claimer", "run-1", 0).await.unwrap();
        store.join("idle", "run-1", 0).await.unwrap();
        register_one(&db, &new("c1", "a")).await;
        sqlx::query(
            "INSERT INTO actions (id, transfer_id, kind, target_json, body, status, attempts, \
             next_attempt_at, created_at, name, claimed_by, claimed_until) VALUES \
             ('c1.audit', 'c1', 'audit', '{}', '{}', 'pending', 1, 0, 'x', 'audit', 'claimer', 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let dead = store.dead_instances().await.unwrap();
        assert_eq!(dead, ["claimer"], "{backend:?}");
        assert_eq!(store.release_claims_of("claimer").await.unwrap(), 1);
        let dead = store.dead_instances().await.unwrap();
        assert!(dead.is_empty(), "{backend:?}: {dead:?}");
    }
}

/// [`TRICKY`] in every column the set statements fill from one JSON
/// array of rows comes back as it was written.
#[tokio::test]
async fn escaped_and_non_ascii_text_comes_back_as_written() {
    for db in testdb::each().await {
        let backend = db.backend();
        let n = tricky(
            "t1",
            json!({"id": "t1", "status": "ACTIVE", TRICKY: TRICKY}),
        );
        let Registered::Created(t) = register_one(&db, &n).await else {
            panic!("{backend:?}: first registration must create");
        };
        assert_eq!(t.metadata[TRICKY], TRICKY, "{backend:?}");
        assert_eq!(t.upstream, n.upstream, "{backend:?}");
        assert!(
            matches!(register_one(&db, &n).await, Registered::Identical(_)),
            "{backend:?}: the request body is stored as it came"
        );
        let id = TransferId::parse("t1").unwrap();
        let mut conn = db.store.writer().await.unwrap();
        let ongoing = json!({"id": "t1", "status": "ONGOING", "note": TRICKY, "n": 1.5});
        let seen = Upstream::new(&id, "ONGOING", &ongoing.to_string(), 2);
        record_upstream(&mut conn, backend, [&seen]).await.unwrap();
        let stored = db.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.upstream, Some(ongoing), "{backend:?}");
        let done = json!({"id": "t1", "status": "COMPLETED", "outputContext": {TRICKY: [TRICKY]}});
        let done_text = done.to_string();
        let ending = Ending::new(&id, BridgeState::Completed, Some(TRICKY.into()))
            .seen("COMPLETED", &done_text);
        end_many(&mut conn, backend, &[ending], &now_text())
            .await
            .unwrap();
        let stored = db.store.get(&id).await.unwrap().unwrap();
        assert_eq!(stored.reason.as_deref(), Some(TRICKY), "{backend:?}");
        assert_eq!(stored.upstream, Some(done), "{backend:?}");
    }
}

/// The group committer's read of many transfers (on SQLite, one JSON array
/// in one row) gives exactly what the read of one row gives: every column,
/// nulls, [`TRICKY`] text and a SIP instruction included; ids not stored
/// are left out.
#[tokio::test]
async fn a_read_of_many_gives_what_a_read_of_one_gives() {
    for db in testdb::each().await {
        let backend = db.backend();
        let full = tricky("t1", json!({"id": "t1", TRICKY: [TRICKY, 1.5, null]}));
        register_one(&db, &full).await;
        register_one(&db, &testdb::plain("t2")).await;
        let (t1, sip) = (TransferId::parse("t1").unwrap(), tricky_sip());
        let mut conn = db.store.writer().await.unwrap();
        let said =
            json!({"status": "COMPLETED", "n": TRICKY, TRICKY: {"deep": [TRICKY, -0.0, -1e300]}});
        let said_text = said.to_string();
        let ending = Ending::new(&t1, BridgeState::Completed, Some(TRICKY.into()))
            .seen("COMPLETED", &said_text)
            .sip(Some(&sip));
        end_many(&mut conn, backend, &[ending], &now_text())
            .await
            .unwrap();
        let many = fetch_many(&mut conn, backend, &["t1", "t2", "absent"])
            .await
            .unwrap();
        assert_eq!(many.len(), 2, "{backend:?}: {many:?}");
        for id in ["t1", "t2"] {
            let one = fetch(&mut conn, &TransferId::parse(id).unwrap()).await;
            assert_eq!(Some(&many[id]), one.unwrap().as_ref(), "{backend:?}: {id}");
        }
        assert_eq!(many["t1"].sip.as_ref(), Some(&sip), "{backend:?}");
        // What the upstream said comes back as it was said.
        assert_eq!(many["t1"].upstream.as_ref(), Some(&said), "{backend:?}");
        assert_eq!(many["t2"].upstream, None, "{backend:?}");
    }
}

#[tokio::test]
async fn a_later_run_with_the_same_id_takes_the_lease_and_resumes_what_it_owned() {
    for db in testdb::each().await {
        let (store, backend) = (&db.store, db.backend());
        store.join("fixed", "run-1", 60_000).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        register(&mut tx, backend, &new("own-1", "a"), "fixed")
            .await
            .unwrap();
        register(&mut tx, backend, &new("other-1", "a"), "else")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        store.join("fixed", "run-2", 60_000).await.unwrap();
        let lost = store.renew("fixed", "run-1", 60_000).await.unwrap();
        assert_eq!(lost, Renewal::Lost, "{backend:?}: the earlier run stops");
        store.leave("fixed", "run-1").await.unwrap();
        assert_eq!(store.live_instances().await.unwrap(), 1, "{backend:?}");
        let held = store.renew("fixed", "run-2", 60_000).await.unwrap();
        assert_eq!(held, Renewal::Held, "{backend:?}");
        let mut conn = store.writer().await.unwrap();
        let own = crate::store::owned_by(&mut conn, "fixed").await.unwrap();
        let ids: Vec<_> = own.iter().map(|a| a.transfer.id.as_str()).collect();
        assert_eq!(ids, ["own-1"], "{backend:?}");
    }
}
