//! Several instances on one PostgreSQL (`DATABASE_URL`): each test gets a
//! database of its own, two bridges share it, the simulator and the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use transfer_bridge::config::Config;
use transfer_bridge::store::ScratchDatabase;

use crate::crash::Crashable;
use crate::helpers::*;

/// A fresh database on the server `DATABASE_URL` names, dropped when it
/// goes. Without `DATABASE_URL` the test fails and says why; it never skips.
pub async fn scratch_database() -> ScratchDatabase {
    let base = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: the multi-instance tests need PostgreSQL, \
         e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres",
    );
    ScratchDatabase::for_test(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot create a database at DATABASE_URL: {e}"))
}

/// A stopped test app on a fresh PostgreSQL database (its simulator, broker
/// names and helpers stay usable), and that config for each instance. The
/// app keeps the database until it goes.
pub(crate) async fn on_postgres(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let database = scratch_database().await;
    let url = database.url().to_owned();
    let mut app = spawn_app_with(move |c| {
        c.store.url = SecretString::from(url);
        // Test timelines poll every 100 ms: past the default daily budget's
        // even pace, which would space polls seconds apart.
        c.upstream.daily_budget = 10_000_000;
        tweak(c);
    })
    .await;
    app.stop().await;
    app.keep_database(database);
    app
}

pub(crate) fn instance(app: &TestApp, name: &str) -> Crashable {
    let mut config = app.config.clone();
    config.cluster.instance_id = name.into();
    Crashable::start(config)
}

pub(crate) async fn register(http: &reqwest::Client, base: &str, id: &str) {
    register_with(http, base, json!({"callTransferId": id})).await;
}

/// Register `body` at the instance at `base`; it must answer 201.
pub(crate) async fn register_with(http: &reqwest::Client, base: &str, body: Value) {
    let r = http
        .post(format!("{base}/v1/transfers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

pub(crate) async fn view(http: &reqwest::Client, base: &str, id: &str) -> Value {
    let r = http
        .get(format!("{base}/v1/transfers/{id}"))
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

pub(crate) fn agent_outcome(ongoing_ms: u64) -> Value {
    json!({"timeline": [{"status": "ACTIVE", "forMs": 50}, {"status": "ONGOING", "forMs": ongoing_ms},
        {"status": "COMPLETED"}],
        "outputContext": {"transferType": "AGENT", "currentTaskName": "cluster"}})
}

/// Default lease settings: a kill -9 of one instance is noticed within
/// lease_ttl + renew_interval, and the survivor finishes everything.
#[tokio::test]
async fn two_instances_survive_the_loss_of_one_with_nothing_lost() {
    let app = on_postgres(|_| {}).await;
    let mut agent = app.bind(&app.config.amqp.agent_exchange, "agent.#").await;
    let mut adopted = app
        .bind(&app.config.amqp.audit_exchange, "transfer.adopted")
        .await;
    let (a, b) = (instance(&app, "alpha"), instance(&app, "beta"));
    let http = reqwest::Client::new();
    let mut ids = BTreeSet::new();
    for i in 0..20 {
        let id = unique(&format!("kill{i}"));
        app.script(&id, agent_outcome(3_000));
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        register(&http, base, &id).await;
        ids.insert(id);
    }
    let owned_by_a: BTreeSet<String> = ids.iter().step_by(2).cloned().collect();
    let survivor = b.base.clone();
    a.crash();
    let killed = Instant::now();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.len() < ids.len() {
        let d = agent.next_within(Duration::from_secs(30)).await;
        let d = d.unwrap_or_else(|| panic!("only {} of {} delivered", seen.len(), ids.len()));
        let id = body(&d)["callTransferId"].as_str().unwrap().to_string();
        let message_id = d.properties.message_id().as_ref().unwrap().to_string();
        assert_eq!(
            message_id,
            format!("{id}.agent"),
            "a duplicate keeps its id"
        );
        *seen.entry(id).or_default() += 1;
    }
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), ids);
    println!(
        "failover: all {} delivered {:?} after the kill",
        ids.len(),
        killed.elapsed()
    );
    // The adoption is in the audit stream, one record per adopted transfer.
    let mut adoptions = BTreeSet::new();
    while let Some(d) = adopted.next_within(Duration::from_secs(5)).await {
        let event = body(&d);
        assert_eq!(event["type"], "transfer.adopted");
        assert!(
            event["reason"].as_str().unwrap().contains("from alpha"),
            "{event}"
        );
        adoptions.insert(event["callTransferId"].as_str().unwrap().to_string());
        if adoptions.len() == owned_by_a.len() {
            break;
        }
    }
    assert!(adoptions.is_subset(&owned_by_a), "{adoptions:?}");
    assert!(
        !adoptions.is_empty(),
        "the survivor adopted the dead instance's transfers"
    );
    for id in &ids {
        let v = view(&http, &survivor, id).await;
        assert_eq!(v["state"], "COMPLETED", "{v}");
    }
    let metrics = http
        .get(format!("{survivor}/metrics"))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("bridge_transfers_adopted_total"),
        "adoption is counted"
    );
}

/// The owner polls rarely; a signal sent to the other instance gets the
/// transfer polled at once, and a request held there is woken.
#[tokio::test]
async fn a_returned_signal_to_the_non_owner_is_honoured_within_a_second() {
    let app = on_postgres(|c| {
        c.polling.active_interval = Duration::from_secs(60);
        c.polling.ongoing_interval = Duration::from_secs(60);
    })
    .await;
    let (a, b) = (instance(&app, "owner"), instance(&app, "other"));
    let http = reqwest::Client::new();
    let id = unique("signal");
    // The timeline starts now; the call comes back once the agent is done.
    app.script(&id, agent_outcome(1_500));
    register(&http, &a.base, &id).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let v = view(&http, &b.base, &id).await;
    assert_eq!(
        v["state"], "TRACKING",
        "the owner's next routine poll is a minute away: {v}"
    );
    let gets_before = app.sim.counters().transfers.get(&id).map_or(0, |t| t.get);
    let sent = Instant::now();
    let r = http
        .post(format!("{}/v1/transfers/{id}/returned?wait=5s", b.base))
        .send()
        .await
        .unwrap();
    let took = sent.elapsed();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "COMPLETED", "{v}");
    assert!(took < Duration::from_secs(1), "honoured in {took:?}");
    let gets = app.sim.counters().transfers[&id].get - gets_before;
    assert_eq!(gets, 1, "exactly one prompt poll, by the owner");
    assert_eq!(view(&http, &a.base, &id).await["state"], "COMPLETED");
    drop((a, b));
}

/// Signals to both instances and slow GETs: still never two polls of one
/// transfer in flight at once.
#[tokio::test]
async fn never_more_than_one_poll_per_transfer_in_flight() {
    let app = on_postgres(|_| {}).await;
    let (a, b) = (instance(&app, "one"), instance(&app, "two"));
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..10 {
        let id = unique(&format!("inflight{i}"));
        app.script(&id, agent_outcome(2_000));
        let fault = json!({"latencyMs": 300, "id": id, "count": 1000, "endpoint": "get"});
        app.sim.inject(serde_json::from_value(fault).unwrap());
        register(&http, if i % 2 == 0 { &a.base } else { &b.base }, &id).await;
        ids.push(id);
    }
    for _ in 0..5 {
        for id in &ids {
            for base in [&a.base, &b.base] {
                let url = format!("{base}/v1/transfers/{id}/returned");
                let _ = http.post(url).send().await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        for _ in 0..100 {
            if view(&http, &a.base, id).await["state"] == "COMPLETED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let counters = app.sim.counters();
    for id in &ids {
        let per = &counters.transfers[id];
        assert!(per.get >= 2, "{id} was polled: {per:?}");
        assert_eq!(per.max_in_flight, 1, "{id}: {per:?}");
    }
    drop((a, b));
}

/// One daily budget for the deployment: two instances polling hard never
/// spend more than `upstream.daily_budget` between them.
#[tokio::test]
async fn two_instances_share_one_daily_budget() {
    const BUDGET: u32 = 40;
    let app = on_postgres(|c| {
        c.upstream.daily_budget = BUDGET;
        c.upstream.signal_reserve = 4;
        // This test is about the cap, not the pace: at the even pace, 36
        // routine GETs spread over the rest of the day allow one or two now.
        c.upstream.pacing_window = Duration::from_secs(86_400);
    })
    .await;
    let (a, b) = (instance(&app, "left"), instance(&app, "right"));
    let http = reqwest::Client::new();
    for i in 0..10 {
        let id = unique(&format!("budget{i}"));
        app.script(&id, agent_outcome(60_000));
        register(&http, if i % 2 == 0 { &a.base } else { &b.base }, &id).await;
    }
    // At 100 ms per poll, ten transfers would ask for 100 GETs a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let gets = app.sim.counters().gets;
    assert!(
        gets >= u64::from(BUDGET) / 2,
        "the instances did poll: {gets}"
    );
    assert!(
        gets <= u64::from(BUDGET),
        "{gets} GETs for a budget of {BUDGET}"
    );
    drop((a, b));
}
