//! Registrations ride on the commits of a steady stream of endings (see
//! `pace`), and endings never wait for them.

use std::time::Duration;

use tokio::time::Instant;

use super::handoff_tests::handing_over;
use super::tests::{ended, new};
use super::*;
use crate::store::testdb;

/// Endings of tracked transfers one every `STEP`, and a new registration
/// between each two: the pace of a steady contact centre.
const STEP: Duration = Duration::from_millis(6);
const ROUNDS: u32 = 40;

#[tokio::test]
async fn at_a_steady_pace_registrations_commit_with_the_next_ending() {
    for db in testdb::each().await {
        let backend = db.backend();
        let (lifecycle, _wake, mut fresh) = handing_over(&db.store, 4 * ROUNDS as usize);
        for i in 0..ROUNDS {
            lifecycle
                .register(&new(&format!("e{i}")), None)
                .await
                .unwrap();
        }
        while fresh.try_recv().is_ok() {}
        let start = Instant::now();
        let mut calls = Vec::new();
        for i in 0..ROUNDS {
            tokio::time::sleep_until(start + STEP * i).await;
            let (l, id) = (
                lifecycle.clone(),
                TransferId::parse(&format!("e{i}")).unwrap(),
            );
            let change = ended(BridgeState::Cancelled, None);
            calls.push(tokio::spawn(async move {
                l.finish(&id, change).await.map(drop)
            }));
            tokio::time::sleep_until(start + STEP * i + STEP / 2).await;
            let (l, body) = (lifecycle.clone(), new(&format!("r{i}")));
            calls.push(tokio::spawn(async move {
                l.register(&body, None).await.map(drop)
            }));
        }
        for call in futures::future::join_all(calls).await {
            call.unwrap().unwrap();
        }
        // Each commit hands its actions over as one batch.
        let (mut riding, mut alone) = (0, 0);
        while let Ok(batch) = fresh.try_recv() {
            let names: Vec<&str> = batch.claimed.iter().map(|c| c.action.id.as_str()).collect();
            let registrations = names.iter().filter(|n| n.starts_with('r')).count();
            match names.iter().any(|n| n.starts_with('e')) {
                true => riding += registrations,
                false => alone += registrations,
            }
        }
        assert_eq!(riding + alone, ROUNDS as usize, "{backend:?}");
        // The first few come before the pace is known.
        assert!(
            riding >= 3 * ROUNDS as usize / 4,
            "{backend:?}: {riding} registrations rode on an ending's commit, {alone} did not"
        );
    }
}
