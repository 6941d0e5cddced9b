//! The outbox's SQL on both backends.

use super::*;
use crate::store::testdb::{self, TRICKY};
use crate::store::{MAX_SQLITE_BYTES, Registered, register};
use crate::transfer::AmqpTarget;

/// An action's body and target go into the table as one JSON array of rows
/// (see `enqueue`): what is claimed back is byte for byte what was enqueued,
/// the body the broker gets on every redelivery.
#[tokio::test]
async fn an_enqueued_body_and_target_are_claimed_back_as_written() {
    for db in testdb::each().await {
        let backend = db.backend();
        let new = testdb::plain("t1");
        let id = new.id.clone();
        let target = Target::Amqp(AmqpTarget {
            exchange: "transfer.agent".into(),
            routing_key: format!("agent.{TRICKY}"),
            mandatory: true,
            event_type: "transfer.completed".into(),
            correlation_id: Some(TRICKY.into()),
            transfer_type: Some("AGENT".into()),
            current_task: Some(TRICKY.into()),
        });
        let mut action = Action::new(&id, "agent", ActionKind::Route("agent".into()), target);
        action.body = serde_json::json!({"note": TRICKY, "n": 1.5}).to_string() + TRICKY;
        let mut tx = db.store.begin().await.unwrap();
        let registered = register(&mut tx, backend, &new, "i1").await.unwrap();
        assert!(matches!(registered, Registered::Created(_)), "{backend:?}");
        enqueue(&mut tx, backend, std::slice::from_ref(&action), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let claimed = claim_due(&db.store, "i1", 60_000, 10, true).await.unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        let back = &claimed[0].action;
        assert_eq!(back.body, action.body, "{backend:?}");
        assert_eq!(back.target, action.target, "{backend:?}");
        assert_eq!((&back.id, &back.name), (&action.id, &action.name));
    }
}

/// A group's actions over several statements (on SQLite, BLOBs of 64 KiB;
/// see `sqlite_batches`), among them an empty body and one larger than a
/// BLOB: each is claimed back byte for byte, under its own id.
#[tokio::test]
async fn many_enqueued_actions_are_claimed_back_as_written() {
    for db in testdb::each().await {
        let backend = db.backend();
        let new = testdb::plain("t1");
        let id = new.id.clone();
        let actions: Vec<Action> = (0..300)
            .map(|i| {
                let target = agent_target(format!("agent.{i}.{TRICKY}"), Some(TRICKY.into()));
                let name = format!("agent{i}");
                let mut action = Action::new(&id, &name, ActionKind::Route(name.clone()), target);
                action.body = match i {
                    7 => String::new(),
                    150 => TRICKY.repeat(1000),
                    _ => format!("{i}:{}", TRICKY.repeat(i % 13)),
                };
                action
            })
            .collect();
        let mut tx = db.store.begin().await.unwrap();
        register(&mut tx, backend, &new, "i1").await.unwrap();
        enqueue(&mut tx, backend, &actions, None).await.unwrap();
        tx.commit().await.unwrap();
        let mut claimed = claim_due(&db.store, "i1", 60_000, 1000, true)
            .await
            .unwrap();
        assert_eq!(claimed.len(), actions.len(), "{backend:?}");
        claimed.sort_by_key(|c| {
            c.action
                .name
                .trim_start_matches("agent")
                .parse::<usize>()
                .unwrap()
        });
        for (back, sent) in claimed.iter().map(|c| &c.action).zip(&actions) {
            assert_eq!(
                (&back.id, &back.name),
                (&sent.id, &sent.name),
                "{backend:?}"
            );
            assert_eq!(back.body, sent.body, "{backend:?}: {}", sent.name);
            assert_eq!(back.target, sent.target, "{backend:?}: {}", sent.name);
        }
    }
}

/// SQLite's pairs: every BLOB under the limit unless one action fills it,
/// and each row's range names its own target and body.
#[test]
fn sqlite_batches_keep_their_blobs_medium_sized_and_name_each_text() {
    let id = crate::transfer::TransferId::parse("t1").unwrap();
    let actions: Vec<Action> = (0..200)
        .map(|i| {
            let target = agent_target(format!("k{i}"), None);
            let mut action = Action::new(&id, &format!("a{i}"), ActionKind::Audit, target);
            action.body = if i == 100 {
                "b".repeat(70_000)
            } else {
                format!("{i}").repeat(300)
            };
            action
        })
        .collect();
    let batches = sqlite_batches(&actions);
    assert!(batches.len() > 2, "{} batches", batches.len());
    let mut seen = 0;
    for (array, texts, count) in &batches {
        let rows: Vec<serde_json::Value> = serde_json::from_str(array).unwrap();
        assert_eq!(rows.len(), *count);
        assert!(texts.len() <= MAX_SQLITE_BYTES || rows.len() == 1);
        let text = |span: &serde_json::Value| {
            let [at, len] = [0, 1].map(|i| span[i].as_u64().unwrap() as usize);
            &texts[at - 1..at - 1 + len]
        };
        for row in rows {
            let sent = &actions[seen];
            assert_eq!(
                serde_json::from_slice::<Target>(text(&row["t"])).unwrap(),
                sent.target
            );
            assert_eq!(text(&row["b"]), sent.body.as_bytes());
            assert_eq!(row["id"], sent.id.as_str());
            seen += 1;
        }
    }
    assert_eq!(seen, actions.len());
}

/// Claims handed over at commit and given back unused are due again at
/// once, their counted attempt taken back; another instance's claim of the
/// same id is left alone.
#[tokio::test]
async fn claims_given_back_unused_are_due_again_uncounted() {
    for db in testdb::each().await {
        let backend = db.backend();
        let new = testdb::plain("t1");
        let target = agent_target("agent.x".into(), None);
        let action = Action::new(&new.id, "agent", ActionKind::Route("agent".into()), target);
        let claim = Claim {
            by: "i1".into(),
            until_ms: now_ms() + 60_000,
        };
        let mut tx = db.store.begin().await.unwrap();
        register(&mut tx, backend, &new, "i1").await.unwrap();
        enqueue(
            &mut tx,
            backend,
            std::slice::from_ref(&action),
            Some(&claim),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        assert!(
            claim_due(&db.store, "i1", 60_000, 10, true)
                .await
                .unwrap()
                .is_empty()
        );
        let ids = [action.id.clone()];
        assert_eq!(
            release_unused(&db.store, "i2", &ids).await.unwrap(),
            0,
            "{backend:?}"
        );
        assert_eq!(
            release_unused(&db.store, "i1", &ids).await.unwrap(),
            1,
            "{backend:?}"
        );
        let claimed = claim_due(&db.store, "i1", 60_000, 10, true).await.unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        assert_eq!(
            claimed[0].attempts, 1,
            "{backend:?}: the first attempt, counted once"
        );
    }
}

/// A late result of an attempt whose claim lapsed and went to another
/// instance (a fenced instance's, or a stalled one's) changes nothing: the
/// new claim stands, and the action is neither due again nor failed.
#[tokio::test]
async fn a_result_under_a_claim_that_lapsed_is_not_recorded() {
    for db in testdb::each().await {
        let backend = db.backend();
        let new = testdb::plain("t1");
        let target = agent_target("agent.x".into(), None);
        let action = Action::new(&new.id, "agent", ActionKind::Route("agent".into()), target);
        let mut tx = db.store.begin().await.unwrap();
        register(&mut tx, backend, &new, "i1").await.unwrap();
        enqueue(&mut tx, backend, std::slice::from_ref(&action), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // i1's claim lapses at once; i2 claims the action after it.
        assert_eq!(
            claim_due(&db.store, "i1", -1, 10, true)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            claim_due(&db.store, "i2", 60_000, 10, true)
                .await
                .unwrap()
                .len(),
            1
        );
        let id = &action.id;
        let retried = mark_retry(db.store.pool(), id, "i1", 0, "late")
            .await
            .unwrap();
        let mut tx = db.store.begin().await.unwrap();
        let failed = mark_failed(&mut tx, id, "i1", "late").await.unwrap();
        tx.commit().await.unwrap();
        assert!(!retried && !failed, "{backend:?}");
        let (status, by): (String, Option<String>) =
            sqlx::query_as("SELECT status, claimed_by FROM actions WHERE id = $1")
                .bind(id)
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(
            (status.as_str(), by.as_deref()),
            ("pending", Some("i2")),
            "{backend:?}"
        );
        assert!(
            claim_due(&db.store, "i1", 60_000, 10, true)
                .await
                .unwrap()
                .is_empty()
        );
        // The claim's holder records its own result.
        let retried = mark_retry(db.store.pool(), id, "i2", 0, "own")
            .await
            .unwrap();
        assert!(retried, "{backend:?}");
    }
}

/// An agent route's target with `routing_key` and `correlation_id`.
fn agent_target(routing_key: String, correlation_id: Option<String>) -> Target {
    Target::Amqp(AmqpTarget {
        exchange: "transfer.agent".into(),
        routing_key,
        mandatory: true,
        event_type: "transfer.completed".into(),
        correlation_id,
        transfer_type: None,
        current_task: None,
    })
}
