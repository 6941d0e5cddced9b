//! Registrations that arrive together share the group committer's
//! transaction, yet each keeps the answer its own transaction would give.

use std::collections::BTreeMap;

use super::handoff_tests::handing_over;
use super::tests::new;
use super::*;
use crate::store::testdb;

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
