//! The group committer: registrations, statuses, endings and SIP returns
//! that arrive together share a transaction, yet each keeps the answer its own
//! transaction would give.

use std::collections::BTreeMap;

use super::handoff_tests::handing_over;
use super::tests::{Fixture, ended, fetched, fixtures, names, new, resource};
use super::*;
use crate::store::{Backend, NewTransfer, Registered, testdb};

/// Thirty new transfers, a repeat of one and a conflicting body for
/// another, all at once.
#[tokio::test]
async fn registrations_that_arrive_together_commit_together_each_with_its_own_answer() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (lifecycle, _wake, mut fresh) = handing_over(&db.store, 64);
        let mut bodies: Vec<NewTransfer> = (0..30).map(|i| new(&format!("r{i}"))).collect();
        bodies.push(new("r0"));
        let mut conflicting = new("r1");
        conflicting.request_json = "sha256:other".into();
        bodies.push(conflicting);
        let calls = bodies.into_iter().map(|body| {
            let lifecycle = lifecycle.clone();
            tokio::spawn(async move {
                let answer = lifecycle.register_viewed(&body, None).await.unwrap();
                (body.id.as_str().to_owned(), answer)
            })
        });
        let mut outcomes: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for call in futures::future::join_all(calls).await {
            let (id, (registered, views)) = call.unwrap();
            let (kind, expected) = match registered {
                Registered::Created(_) => ("created", vec![format!("{id}.audit.tracking")]),
                Registered::Identical(_) => ("identical", vec![]),
                Registered::Conflict(_) => ("conflict", vec![]),
            };
            let got: Vec<_> = views.into_iter().map(|v| v.id).collect();
            assert_eq!(got, expected, "{backend:?}: {id} {kind}");
            outcomes.entry(id).or_default().push(kind);
        }
        for kinds in outcomes.values_mut() {
            kinds.sort();
        }
        assert_eq!(outcomes.len(), 30, "{backend:?}");
        assert_eq!(outcomes["r0"], ["created", "identical"], "{backend:?}");
        assert_eq!(outcomes["r1"], ["conflict", "created"], "{backend:?}");
        assert_eq!(outcomes["r29"], ["created"], "{backend:?}");
        // One commit per group: its actions reach the dispatcher as one
        // batch (a registration committed alone hands over a batch of one).
        let mut batches = Vec::new();
        while let Ok(batch) = fresh.try_recv() {
            batches.push(batch.claimed.len());
        }
        assert_eq!(
            batches.iter().sum::<usize>(),
            30,
            "{backend:?}: {batches:?}"
        );
        assert!(batches.len() <= 2, "{backend:?}: batches {batches:?}");
        for i in 0..30 {
            let id = TransferId::parse(&format!("r{i}")).unwrap();
            let stored = lifecycle.store.get(&id).await.unwrap().unwrap();
            assert_eq!(stored.state, BridgeState::Tracking, "{backend:?}: {id}");
        }
    }
}

#[tokio::test]
async fn statuses_and_endings_that_arrive_together_are_each_recorded() {
    for f in fixtures().await {
        statuses_and_endings_that_arrive_together_are_each_recorded_on(f).await;
    }
}

/// They share the committer's groups: each status must land on its own
/// transfer, and the ending keep its actions.
async fn statuses_and_endings_that_arrive_together_are_each_recorded_on(f: Fixture) {
    let ids: Vec<_> = (0..20)
        .map(|i| TransferId::parse(&format!("s{i}")).unwrap())
        .collect();
    for id in ids.iter().chain([&TransferId::parse("e1").unwrap()]) {
        f.lifecycle.register(&new(id.as_str()), None).await.unwrap();
    }
    let mut calls = tokio::task::JoinSet::new();
    for (n, id) in ids.iter().enumerate() {
        let (lifecycle, id) = (f.lifecycle.clone(), id.clone());
        calls.spawn(async move {
            let (ongoing, raw) = resource(id.as_str(), "ONGOING", "AGENT");
            let seen = Seen {
                resource: &ongoing,
                raw: &raw.to_string(),
            };
            lifecycle.upstream_seen(&id, seen, n as u32).await.unwrap();
        });
    }
    let seen = fetched("e1", "COMPLETED", "AGENT");
    let e1 = TransferId::parse("e1").unwrap();
    let finished = f
        .lifecycle
        .finish(&e1, ended(BridgeState::Completed, Some(&seen)));
    assert!(matches!(finished.await.unwrap(), Finished::Changed { .. }));
    while let Some(call) = calls.join_next().await {
        call.unwrap();
    }
    for (n, id) in ids.iter().enumerate() {
        let stored = f.lifecycle.store.get(id).await.unwrap().unwrap();
        let got = (
            stored.upstream_status.as_deref(),
            stored.polls,
            stored.state,
        );
        assert_eq!(
            got,
            (Some("ONGOING"), n as u32, BridgeState::Tracking),
            "{id}"
        );
        assert_eq!(
            stored.upstream,
            Some(resource(id.as_str(), "ONGOING", "AGENT").1)
        );
    }
    let stored = f.lifecycle.store.get(&e1).await.unwrap().unwrap();
    assert_eq!(stored.state, BridgeState::Completed);
    assert!(
        names(&f, "e1").await.len() > 1,
        "{:?}",
        names(&f, "e1").await
    );
}

/// Many changes at once share transactions, yet each gets its own answer:
/// the same transfer finished twice changes once; every change commits.
#[tokio::test]
async fn concurrent_changes_commit_together_each_with_its_own_answer() {
    for f in fixtures().await {
        concurrent_changes_on(f).await;
    }
}

async fn concurrent_changes_on(f: Fixture) {
    let ids: Vec<String> = (0..60).map(|i| format!("g{i}")).collect();
    for id in &ids {
        f.lifecycle.register(&new(id), None).await.unwrap();
    }
    let finishes = ids.iter().chain(&ids[..10]).map(|id| {
        let lifecycle = f.lifecycle.clone();
        let id = TransferId::parse(id).unwrap();
        tokio::spawn(async move {
            let change = Finish {
                reason: Some("bulk"),
                ..ended(BridgeState::Cancelled, None)
            };
            lifecycle.finish(&id, change).await.unwrap()
        })
    });
    let results = futures::future::join_all(finishes).await;
    let changed = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Finished::Changed { .. }))
        .count();
    let already = results
        .iter()
        .filter(|r| matches!(r.as_ref().unwrap(), Finished::AlreadyEnded(_)))
        .count();
    assert_eq!((changed, already), (60, 10));
    for id in &ids {
        let tid = TransferId::parse(id).unwrap();
        let stored = f.lifecycle.store.get(&tid).await.unwrap().unwrap();
        assert_eq!(stored.state, BridgeState::Cancelled);
        assert!(
            names(&f, id)
                .await
                .contains(&format!("audit:{id}.audit.cancelled"))
        );
    }
}

/// Thirty calls come back at once, announced by headers-only SIP returns the
/// bridge never registered, with a repeat of one, a return for a tracked
/// transfer and one for a transfer that already ended.
#[tokio::test]
async fn sip_returns_that_arrive_together_commit_together_each_with_its_own_answer() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (lifecycle, _wake, mut fresh) = handing_over(&db.store, 64);
        lifecycle.register(&new("tracked"), None).await.unwrap();
        lifecycle.register(&new("over"), None).await.unwrap();
        let over = TransferId::parse("over").unwrap();
        let cancel = ended(BridgeState::Cancelled, None);
        lifecycle.finish(&over, cancel).await.unwrap();
        while fresh.try_recv().is_ok() {}
        let mut ids: Vec<String> = (0..30).map(|i| format!("ret{i}")).collect();
        ids.extend(["ret0", "tracked", "over"].map(String::from));
        let calls = ids.into_iter().map(|id| {
            let lifecycle = lifecycle.clone();
            tokio::spawn(async move {
                let seen = fetched(&id, "COMPLETED", "AGENT");
                let outcome = lifecycle.sip_return(&new(&id), seen).await.unwrap();
                (id, outcome)
            })
        });
        let mut answers: BTreeMap<String, Vec<Returned>> = BTreeMap::new();
        let mut told = BTreeMap::new();
        for call in futures::future::join_all(calls).await {
            let (id, outcome) = call.unwrap();
            answers
                .entry(id.clone())
                .or_default()
                .push(outcome.returned);
            let created = outcome.returned == Returned::Created;
            assert_eq!(outcome.created.is_some(), created, "{backend:?}: {id}");
            if let Some(view) = outcome.created {
                told.insert(id, format!("{view:?}"));
            }
        }
        let mut ret0 = answers["ret0"].clone();
        ret0.sort_by_key(|r| *r == Returned::Existing);
        assert_eq!(ret0, [Returned::Created, Returned::Existing], "{backend:?}");
        assert_eq!(answers["ret29"], [Returned::Created], "{backend:?}");
        assert_eq!(answers["tracked"], [Returned::Existing], "{backend:?}");
        assert_eq!(answers["over"], [Returned::Existing], "{backend:?}");
        // One commit per group: a return committed alone hands over a
        // batch of its own two actions.
        let mut batches = Vec::new();
        while let Ok(batch) = fresh.try_recv() {
            batches.push(batch.claimed.len());
        }
        let completions = 31;
        let total: usize = batches.iter().sum();
        assert_eq!(total, 2 * completions, "{backend:?}: {batches:?}");
        assert!(batches.len() <= 2, "{backend:?}: batches {batches:?}");
        assert_eq!(told.len(), 30, "{backend:?}");
        for id in (0..30).map(|i| format!("ret{i}")).chain(["tracked".into()]) {
            let tid = TransferId::parse(&id).unwrap();
            let read = lifecycle.with_actions(&tid).await.unwrap().unwrap();
            if let Some(told) = told.get(&id) {
                // What the commit told the caller is what a read gives.
                assert_eq!(told, &format!("{read:?}"), "{backend:?}: {id}");
            }
            let (stored, actions) = read;
            assert_eq!(stored.state, BridgeState::Completed, "{backend:?}: {id}");
            let mut names: Vec<_> = actions.into_iter().map(|a| a.id).collect();
            names.retain(|name| !name.ends_with(".audit.tracking"));
            names.sort();
            let expected = [format!("{id}.agent"), format!("{id}.audit.completed")];
            assert_eq!(names, expected, "{backend:?}: {id}");
        }
        let stored = lifecycle.store.get(&over).await.unwrap().unwrap();
        assert_eq!(stored.state, BridgeState::Cancelled, "{backend:?}");
    }
}

/// A trigger, in this test's database only, that refuses to store the
/// transfer `poison`: a statement of a group that fails on demand.
async fn poison(store: &Store) {
    use sqlx::Executor as _;
    let pool = store.pool();
    match store.backend() {
        Backend::Sqlite => {
            pool.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON transfers WHEN NEW.id = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .await
            .unwrap();
        }
        Backend::Postgres => {
            pool.execute(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .await
            .unwrap();
            pool.execute(
                "CREATE TRIGGER poison BEFORE INSERT ON transfers \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            )
            .await
            .unwrap();
        }
    }
}

/// When one statement of a group fails, nothing of the group commits, and
/// each change runs again alone: every caller gets the answer its own
/// transaction gives, the one refused change its error.
#[tokio::test]
async fn a_group_that_fails_runs_each_change_alone() {
    for db in testdb::each().await {
        let backend = db.backend();
        poison(&db.store).await;
        let (lifecycle, _wake, mut fresh) = handing_over(&db.store, 64);
        lifecycle.register(&new("tracked"), None).await.unwrap();
        while fresh.try_recv().is_ok() {}
        let mut calls = tokio::task::JoinSet::new();
        for id in (0..10).map(|i| format!("ok{i}")).chain(["poison".into()]) {
            let lifecycle = lifecycle.clone();
            calls.spawn(async move {
                let registered = lifecycle.register(&new(&id), None).await;
                (id, registered.map(|r| matches!(r, Registered::Created(_))))
            });
        }
        let (lifecycle2, tracked) = (lifecycle.clone(), TransferId::parse("tracked").unwrap());
        let finished = tokio::spawn(async move {
            let cancel = ended(BridgeState::Cancelled, None);
            lifecycle2.finish(&tracked, cancel).await.unwrap()
        });
        let seen = fetched("ret", "COMPLETED", "AGENT");
        let returned = lifecycle.sip_return(&new("ret"), seen).await.unwrap();
        let mut answers = BTreeMap::new();
        while let Some(call) = calls.join_next().await {
            let (id, answer) = call.unwrap();
            answers.insert(id, answer.map_err(|e| e.to_string()));
        }
        let refused = answers.remove("poison").unwrap();
        assert!(refused.unwrap_err().contains("poisoned"), "{backend:?}");
        assert!(
            answers.values().all(|a| a == &Ok(true)),
            "{backend:?}: {answers:?}"
        );
        assert_eq!(returned.returned, Returned::Created, "{backend:?}");
        let finished = finished.await.unwrap();
        assert!(matches!(finished, Finished::Changed { .. }), "{backend:?}");
        // Each of the twelve changes committed alone: a batch each (the
        // group would have handed over one or two).
        let mut batches = 0;
        while fresh.try_recv().is_ok() {
            batches += 1;
        }
        assert_eq!(batches, 12, "{backend:?}");
        let poison = TransferId::parse("poison").unwrap();
        assert!(lifecycle.store.get(&poison).await.unwrap().is_none());
        for id in ["ok0", "ok9", "ret", "tracked"] {
            let id = TransferId::parse(id).unwrap();
            assert!(lifecycle.store.get(&id).await.unwrap().is_some(), "{id}");
        }
    }
}

/// A repeat registration fails the group that took it for new (see
/// `Taken::AsGiven`), alone or beside an ending; the group runs again on
/// the same writer connection, rolled back, not closed and opened anew.
#[tokio::test]
async fn a_repeat_registration_keeps_the_writer_connection() {
    for f in fixtures().await {
        let store = &f.lifecycle.store;
        for id in ["k0", "k1"] {
            f.lifecycle.register(&new(id), None).await.unwrap();
        }
        testdb::mark_writer(store).await;
        let again = new("k0");
        let repeat = f.lifecycle.register(&again, None);
        let cancel = Finish {
            reason: Some("repeat beside"),
            ..ended(BridgeState::Cancelled, None)
        };
        let id = TransferId::parse("k1").unwrap();
        let (repeat, ending) = tokio::join!(repeat, f.lifecycle.finish(&id, cancel));
        assert!(matches!(repeat.unwrap(), Registered::Identical(_)));
        assert!(matches!(ending.unwrap(), Finished::Changed { .. }));
        let alone = f.lifecycle.register(&new("k0"), None).await.unwrap();
        assert!(matches!(alone, Registered::Identical(_)));
        let kept = testdb::writer_kept(store).await;
        assert!(kept, "the writer connection was replaced");
    }
}
