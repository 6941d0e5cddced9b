//! Failovers on one PostgreSQL: a restart under the same instance id, a
//! signal that went to an owner as it died, a clean stop that keeps its
//! lease until its last delivery is done, an instance that cannot reach the
//! broker, a request held on a third instance while the owner dies, an
//! instance started after another died, and held requests and signals
//! while LISTEN is down.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::Connection;

use crate::cluster::{agent_outcome, instance, on_postgres, register_with, view};
use crate::crash::Crashable;
use crate::helpers::*;
use crate::receiver::{Receiver, Reply, SECRET};

/// A run that keeps its predecessor's `cluster.instance_id` (compose's
/// `bridge-a` after a crash) takes its lease back at once, so nobody else
/// adopts from it: it must resume what it owned itself.
#[tokio::test]
async fn a_restart_with_the_same_instance_id_resumes_its_own_transfers() {
    let (app, mut agent, id) = crashed_owner("fixed", "resumed", 2_000).await;
    let second = instance(&app, "fixed");
    let d = agent.next_within(Duration::from_secs(20)).await;
    let d = d.expect("the restarted run polled its own transfer to the end");
    assert_eq!(body(&d)["callTransferId"], id.as_str());
    assert_completed(&second, &id).await;
}

/// The owner dies with its lease still live; a returned signal sent to the
/// survivor meanwhile goes to the dead owner. The transfer's signals are
/// trusted, so once adopted its next routine poll is ten minutes away: the
/// survivor signals again once it has adopted it.
#[tokio::test]
async fn a_signal_sent_to_an_owner_that_just_died_reaches_its_adopter() {
    let app = on_postgres(|_| {}).await;
    let (a, b) = (instance(&app, "doomed"), instance(&app, "heir"));
    let http = reqwest::Client::new();
    let id = scripted(&app, &a, "orphan", 300, Trust::Signals).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.crash();
    let r = http
        .post(format!("{}/v1/transfers/{id}/returned", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let took = completed_within(&http, &b.base, &id, Instant::now(), 25).await;
    println!("completed {took:?} after the signal");
}

/// A clean stop drains its in-flight delivery (a receiver that takes 5 s)
/// holding its lease: the other instance neither voids the claim nor sends
/// the webhook again meanwhile.
#[tokio::test]
async fn a_clean_stop_keeps_its_lease_until_its_last_delivery_is_done() {
    let app = on_postgres(|c| {
        c.webhook.secret = Some(SECRET.parse().unwrap());
        c.webhook.allow_http = true;
        c.webhook.allowed_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let receiver = Receiver::start(&[SECRET], vec![Reply::Slow(Duration::from_secs(5))]).await;
    let (a, b) = (instance(&app, "leaving"), instance(&app, "staying"));
    let http = reqwest::Client::new();
    let id = unique("drain");
    app.script(&id, agent_outcome(100));
    let body = json!({"callTransferId": id, "callbackUrl": receiver.url});
    register_with(&http, &a.base, body).await;
    let first = receiver.wait_for(1).await;
    let stopping = tokio::task::spawn_blocking(move || a.stop());
    stopping.await.unwrap();
    // And past the survivor's next renewal.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = receiver.got();
    assert_eq!(
        got.len(),
        1,
        "sent again while the first was in flight: {got:?}"
    );
    assert_eq!(got[0].id, first[0].id);
    assert_eq!(view(&http, &b.base, &id).await["state"], "COMPLETED");
}

/// An instance that cannot reach the broker (its URL names a closed port)
/// leaves broker actions to one that can: its transfer's route and audit
/// records go out through the other instance, each on its first attempt,
/// rather than failing here and backing off in turn.
#[tokio::test]
async fn an_instance_without_a_broker_leaves_its_publishes_to_one_with_one() {
    let app = on_postgres(|_| {}).await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let mut unlinked = app.config.clone();
    unlinked.amqp.url = "amqp://guest:guest@127.0.0.1:9/%2f".to_owned().into();
    unlinked.cluster.instance_id = "unlinked".into();
    let a = Crashable::start(unlinked);
    let _b = instance(&app, "linked");
    let http = reqwest::Client::new();
    let id = scripted(&app, &a, "unlinked", 200, Trust::Polls).await;
    let d = agent.next_within(Duration::from_secs(15)).await;
    let d = d.expect("the linked instance published the route");
    assert_eq!(body(&d)["callTransferId"], id.as_str());
    let started = Instant::now();
    let v = loop {
        let v = view(&http, &a.base, &id).await;
        let actions = v["actions"].as_array().unwrap();
        if !actions.is_empty() && actions.iter().all(|a| a["status"] == "delivered") {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for action in v["actions"].as_array().unwrap() {
        assert_eq!(action["attempts"], 1, "{action}");
    }
}

/// A request held on a third instance nudges the owner every second. The
/// owner dies and its lease lapses (set here at once); a returned signal to
/// another instance has that one adopt the transfer. The call ends only
/// after that signal's quick re-polls, and after the held request's own
/// recheck of its first signal: the nudges must find the adopter (the held
/// request reads the owner again every few nudges), or the transfer, whose
/// signals are trusted, waits for the adopter's ten-minute safety poll.
#[tokio::test]
async fn a_request_held_on_a_third_instance_follows_the_transfer_to_its_adopter() {
    let app = on_postgres(|_| {}).await;
    let (a, b) = (instance(&app, "first-owner"), instance(&app, "adopter"));
    let c = instance(&app, "holder");
    let http = reqwest::Client::new();
    let id = scripted(&app, &a, "followed", 24_000, Trust::Signals).await;
    let held = http
        .get(format!("{}/v1/transfers/{id}?wait=30s", c.base))
        .send();
    let held = tokio::spawn(held);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || a.crash())
        .await
        .unwrap();
    lapse_lease(&mut database(&app).await, "first-owner").await;
    let r = http
        .post(format!("{}/v1/transfers/{id}/returned", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = held.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(v["state"], "COMPLETED", "{v}");
    drop((b, c));
}

/// An instance that starts after another died adopts the dead one's
/// transfers at once (at its lease's first renewal, right after it joins),
/// and polls them to the end.
#[tokio::test]
async fn a_new_instance_adopts_a_dead_ones_transfers_as_it_starts() {
    let (app, mut agent, id) = crashed_owner("gone", "inherited", 1_000).await;
    lapse_lease(&mut database(&app).await, "gone").await;
    let started = Instant::now();
    let heir = instance(&app, "newcomer");
    // Within a renewal interval (3 s) of the start: a second round could
    // not have come sooner.
    let d = agent.next_within(Duration::from_secs(3)).await;
    let d = d.expect("the new instance polled the dead one's transfer to the end");
    assert_eq!(body(&d)["callTransferId"], id.as_str());
    println!(
        "delivered {:?} after the new instance started",
        started.elapsed()
    );
    assert_completed(&heir, &id).await;
}

/// The LISTEN connections go down (terminated by the server, again and
/// again) from before the call ends until after the owner has seen it end,
/// so the holder misses the NOTIFY. Once it listens again it checks what
/// it holds: the request answers then, not at its 20 s deadline.
#[tokio::test]
async fn a_request_held_while_listen_was_down_answers_once_it_listens_again() {
    let app = on_postgres(|_| {}).await;
    let (a, c) = (instance(&app, "owner"), instance(&app, "holder"));
    let http = reqwest::Client::new();
    let id = scripted(&app, &a, "relisten", 3_000, Trust::Polls).await;
    let asked = Instant::now();
    let held = http
        .get(format!("{}/v1/transfers/{id}?wait=20s", c.base))
        .send();
    let held = tokio::spawn(held);
    let mut db = database(&app).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    while asked.elapsed() < Duration::from_secs(6) {
        drop_listeners(&mut db).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let v = view(&http, &a.base, &id).await;
    assert_eq!(
        v["state"], "COMPLETED",
        "the owner saw it end meanwhile: {v}"
    );
    let v: serde_json::Value = held.await.unwrap().unwrap().json().await.unwrap();
    let took = asked.elapsed();
    assert_eq!(v["state"], "COMPLETED", "{v}");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
    drop((a, c));
}

/// A returned signal forwarded while the owner's LISTEN connection is down
/// (terminated by the server, again and again) is lost. The forwarding
/// instance signals again once the owner's lease would have been adopted
/// from (14 s by default), so a transfer whose signals are trusted does not
/// wait for its ten-minute safety poll.
#[tokio::test]
async fn a_signal_lost_in_a_gap_of_the_owners_listen_is_sent_again() {
    let app = on_postgres(|_| {}).await;
    let (a, b) = (instance(&app, "owner"), instance(&app, "receiver"));
    let http = reqwest::Client::new();
    let id = scripted(&app, &a, "resent", 300, Trust::Signals).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut db = database(&app).await;
    let mut signalled = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1_500) {
        drop_listeners(&mut db).await;
        if !signalled && started.elapsed() > Duration::from_millis(500) {
            let returned = format!("{}/v1/transfers/{id}/returned", b.base);
            let r = http.post(returned).send().await.unwrap();
            assert_eq!(r.status(), 202);
            signalled = true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = completed_within(&http, &b.base, &id, started, 20).await;
    println!("completed {took:?} after the signal");
    drop((a, b));
}

/// A connection to the app's database, for what a test does behind the
/// bridges' backs.
async fn database(app: &TestApp) -> sqlx::PgConnection {
    let url = app.config.store.url.expose_secret().to_owned();
    sqlx::PgConnection::connect(&url).await.unwrap()
}

/// `instance`'s lease lapses now, as `lease_ttl` after its last renewal.
async fn lapse_lease(db: &mut sqlx::PgConnection, instance: &str) {
    sqlx::query("UPDATE instances SET expires_at = 0 WHERE id = $1")
        .bind(instance)
        .execute(db)
        .await
        .unwrap();
}

/// Terminate every LISTEN connection on this database (the bridges').
async fn drop_listeners(db: &mut sqlx::PgConnection) {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' \
         AND pid <> pg_backend_pid()",
    )
    .execute(db)
    .await
    .unwrap();
}

/// Wait until `id` reads COMPLETED at `base`, failing `limit_s` seconds
/// after `since`; how long after `since` it did.
async fn completed_within(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    since: Instant,
    limit_s: u64,
) -> Duration {
    loop {
        let v = view(http, base, id).await;
        if v["state"] == "COMPLETED" {
            return since.elapsed();
        }
        let waited = since.elapsed();
        assert!(
            waited < Duration::from_secs(limit_s),
            "still {v} after {waited:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An app on PostgreSQL, the agent route's queue, and the id of a transfer
/// (`tag`, its call ongoing for `ongoing_ms`) registered at instance
/// `name`, which has crashed since.
async fn crashed_owner(name: &str, tag: &str, ongoing_ms: u64) -> (TestApp, TestQueue, String) {
    let app = on_postgres(|_| {}).await;
    let agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let owner = instance(&app, name);
    let id = scripted(&app, &owner, tag, ongoing_ms, Trust::Polls).await;
    owner.crash();
    (app, agent, id)
}

async fn assert_completed(at: &Crashable, id: &str) {
    let v = view(&reqwest::Client::new(), &at.base, id).await;
    assert_eq!(v["state"], "COMPLETED", "{v}");
}

/// Whether a transfer's return is signalled (`returnSignal`), so its
/// routine polls are a rare safety net, or found by polling.
#[derive(Clone, Copy)]
enum Trust {
    Signals,
    Polls,
}

/// Register a transfer (`tag`, its call ongoing for `ongoing_ms`) at `at`;
/// its id.
async fn scripted(
    app: &TestApp,
    at: &Crashable,
    tag: &str,
    ongoing_ms: u64,
    trust: Trust,
) -> String {
    let id = unique(tag);
    app.script(&id, agent_outcome(ongoing_ms));
    let body = match trust {
        Trust::Signals => json!({"callTransferId": id, "returnSignal": true}),
        Trust::Polls => json!({"callTransferId": id}),
    };
    register_with(&reqwest::Client::new(), &at.base, body).await;
    id
}
