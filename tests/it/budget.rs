//! The upstream budget end to end, counted at the simulator: the spike
//! limit, 429 pauses, the auth circuit, returned-call signals.

use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use transfer_bridge::config::{PolicyKind, TrustSignals};
use transfer_bridge::simulator::Fault;

use crate::helpers::*;

/// Unix-ms arrival times at the simulator, oldest first, optionally for one id.
async fn arrivals(app: &TestApp, id: Option<&str>) -> Vec<i64> {
    let url = format!("{}/_sim/requests", app.sim.base_url());
    let requests: Vec<Value> = app
        .http
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    requests
        .iter()
        .filter(|r| r["method"] == "GET")
        .filter(|r| id.is_none_or(|id| r["id"] == id))
        .map(|r| r["atMs"].as_i64().unwrap())
        .collect()
}

/// The most requests that arrived within any `window_ms` window.
fn busiest(times: &[i64], window_ms: i64) -> usize {
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn returned(app: &TestApp, id: &str) -> u16 {
    let url = format!("{}/v1/transfers/{id}/returned", app.base);
    app.http.post(url).send().await.unwrap().status().as_u16()
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_limiter_never_exceeds_the_rps_limit_under_a_burst() {
    let app = spawn_app_with(|c| {
        c.upstream.rate_limit_per_s = 20;
        c.polling.max_in_flight = 64;
    })
    .await;
    // 60 transfers polled every 100 ms want 600 requests/s.
    for _ in 0..60 {
        let id = unique("burst");
        app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
        app.register_id(&id).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let times = arrivals(&app, None).await;
    assert!(
        times.len() >= 50,
        "the limit was binding: {} requests",
        times.len()
    );
    assert!(
        busiest(&times, 1000) <= 20,
        "{} in one second",
        busiest(&times, 1000)
    );
}

#[tokio::test]
async fn retry_after_pauses_the_whole_client() {
    let app = spawn_app().await;
    let first = unique("slow");
    app.sim.inject(
        Fault {
            retry_after: Some("2".into()),
            id: Some(first.clone()),
            ..Fault::status(429)
        }
        .times(1),
    );
    app.script(&first, json!({"timeline": [{"status": "ACTIVE"}]}));
    app.register_id(&first).await;
    for _ in 0..4 {
        let id = unique("bystander");
        app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
        app.register_id(&id).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let limited = arrivals(&app, Some(&first)).await[0];
    let all = arrivals(&app, None).await;
    // Nothing (for any transfer) between the 429 and its Retry-After, apart
    // from requests already on the wire when it arrived.
    let during: Vec<i64> = all
        .iter()
        .map(|t| t - limited)
        .filter(|d| (100..1900).contains(d))
        .collect();
    assert!(
        during.is_empty(),
        "requests during the pause at +{during:?} ms"
    );
    assert!(all.iter().any(|t| t - limited >= 2000), "polling resumed");
    assert_eq!(app.sim.counters().by_status.get(&429), Some(&1));
}

#[tokio::test]
async fn the_auth_circuit_opens_and_closes() {
    let app = spawn_app_with(|c| {
        c.upstream.auth_probe_initial = Duration::from_millis(300);
        c.upstream.auth_fail_after = Duration::from_secs(30);
    })
    .await;
    app.sim.inject(Fault::status(401).times(3));
    let ids: Vec<String> = (0..3).map(|_| unique("circuit")).collect();
    for id in &ids {
        app.script(id, completes_with(json!({"transferType": "SYSTEM"})));
        app.register_id(id).await;
    }
    // The first refusal opens the circuit, and two probes (after 300, then
    // 600 ms) keep it open for at least 900 ms: look every 20 ms instead of
    // once after a fixed sleep, which a loaded machine could overshoot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (status, body) = loop {
        let (status, body) = readyz(&app).await;
        if body["checks"]["upstream"]["circuit"] == "open" || tokio::time::Instant::now() > deadline
        {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(body["checks"]["upstream"]["circuit"], "open", "{body}");
    assert_eq!(status, 503, "{body}");
    // Probes after 300, then 600 ms use up the fault; then everything completes.
    for id in &ids {
        assert_eq!(app.settled(id).await["state"], "COMPLETED");
    }
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["upstream"]["circuit"], "closed");
    assert_eq!(app.sim.counters().by_status.get(&401), Some(&3));
    // While open, requests went one probe at a time, backing off. GETs
    // already in flight when the first refusal opened the circuit arrive
    // with it (the three transfers are polled at once; CI once saw two
    // refusals 3 ms apart): the probes are what comes after them.
    let times = arrivals(&app, None).await;
    let start = times[0];
    let probes: Vec<i64> = times.iter().copied().filter(|t| t - start >= 150).collect();
    assert!(probes.len() >= 2, "{times:?}");
    assert!(probes[0] - start >= 250, "{times:?}");
    assert!(probes[1] - probes[0] >= 500, "{times:?}");
}

/// With the adaptive policy the next routine poll of an ONGOING call is far
/// away; the signal is what finds the completion.
#[tokio::test]
async fn a_returned_signal_costs_exactly_one_get_when_the_upstream_shows_completed() {
    let app = spawn_app_with(|c| c.polling.policy = PolicyKind::Adaptive).await;
    let id = unique("signal");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 300}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    app.register_id(&id).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = app.sim.gets(&id);
    assert_eq!(app.view(&id).await["state"], "TRACKING");
    assert_eq!(returned(&app, &id).await, 202);
    let view = app.settled(&id).await;
    assert_eq!(view["state"], "COMPLETED");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sim.gets(&id) - before, 1);
}

#[tokio::test]
async fn a_signal_ahead_of_the_upstream_is_followed_by_quick_re_polls() {
    let app = spawn_app_with(|c| {
        c.polling.policy = PolicyKind::Adaptive;
        c.polling.returned_interval = Duration::from_millis(100);
    })
    .await;
    let id = unique("early");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 500}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    app.register_id(&id).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = app.sim.gets(&id);
    assert_eq!(returned(&app, &id).await, 202);
    let signalled = std::time::Instant::now();
    assert_eq!(app.settled(&id).await["state"], "COMPLETED");
    // The upstream lagged 350 ms: re-polls at ~100, 200, 400 ms found it.
    assert!(signalled.elapsed() < Duration::from_millis(1500));
    let spent = app.sim.gets(&id) - before;
    assert!((2..=5).contains(&spent), "{spent} GETs");
}

/// The PBX signals every call: not even a first look before the signal,
/// so the whole transfer costs one GET.
#[tokio::test]
async fn trusted_signals_leave_routine_polls_as_a_rare_safety_net() {
    let app = spawn_app_with(|c| {
        c.polling.policy = PolicyKind::Adaptive;
        c.polling.trust_signals = TrustSignals::Always;
    })
    .await;
    let id = unique("trusted");
    app.script(
        &id,
        json!({"timeline": [{"status": "ONGOING", "forMs": 300}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    app.register_id(&id).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.sim.gets(&id), 0, "quiet until the signal");
    assert_eq!(returned(&app, &id).await, 202);
    assert_eq!(app.settled(&id).await["state"], "COMPLETED");
    assert_eq!(app.sim.gets(&id), 1);
}

/// A tiny daily budget: routine polls are paced (or, near midnight, stop at
/// the signal reserve) and the total never exceeds the budget, yet a
/// returned call still gets its GET at once.
#[tokio::test]
async fn a_spent_budget_still_serves_returned_signals() {
    let app = spawn_app_with(|c| {
        c.upstream.daily_budget = 30;
        c.upstream.signal_reserve = 5;
    })
    .await;
    for _ in 0..10 {
        let id = unique("spender");
        app.script(&id, json!({"timeline": [{"status": "ACTIVE"}]}));
        app.register_id(&id).await;
    }
    let back = unique("back");
    app.script(
        &back,
        json!({"timeline": [{"status": "ONGOING", "forMs": 200}, {"status": "COMPLETED"}],
            "outputContext": {"transferType": "SYSTEM"}}),
    );
    app.register_id(&back).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let routine = app.sim.counters().gets;
    assert!(routine <= 25, "{routine} routine GETs");
    assert_eq!(returned(&app, &back).await, 202);
    assert_eq!(app.settled(&back).await["state"], "COMPLETED");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gets = app.sim.counters().gets;
    assert!(gets <= 30, "{gets}");
    // The bridge's own count is the simulator's.
    let (_, body) = readyz(&app).await;
    let budget = &body["checks"]["upstream"]["budget"];
    assert_eq!(budget["usedToday"].as_u64(), Some(gets), "{budget}");
    assert_eq!(budget["remaining"].as_u64(), Some(30 - gets), "{budget}");
}

/// `polling.max_in_flight` bounds requests to the upstream, not commits:
/// with one request allowed and the store's write lock held by another
/// connection, a second signalled transfer is polled while the first one's
/// answer waits to be committed. (Before, a poll held its place until its
/// commit, so a burst of completions waiting for the group commit held
/// back the next GETs.)
#[tokio::test]
async fn a_poll_waiting_for_its_commit_does_not_hold_back_the_next_get() {
    let (app, ids) = lane_of_one(["warm", "first", "second"]).await;
    // The first GET reserves a batch of the daily budget (a store write).
    assert_eq!(returned(&app, &ids[0]).await, 202);
    assert_eq!(app.settled(&ids[0]).await["state"], "COMPLETED");

    let url = app.config.store.url.expose_secret().to_owned();
    let mut lock = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .unwrap();
    assert_eq!(returned(&app, &ids[1]).await, 202);
    assert!(gets_within(&app, &ids[1], Duration::from_secs(2)).await);
    assert_eq!(returned(&app, &ids[2]).await, 202);
    let polled = gets_within(&app, &ids[2], Duration::from_secs(2)).await;
    assert_eq!(
        app.view(&ids[1]).await["state"],
        "TRACKING",
        "its commit waits"
    );
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    assert!(polled, "the second GET waited for the first commit");
    for id in &ids[1..] {
        assert_eq!(app.settled(id).await["state"], "COMPLETED");
    }
}

/// The signal lane's queue of polls due at once (`tracker::scheduler`'s
/// `now`): with one request allowed and it held by a slow GET, signals wait
/// their turn and go in the order they came; a second signal for a waiting
/// transfer does not queue it twice; a transfer cancelled while it waits is
/// not polled.
#[tokio::test]
async fn signals_past_a_full_lane_wait_in_order_once_each_and_a_cancelled_one_is_skipped() {
    let (app, [warm, slow, first, cancelled, second]) =
        lane_of_one(["warm", "slow", "first", "cancelled", "second"]).await;
    // The first GET reserves a batch of the daily budget (a store write).
    assert_eq!(returned(&app, &warm).await, 202);
    assert_eq!(app.settled(&warm).await["state"], "COMPLETED");
    let hold = json!({"latencyMs": 1500, "id": slow, "count": 1, "endpoint": "get"});
    app.sim.inject(serde_json::from_value(hold).unwrap());
    assert_eq!(returned(&app, &slow).await, 202);
    assert!(gets_within(&app, &slow, Duration::from_secs(2)).await);
    for id in [&first, &cancelled, &first, &second] {
        assert_eq!(returned(&app, id).await, 202);
    }
    let url = format!("{}/v1/transfers/{cancelled}", app.base);
    let cancel = app.http.delete(url).send().await.unwrap();
    assert!(cancel.status().is_success(), "{}", cancel.status());
    let waited = [&first, &second].map(|id| app.sim.gets(id));
    assert_eq!(waited, [0, 0], "polled while the lane was full");
    for id in [&slow, &first, &second] {
        assert_eq!(app.settled(id).await["state"], "COMPLETED");
    }
    assert_eq!(app.view(&cancelled).await["state"], "CANCELLED");
    let gets = [&first, &second, &cancelled].map(|id| app.sim.gets(id));
    assert_eq!(
        gets,
        [1, 1, 0],
        "first (signalled twice), second, cancelled"
    );
    let (at_first, at_second) = (
        arrivals(&app, Some(&first)).await,
        arrivals(&app, Some(&second)).await,
    );
    assert!(at_first[0] <= at_second[0], "{at_first:?} {at_second:?}");
}

/// A bridge that trusts signals and sends one upstream request at a time,
/// with a registered transfer per name (unique ids), each COMPLETED at the
/// upstream from the start.
async fn lane_of_one<const N: usize>(names: [&str; N]) -> (TestApp, [String; N]) {
    let app = spawn_app_with(|c| {
        c.polling.policy = PolicyKind::Adaptive;
        c.polling.trust_signals = TrustSignals::Always;
        c.polling.max_in_flight = 1;
    })
    .await;
    let ids = names.map(unique);
    for id in &ids {
        app.script(
            id,
            json!({"timeline": [{"status": "COMPLETED"}], "outputContext": {"transferType": "SYSTEM"}}),
        );
        app.register_id(id).await;
    }
    (app, ids)
}

/// Whether the simulator saw a GET of `id` within `limit`.
async fn gets_within(app: &TestApp, id: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while app.sim.gets(id) == 0 {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}
