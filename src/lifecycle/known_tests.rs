//! Endings that bring the transfer a read just before showed (see
//! `Finish::known`): on SQLite they need no read of their own, and one whose
//! transfer changed since still gets the answer a read would have given.

use super::tests::{Fixture, ended, fetched, fixtures, new, resource};
use super::*;

/// Complete `id` as a poll would, bringing `known`.
async fn complete(f: &Fixture, id: &TransferId, known: &Transfer) -> Finished {
    let seen = fetched(id.as_str(), "COMPLETED", "AGENT");
    let known = Arc::new(known.clone());
    let finish = Finish {
        known: Some(&known),
        ..ended(BridgeState::Completed, Some(&seen))
    };
    f.lifecycle.finish(id, finish).await.unwrap()
}

async fn read(f: &Fixture, id: &TransferId) -> Transfer {
    f.lifecycle.store.get(id).await.unwrap().unwrap()
}

/// The outcome is the row a read after the commit gives. On SQLite the
/// transfer the ending brought is the one it plans from (a callback URL only
/// the brought copy has shows in the outcome, and adds a webhook to the
/// actions); PostgreSQL reads its row, under a lock other instances respect.
#[tokio::test]
async fn an_ending_that_brings_its_transfer_ends_it_as_a_read_would() {
    for f in fixtures().await {
        let id = TransferId::parse("t1").unwrap();
        f.lifecycle.register(&new("t1"), None).await.unwrap();
        let mut known = read(&f, &id).await;
        known.callback_url = Some("https://brought.example.com/hook".into());
        let finished = complete(&f, &id, &known).await;
        let Finished::Changed { transfer, actions } = finished else {
            panic!("{finished:?}");
        };
        let stored = read(&f, &id).await;
        assert_eq!(transfer.state, BridgeState::Completed);
        let brought = transfer.callback_url.is_some();
        assert_eq!(brought, f.lifecycle.store.backend() == Backend::Sqlite);
        assert_eq!(actions, if brought { 3 } else { 2 });
        assert_eq!(
            Transfer {
                callback_url: None,
                ..transfer
            },
            stored
        );
    }
}

/// A status recorded after the read moves the row: the ending's check
/// fails, and the group, run again reading, ends the transfer as it is
/// stored. One cancelled meanwhile stays cancelled.
#[tokio::test]
async fn an_ending_whose_transfer_moved_since_gets_what_a_read_gives() {
    for f in fixtures().await {
        let (t1, t2) = (
            TransferId::parse("t1").unwrap(),
            TransferId::parse("t2").unwrap(),
        );
        for id in ["t1", "t2"] {
            f.lifecycle.register(&new(id), None).await.unwrap();
        }
        let (mut known1, known2) = (read(&f, &t1).await, read(&f, &t2).await);
        known1.callback_url = Some("https://stale.example.com/hook".into());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let (ongoing, raw) = resource("t1", "ONGOING", "AGENT");
        let seen = Seen {
            resource: &ongoing,
            raw: &raw.to_string(),
        };
        f.lifecycle.upstream_seen(&t1, seen, 2).await.unwrap();
        let cancel = ended(BridgeState::Cancelled, None);
        f.lifecycle.finish(&t2, cancel).await.unwrap();

        let finished = complete(&f, &t1, &known1).await;
        let Finished::Changed { transfer, .. } = finished else {
            panic!("{finished:?}");
        };
        assert_eq!(transfer, read(&f, &t1).await);
        assert_eq!(transfer.callback_url, None, "the stale copy was not used");
        let finished = complete(&f, &t2, &known2).await;
        let Finished::AlreadyEnded(transfer) = finished else {
            panic!("{finished:?}");
        };
        assert_eq!(transfer.state, BridgeState::Cancelled);
    }
}

/// A transfer brought without its last upstream resource (as a signal's
/// poll brings it) stands in only for an ending that records a newer one:
/// one that records none (a failure, say) reads its row, and the stored
/// resource stays.
#[tokio::test]
async fn an_ending_that_records_no_resource_reads_its_row() {
    for f in fixtures().await {
        let id = TransferId::parse("t1").unwrap();
        f.lifecycle.register(&new("t1"), None).await.unwrap();
        let (ongoing, raw) = resource("t1", "ONGOING", "AGENT");
        let seen = Seen {
            resource: &ongoing,
            raw: &raw.to_string(),
        };
        f.lifecycle.upstream_seen(&id, seen, 1).await.unwrap();
        let known = Arc::new(read(&f, &id).await.without_upstream());
        let fail = Finish {
            reason: Some("tracking time exceeded"),
            known: Some(&known),
            ..ended(BridgeState::Failed, None)
        };
        let finished = f.lifecycle.finish(&id, fail).await.unwrap();
        let Finished::Changed { transfer, .. } = finished else {
            panic!("{finished:?}");
        };
        assert_eq!(transfer.upstream.as_ref(), Some(&raw));
        assert_eq!(transfer, read(&f, &id).await);
    }
}
